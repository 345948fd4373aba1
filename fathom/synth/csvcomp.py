"""Synthetic competitions in the train.csv layout, one per label format, with hidden truth.

Each stands in for a real Kaggle competition of its kind, with its file names, columns, ids,
image folders and metric, so the whole flow runs and scores on a CPU in seconds:

- `single`  Cassava Leaf Disease: `image_id,label` (labels 0-4, one class in ~60% of images),
            ids with their extension, train_images/ and test_images/; accuracy.
- `set`     Plant Pathology 2021: `image,labels` (a space-separated set of 6 classes, one or
            two per image); mean F1.
- `onehot`  Plant Pathology 2020: `image_id,healthy,multiple_diseases,rust,scab` (one 0/1
            column per class; `multiple_diseases` shows rust and scab together), ids without
            extension, one images/ folder for both splits; the submission is a probability
            per class column, scored by mean column-wise ROC AUC.
- `ranked`  Humpback Whale: `Image,Id`, a quarter of the training images `new_whale`, most
            individuals with a handful of images; five guesses per test image, a third of
            which show an individual training never saw (truth `new_whale`); MAP@5.

One organism (a distinct shape and colour per class) on a sea-floor background per label, as
the other synthetic datasets draw them. Written files:

    <out>/train.csv, <out>/sample_submission.csv, <out>/competition.toml
    <out>/<train folder>/<image>, <out>/<test folder>/<image>
    <out>/hidden/test_truth.csv    the submission's format holding the truth (read only to score)
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fathom import fileio
from fathom.data.csvtable import FORMATS, TRUTH_FILE
from fathom.errors import FathomError
from fathom.synth.draw import SHAPES, TRAIN_MAX_DEPTH, Look, background, render_organism, to_pixels

CASSAVA = [("0", 0.05), ("1", 0.10), ("2", 0.11), ("3", 0.62), ("4", 0.12)]
PP2021 = ["complex", "frog_eye_leaf_spot", "healthy", "powdery_mildew", "rust", "scab"]
PP2020 = ["healthy", "multiple_diseases", "rust", "scab"]
NEW_WHALE = "new_whale"


@dataclass(frozen=True)
class CsvSynthConfig:
    format: str = "single"  # single | set | onehot | ranked
    n_train: int = 300
    n_eval: int = 150
    size: int = 32  # square images, small so a CPU run takes seconds
    seed: int = 0

    def check(self) -> None:
        if self.format not in FORMATS:
            raise FathomError(f"unknown --format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.n_train < 60 or self.n_eval < 20:
            raise FathomError("--n-train must be at least 60 and --n-eval at least 20")
        if self.size < 16:
            raise FathomError("--size must be at least 16 px")


def looks(n: int) -> list[Look]:
    """n looks, each its own shape and a well-separated hue: told apart at 32 px."""
    if n > len(SHAPES):
        raise FathomError(f"at most {len(SHAPES)} distinct looks")
    return [Look(i, colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.95), 0) for i in range(n)]


def draw(rng: np.random.Generator, parts: list[Look], size: int) -> np.ndarray:
    """One organism per look, side by side when there are two."""
    img, light = background(rng, size, size, rng.uniform(0, TRAIN_MAX_DEPTH))
    n = len(parts)
    radius = size * (rng.uniform(0.28, 0.38) if n == 1 else rng.uniform(0.2, 0.24))
    for i, look in enumerate(parts):
        if n == 1:
            cx, cy = rng.uniform(radius * 0.9, size - radius * 0.9, 2)
        else:
            cx = size * (i + 0.5) / n + rng.uniform(-1, 1)
            cy = rng.uniform(radius, size - radius)
        render_organism(img, look, cx, cy, radius, rng.uniform(0, 2 * np.pi), light)
    return to_pixels(img)


def write_jpeg(path: Path, pixels: np.ndarray) -> None:
    with fileio.atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=95)


def _draw_labels(cfg: CsvSynthConfig, rng: np.random.Generator, n: int, split: str) -> list:
    """Each image's labels: a class name (single, ranked) or a list of them (set, onehot)."""
    if cfg.format == "single":
        names, p = zip(*CASSAVA, strict=True)
        return _quota(list(names), p, n, rng)
    if cfg.format == "set":
        out = []
        diseases = [c for c in PP2021 if c != "healthy"]
        for _ in range(n):
            u = rng.random()
            if u < 0.3:
                out.append(["healthy"])
            elif u < 0.8:
                out.append([diseases[min(int(rng.geometric(0.45)) - 1, 4)]])
            else:
                out.append(sorted(rng.choice(diseases, size=2, replace=False).tolist()))
        return out
    if cfg.format == "onehot":
        return _quota(PP2020, [0.28, 0.07, 0.34, 0.31], n, rng)
    return _whale_labels(cfg, rng, n, split)


def _quota(names: list[str], p, n: int, rng: np.random.Generator, least: int = 6) -> list[str]:
    """n labels in the shares `p`, every class at least `least` times (a rare class must
    still fill stratified folds), in random order."""
    least = min(least, n // (2 * len(names)))  # a small split keeps room for the largest
    counts = np.maximum(np.floor(np.asarray(p) / np.sum(p) * n).astype(int), least)
    counts[int(np.argmax(counts))] += n - counts.sum()  # the largest class absorbs the rest
    return [str(x) for x in rng.permutation(np.repeat(names, counts))]


N_KNOWN, N_UNSEEN = 10, 10  # whales: individuals in training, and ones it never shows


def whale_names(seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 7)
    return [f"w_{rng.integers(0, 16**7):07x}" for _ in range(N_KNOWN + N_UNSEEN)]


def _whale_labels(cfg: CsvSynthConfig, rng: np.random.Generator, n: int, split: str) -> list:
    """Known individuals by a long-tailed frequency; the rest of training (a quarter) and a
    third of the test are whales no training label names: `new_whale` in the truth."""
    names = whale_names(cfg.seed)
    weights = 1.0 / np.arange(1, N_KNOWN + 1) ** 0.7
    new_share = 0.25 if split == "train" else 1 / 3
    out = []
    for _ in range(n):
        if rng.random() < new_share:
            out.append(names[N_KNOWN + int(rng.integers(0, N_UNSEEN))])  # drawn as itself
        else:
            out.append(names[int(rng.choice(N_KNOWN, p=weights / weights.sum()))])
    return out


def _parts(cfg: CsvSynthConfig, label) -> list[Look]:
    if cfg.format == "single":
        return [looks(len(CASSAVA))[int(label)]]
    if cfg.format == "set":
        return [looks(len(PP2021))[PP2021.index(c)] for c in label]
    if cfg.format == "onehot":
        lk = looks(len(PP2020))
        if label == "multiple_diseases":
            return [lk[PP2020.index("rust")], lk[PP2020.index("scab")]]
        return [lk[PP2020.index(label)]]
    return [looks(N_KNOWN + N_UNSEEN)[whale_names(cfg.seed).index(label)]]


def _ids(cfg: CsvSynthConfig, rng: np.random.Generator, n: int, split: str) -> list[str]:
    if cfg.format == "onehot":
        return [f"{'Train' if split == 'train' else 'Test'}_{i}" for i in range(n)]
    digits = {"single": 10, "set": 16, "ranked": 9}[cfg.format]
    out: dict[str, None] = {}  # insertion-ordered: one seed, one order
    while len(out) < n:
        if cfg.format == "single":
            uid = str(rng.integers(10 ** (digits - 1), 10**digits))
        else:
            uid = rng.bytes((digits + 1) // 2).hex()[:digits]
        out[f"{uid}.jpg"] = None
    return list(out)


def _frames(cfg: CsvSynthConfig, ids: dict, labels: dict):
    """(train.csv, sample_submission.csv, truth, competition.toml text)."""
    fmt = cfg.format
    train_ids, test_ids = ids["train"], ids["eval"]
    train_y, test_y = labels["train"], labels["eval"]
    if fmt == "single":
        train = pd.DataFrame({"image_id": train_ids, "label": train_y})
        sample = pd.DataFrame({"image_id": test_ids, "label": "4"})
        truth = pd.DataFrame({"image_id": test_ids, "label": test_y})
        return train, sample, truth, 'metric = "accuracy"\n'
    if fmt == "set":
        join = [" ".join(s) for s in train_y]
        train = pd.DataFrame({"image": train_ids, "labels": join})
        sample = pd.DataFrame({"image": test_ids, "labels": "healthy"})
        truth = pd.DataFrame({"image": test_ids, "labels": [" ".join(s) for s in test_y]})
        return train, sample, truth, 'metric = "mean_f1"\n'
    if fmt == "onehot":

        def onehot(ids_, ys):
            return pd.DataFrame(
                {"image_id": ids_, **{c: [int(y == c) for y in ys] for c in PP2020}}
            )

        sample = pd.DataFrame({"image_id": test_ids, **{c: 0.25 for c in PP2020}})
        return onehot(train_ids, train_y), sample, onehot(test_ids, test_y), 'metric = "auc"\n'
    known = set(whale_names(cfg.seed)[:N_KNOWN])
    train = pd.DataFrame(
        {"Image": train_ids, "Id": [y if y in known else NEW_WHALE for y in train_y]}
    )
    first = [NEW_WHALE] + whale_names(cfg.seed)[:4]
    sample = pd.DataFrame({"Image": test_ids, "Id": " ".join(first)})
    truth = pd.DataFrame(
        {"Image": test_ids, "Id": [y if y in known else NEW_WHALE for y in test_y]}
    )
    return train, sample, truth, f'metric = "map@5"\nnew_label = "{NEW_WHALE}"\n'


FOLDERS = {
    "single": ("train_images", "test_images"),
    "set": ("train_images", "test_images"),
    "onehot": ("images", "images"),
    "ranked": ("train", "test"),
}


def generate_csv(out: str | Path, cfg: CsvSynthConfig = CsvSynthConfig(), progress=True) -> Path:
    """Write the competition under `out` (see the module docstring) and return `out`."""
    cfg.check()
    out = Path(out)
    if (out / "train.csv").exists() or (out / TRUTH_FILE).exists():
        raise FathomError(f"{out}: already holds a competition (choose an empty folder)")
    rng = np.random.default_rng(cfg.seed)
    sizes = {"train": cfg.n_train, "eval": cfg.n_eval}
    ids = {s: _ids(cfg, rng, n, s) for s, n in sizes.items()}
    labels = {s: _draw_labels(cfg, rng, n, s) for s, n in sizes.items()}
    folders = dict(zip(("train", "eval"), FOLDERS[cfg.format], strict=True))
    plan = [(s, uid, y) for s in sizes for uid, y in zip(ids[s], labels[s], strict=True)]
    for split, uid, y in tqdm(plan, desc="synth csv images", unit="img", disable=not progress):
        name = uid if uid.endswith(".jpg") else f"{uid}.jpg"
        write_jpeg(out / folders[split] / name, draw(rng, _parts(cfg, y), cfg.size))
    train, sample, truth, toml = _frames(cfg, ids, labels)
    fileio.write_csv(out / "train.csv", train)
    fileio.write_csv(out / "sample_submission.csv", sample)
    fileio.write_text(out / "competition.toml", toml)
    fileio.write_csv(out / TRUTH_FILE, truth)  # last: its presence marks a complete competition
    return out
