"""A synthetic single-label folder dataset: 31 classes, 11:1 imbalance, train/val/test.

It stands in for a real folder dataset such as the 31-species freshwater fish set (8,801 /
2,751 / 1,760 images, largest class 11x the smallest) so the folder flow runs end to end
with no download. One organism per image, drawn with `fathom.synth.draw` on the same
sea-floor background as the FathomNet-style competition. Classes come in look-alike pairs (same shape, a nearby hue, another
texture), so the confusion matrix has structure worth reading.

    <out>/train/<class>/<id>.png, <out>/val/<class>/<id>.png
    <out>/test/<id>.png                 flat and unlabelled, as a competition's test set
    <out>/hidden/test_truth.csv         id,label for the test images (read only to score)
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fathom import fileio
from fathom.data.imagefolder import TRUTH_FILE
from fathom.errors import FathomError
from fathom.synth.draw import (
    SHAPE_NAMES,
    SHAPES,
    TEXTURES,
    TRAIN_MAX_DEPTH,
    Look,
    background,
    render_organism,
    to_pixels,
    write_png,
)

HUES = "red orange yellow lime green teal cyan azure blue violet purple pink".split()


@dataclass(frozen=True)
class FolderSynthConfig:
    n_classes: int = 31
    smallest: int = 8  # training images of the rarest class
    imbalance: float = 11.0  # largest class / smallest class, in every split
    val_fraction: float = 0.31  # val / train images, as in the fish set (2,751 / 8,801)
    test_fraction: float = 0.2  # test / train images (1,760 / 8,801)
    size: int = 64  # square images, small so a CPU run is quick
    seed: int = 0

    def check(self) -> None:
        if not 2 <= self.n_classes <= 2 * len(SHAPE_NAMES):
            raise FathomError(f"--classes must be 2..{2 * len(SHAPE_NAMES)}")
        if self.smallest < 2:
            raise FathomError("--smallest must be at least 2 (a class needs train images)")
        if self.imbalance < 1:
            raise FathomError("--imbalance must be at least 1")
        if self.size < 32:
            raise FathomError("--size must be at least 32 px")
        if not 0 < self.val_fraction < 5 or not 0 <= self.test_fraction < 5:
            raise FathomError("val and test fractions must be positive")


def class_looks(n_classes: int) -> tuple[list[Look], list[str]]:
    """Looks and names: class 2i and 2i+1 share a shape, differ a little in hue and in texture."""
    looks, names = [], []
    for c in range(n_classes):
        pair, twin = divmod(c, 2)
        hue = (pair * 0.618034 + 0.07 * twin) % 1.0
        texture = (pair + twin) % 3
        rgb = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
        looks.append(Look(pair % len(SHAPES), rgb, texture))
        hue_name = HUES[int(round(hue * len(HUES))) % len(HUES)]
        names.append(f"{hue_name}_{SHAPE_NAMES[pair % len(SHAPES)]}_{TEXTURES[texture]}")
    # two classes may still meet on one name (nearby hues round alike): number them apart
    return looks, [f"{i:02d}_{n}" for i, n in enumerate(names)]


def class_counts(cfg: FolderSynthConfig) -> dict[str, np.ndarray]:
    """Images per class and split: geometric from `smallest` to `imbalance` x, shuffled over classes."""
    rng = np.random.default_rng(cfg.seed)
    ratio = cfg.imbalance ** np.linspace(0.0, 1.0, cfg.n_classes)
    ratio = ratio[rng.permutation(cfg.n_classes)]
    train = np.round(cfg.smallest * ratio).astype(int)
    val = np.maximum(1, np.round(train * cfg.val_fraction)).astype(int)
    test = np.round(train * cfg.test_fraction).astype(int)
    if cfg.test_fraction > 0:
        test = np.maximum(1, test)
    return {"train": train, "val": val, "test": test}


def _draw(rng: np.random.Generator, look: Look, size: int) -> np.ndarray:
    img, light = background(rng, size, size, rng.uniform(0, TRAIN_MAX_DEPTH))
    radius = size * rng.uniform(0.22, 0.36)
    cx, cy = rng.uniform(radius * 0.8, size - radius * 0.8, 2)
    render_organism(img, look, cx, cy, radius, rng.uniform(0, 2 * np.pi), light)
    return to_pixels(img)


def generate_folder(
    out: str | Path, cfg: FolderSynthConfig = FolderSynthConfig(), progress: bool = True
) -> Path:
    """Write the dataset under `out` (see the module docstring) and return `out`."""
    cfg.check()
    out = Path(out)
    if (out / TRUTH_FILE).exists() or (out / "train").exists():
        raise FathomError(f"{out}: already holds a dataset (choose an empty folder)")
    looks, names = class_looks(cfg.n_classes)
    counts = class_counts(cfg)
    plan = [
        (split, c, i)
        for split in ("train", "val", "test")
        for c in range(cfg.n_classes)
        for i in range(int(counts[split][c]))
    ]
    rng = np.random.default_rng(cfg.seed + 1)
    # test images get shuffled, anonymous names: a file name must not give the class away
    test_names = {
        j: f"img_{k:05d}" for k, j in enumerate(rng.permutation(int(counts["test"].sum())))
    }
    truth, n_test = [], 0
    for split, c, i in tqdm(plan, desc="synth folder images", unit="img", disable=not progress):
        pixels = _draw(rng, looks[c], cfg.size)
        if split == "test":
            stem = test_names[n_test]
            n_test += 1
            path = out / "test" / f"{stem}.png"
            truth.append({"id": f"test/{stem}", "label": names[c]})
        else:
            path = out / split / names[c] / f"{split}_{c:02d}_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, pixels)
    # the truth file last: its presence marks a complete dataset
    fileio.write_csv(
        out / TRUTH_FILE, pd.DataFrame(truth, columns=["id", "label"]).sort_values("id")
    )
    return out
