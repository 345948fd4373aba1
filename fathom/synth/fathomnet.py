"""A synthetic FathomNet-style competition, written in exactly the Kaggle layout.

Why: Kaggle and the image URLs cannot be reached from every machine (CI, a laptop on a
plane), and the whole kit should still run end to end. The synthetic competition keeps the
real one's hard parts: 290 categories in 20 supercategories, a long tail, about half of the
categories never seen in training, 1-6 organisms per image, and an eval split whose deep
part is out-of-sample (other background and lighting, unseen or rare categories).

Each supercategory has its own shape and hue; its categories differ by hue shade and
texture (solid, stripes, spots), so categories of one supercategory look alike and a small
CNN can still tell them apart.

`realistic=True` makes the levers that only pay on real frames (box crops, tiled prediction)
able to matter: a wide frame (384x216 unless set) where each organism covers about 0.5-2% of
it, as on a full-HD ROV frame; look-alike categories within a supercategory (shades 2.5x
closer); partial occlusion by rocks. The deep out-of-sample shift stays. The default mode is
unchanged, byte for byte. The eval truth goes to `hidden/eval_truth.csv`, which no
stage of fathom reads except `score`.

This module owns what goes into the competition (categories, splits, labels, files); how an
organism and its background look is `fathom.synth.draw`'s, shared with the folder dataset.
"""

from __future__ import annotations

import colorsys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from fathom import fileio
from fathom.errors import FathomError
from fathom.synth.draw import (
    EVAL_MAX_DEPTH,
    SHAPES,
    TRAIN_MAX_DEPTH,
    Look,
    background,
    occlude,
    render_organism,
    to_pixels,
    write_png,
)

SUPERCATEGORIES = (
    "Anemone, Barnacle, Black coral, Crab, Eel, Fish, Gastropod, Glass sponge, Hermit crab, "
    "Lobster, Octopus, Sea cucumber, Sea fan, Sea pen, Sea spider, Sea star, Shrimp, "
    "Soft coral, Squat lobster, Urchin"
).split(", ")
TRUTH_FILE = Path("hidden") / "eval_truth.csv"


@dataclass(frozen=True)
class SynthConfig:
    n_train: int = 900
    n_eval: int = 450
    width: int = 128
    height: int = 96
    n_categories: int = 290
    n_supercategories: int = 20
    seen_fraction: float = 0.5  # share of categories that occur in training at all
    out_of_sample_fraction: float = 0.4  # share of eval images from below TRAIN_MAX_DEPTH
    seed: int = 0
    realistic: bool = False  # small organisms in a wide frame, look-alikes, occlusion

    def check(self) -> None:
        if self.n_train < 10 or self.n_eval < 10:
            raise FathomError("synth needs at least 10 train and 10 eval images")
        if not 1 <= self.n_supercategories <= len(SUPERCATEGORIES):
            raise FathomError(f"supercategories must be 1..{len(SUPERCATEGORIES)}")
        if self.n_categories < 2 * self.n_supercategories:
            raise FathomError("need at least two categories per supercategory")
        if self.width < 32 or self.height < 32:
            raise FathomError("images must be at least 32x32")
        if not 0 < self.seen_fraction <= 1 or not 0 < self.out_of_sample_fraction < 1:
            raise FathomError("seen and out-of-sample fractions must be in (0, 1)")


def category_looks(cfg: SynthConfig, supercat_of: np.ndarray) -> list[Look]:
    looks = []
    rank_in_super: dict[int, int] = {}
    for s in supercat_of:
        j = rank_in_super.get(int(s), 0)
        rank_in_super[int(s)] = j + 1
        base_hue = (int(s) * 0.618034) % 1.0
        shade = (j // 3) % 5 - 2  # five hue shades around the supercategory's hue
        # realistic: look-alike species, told apart by a slight shade and the texture
        hue = (base_hue + (0.022 if cfg.realistic else 0.055) * shade) % 1.0
        value = 0.95 if (j // 15) % 2 == 0 else 0.7
        looks.append(Look(int(s) % len(SHAPES), colorsys.hsv_to_rgb(hue, 0.85, value), j % 3))
    return looks


def _draw_labels(rng, weights: np.ndarray, supercat_of: np.ndarray) -> list[int]:
    """1-3 categories: the first by `weights`, extras often from the same supercategory."""
    first = int(rng.choice(len(weights), p=weights))
    labels = [first]
    n_extra = rng.choice([0, 1, 2], p=[0.68, 0.24, 0.08])
    for _ in range(n_extra):
        if rng.random() < 0.5:
            same = np.flatnonzero((supercat_of == supercat_of[first]) & (weights > 0))
            pick = int(rng.choice(same))
        else:
            pick = int(rng.choice(len(weights), p=weights))
        if pick not in labels:
            labels.append(pick)
    return labels


def _new_uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def generate(out: str | Path, cfg: SynthConfig = SynthConfig(), progress: bool = True) -> Path:
    """Write the competition under `out` and return `out`."""
    cfg.check()
    out = Path(out)
    if (out / "category_key.csv").exists():
        raise FathomError(f"{out}: already holds a competition (choose an empty folder)")
    rng = np.random.default_rng(cfg.seed)
    n_cat = cfg.n_categories

    # categories: supercategory sizes vary (some groups are much richer than others)
    sizes = 2 + rng.multinomial(
        n_cat - 2 * cfg.n_supercategories, rng.dirichlet(np.full(cfg.n_supercategories, 2.0))
    )
    supercat_of = np.repeat(np.arange(cfg.n_supercategories), sizes)
    looks = category_looks(cfg, supercat_of)
    names = SUPERCATEGORIES[: cfg.n_supercategories]
    cat_ids = np.arange(1, n_cat + 1)

    # which categories training shows, and how often: a long tail over the seen ones
    n_seen = max(cfg.n_supercategories, int(round(cfg.seen_fraction * n_cat)))
    seen = rng.permutation(n_cat)[:n_seen]
    train_w = np.zeros(n_cat)
    train_w[seen] = 1.0 / np.arange(1, n_seen + 1) ** 1.1
    train_w /= train_w.sum()
    unseen = np.setdiff1d(np.arange(n_cat), seen)
    rare = seen[n_seen // 2 :]
    deep_w = np.zeros(n_cat)
    if len(unseen):
        deep_w[unseen] = 0.75 / len(unseen)
    deep_w[rare] += (0.25 if len(unseen) else 1.0) / len(rare)
    deep_w /= deep_w.sum()

    images, annotations, truth, train_rows = {"train": [], "eval": []}, [], [], []
    n_eval_deep = int(round(cfg.out_of_sample_fraction * cfg.n_eval))
    plan = [("train", False)] * cfg.n_train
    plan += [("eval", True)] * n_eval_deep + [("eval", False)] * (cfg.n_eval - n_eval_deep)
    order = np.concatenate([np.arange(cfg.n_train), cfg.n_train + rng.permutation(cfg.n_eval)])
    plan = [plan[i] for i in order]
    # every seen category occurs at least once in training
    forced = list(rng.permutation(seen))

    for split in ("train", "eval"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    image_id = 0
    for split, deep in tqdm(plan, desc="synth images", unit="img", disable=not progress):
        image_id += 1
        uid = _new_uuid(rng)
        depth = (
            rng.uniform(TRAIN_MAX_DEPTH, EVAL_MAX_DEPTH)
            if deep
            else rng.uniform(0, TRAIN_MAX_DEPTH)
        )
        labels = _draw_labels(rng, deep_w if deep else train_w, supercat_of)
        if split == "train" and forced:
            labels[0] = int(forced.pop())
            labels = list(dict.fromkeys(labels))
        img, light = background(rng, cfg.width, cfg.height, depth)
        n_org = max(len(labels), int(min(6, 1 + rng.poisson(0.6))))
        owners = labels + [
            labels[int(rng.integers(len(labels)))] for _ in range(n_org - len(labels))
        ]
        scale = min(cfg.width, cfg.height)
        for c in owners:
            # realistic: an organism covers ~0.5-2% of the frame, as on a full-HD ROV frame
            radius = scale * (rng.uniform(0.05, 0.1) if cfg.realistic else rng.uniform(0.11, 0.2))
            cx = rng.uniform(radius * 0.6, cfg.width - radius * 0.6)
            cy = rng.uniform(radius * 0.6, cfg.height - radius * 0.6)
            bbox = render_organism(img, looks[c], cx, cy, radius, rng.uniform(0, 2 * np.pi), light)
            if cfg.realistic and rng.random() < 0.5:  # a rock hides part of it; its box stays
                occlude(img, rng, cx, cy, radius, light)
            if split == "train":
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": float(cat_ids[c]),
                        "bbox": bbox,
                        "area": bbox[2] * bbox[3],
                        "iscrowd": 0,
                    }
                )
        file_name = f"{uid}.png"
        write_png(out / "images" / split / file_name, to_pixels(img))
        images[split].append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": cfg.width,
                "height": cfg.height,
                "coco_url": f"https://synthetic.fathom.invalid/images/{file_name}",
            }
        )
        ids = sorted(int(cat_ids[c]) for c in labels)
        if split == "train":
            train_rows.append({"id": uid, "categories": str([float(c) for c in ids])})
        else:
            truth.append({"id": uid, "categories": " ".join(map(str, ids)), "osd": int(deep)})

    categories = [
        {"id": int(cat_ids[c]), "name": f"{names[s]} sp. {c + 1}", "supercategory": names[s]}
        for c, s in enumerate(supercat_of)
    ]
    info = {"description": f"fathom synthetic competition (seed {cfg.seed})", "version": "1.0"}
    for split, split_annotations in (("train", annotations), ("eval", [])):
        coco = {
            "info": info,
            "images": images[split],
            "annotations": split_annotations,
            "categories": categories,
        }
        fileio.write_json(out / "object_detection" / f"{split}.json", coco)
    fileio.write_csv(out / "multilabel_classification" / "train.csv", pd.DataFrame(train_rows))
    fileio.write_csv(out / TRUTH_FILE, pd.DataFrame(truth))
    sample = pd.DataFrame(
        {
            "id": [r["id"] for r in truth[:2]],
            "categories": [" ".join(map(str, cat_ids[:6])), " ".join(map(str, cat_ids[6:9]))],
            "osd": [0.1, 0.9],
        }
    )
    fileio.write_csv(out / "sample_submission.csv", sample)
    # category_key.csv last: its presence marks a complete competition folder
    key = pd.DataFrame(
        {
            "id": cat_ids,
            "name": [c["name"] for c in categories],
            "supercat": [names[s] for s in supercat_of],
        }
    )
    fileio.write_csv(out / "category_key.csv", key)
    return out
