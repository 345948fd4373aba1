"""A synthetic FathomNet-style competition, written in exactly the Kaggle layout.

Why: Kaggle and the image URLs cannot be reached from every machine (CI, a laptop on a
plane), and the whole kit should still run end to end. The synthetic competition keeps the
real one's hard parts: 290 categories in 20 supercategories, a long tail, about half of the
categories never seen in training, 1-6 organisms per image, and an eval split whose deep
part is out-of-sample (other background and lighting, unseen or rare categories).

Each supercategory has its own shape and hue; its categories differ by hue shade and
texture (solid, stripes, spots), so categories of one supercategory look alike and a small
CNN can still tell them apart. The eval truth goes to `hidden/eval_truth.csv`, which no
stage of fathom reads except `score`.
"""

from __future__ import annotations

import colorsys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fathom import fileio
from fathom.errors import FathomError

SUPERCATEGORIES = [
    "Anemone", "Barnacle", "Black coral", "Crab", "Eel", "Fish", "Gastropod", "Glass sponge",
    "Hermit crab", "Lobster", "Octopus", "Sea cucumber", "Sea fan", "Sea pen", "Sea spider",
    "Sea star", "Shrimp", "Soft coral", "Squat lobster", "Urchin",
]  # fmt: skip
TRAIN_MAX_DEPTH = 800.0  # metres: training images come from 0-800 m, eval from 0-1300 m
EVAL_MAX_DEPTH = 1300.0
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


# --- shapes: a boolean mask over local coordinates (u, v) in [-1, 1], one per supercategory
def _polygon(n: int, apothem: float = 0.8):
    angles = 2 * np.pi * np.arange(n) / n + np.pi / 2

    def mask(u, v):
        return np.max([u * np.cos(a) + v * np.sin(a) for a in angles], axis=0) <= apothem

    return mask


def _radial(f):
    def mask(u, v):
        r, t = np.hypot(u, v), np.arctan2(v, u)
        return r <= f(t)

    return mask


SHAPES = [
    lambda u, v: u**2 + v**2 <= 1,  # disc
    lambda u, v: np.maximum(abs(u), abs(v)) <= 0.8,  # square
    _polygon(3, 0.55),  # triangle
    lambda u, v: abs(u) + abs(v) <= 1,  # diamond
    _polygon(5),  # pentagon
    _polygon(6, 0.85),  # hexagon
    _radial(lambda t: 0.4 + 0.6 * ((1 + np.cos(5 * t)) / 2) ** 3),  # star
    _radial(lambda t: 0.3 + 0.7 * ((1 + np.cos(4 * t)) / 2) ** 6),  # four-point star
    lambda u, v: ((abs(u) <= 0.3) & (abs(v) <= 1)) | ((abs(v) <= 0.3) & (abs(u) <= 1)),  # plus
    lambda u, v: (abs(u - v) <= 0.4) & (abs(u + v) <= 1.4) | (abs(u + v) <= 0.4) & (abs(u - v) <= 1.4),  # x
    lambda u, v: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.35),  # ring
    lambda u, v: (u**2 + v**2 <= 1) & ((u - 0.5) ** 2 + v**2 >= 0.6),  # crescent
    lambda u, v: u**2 + (v / 0.45) ** 2 <= 1,  # ellipse
    lambda u, v: (abs(u) <= 1) & (abs(v) <= 0.22),  # bar
    lambda u, v: (u**2 + v**2 <= 1) & (v >= -0.1),  # half disc
    _radial(lambda t: 0.55 + 0.45 * np.cos(6 * t)),  # flower
    lambda u, v: (np.maximum(abs(u), abs(v)) <= 0.85) & (np.maximum(abs(u), abs(v)) >= 0.5),  # frame
    _radial(lambda t: 0.35 + 0.65 * ((1 + np.cos(t)) / 2) ** 0.5),  # teardrop
    _radial(lambda t: 0.3 + 0.7 * ((1 + np.cos(9 * t)) / 2) ** 8),  # spiny
    lambda u, v: ((u - 0.55) ** 2 + v**2 <= 0.2) | ((u + 0.55) ** 2 + v**2 <= 0.2) | ((abs(u) <= 0.6) & (abs(v) <= 0.15)),  # dumbbell
]  # fmt: skip


@dataclass(frozen=True)
class Look:
    shape: int
    rgb: tuple[float, float, float]
    texture: int  # 0 solid, 1 stripes, 2 spots


def category_looks(cfg: SynthConfig, supercat_of: np.ndarray) -> list[Look]:
    looks = []
    rank_in_super: dict[int, int] = {}
    for s in supercat_of:
        j = rank_in_super.get(int(s), 0)
        rank_in_super[int(s)] = j + 1
        base_hue = (int(s) * 0.618034) % 1.0
        shade = (j // 3) % 5 - 2  # five hue shades around the supercategory's hue
        hue = (base_hue + 0.055 * shade) % 1.0
        value = 0.95 if (j // 15) % 2 == 0 else 0.7
        looks.append(Look(int(s) % len(SHAPES), colorsys.hsv_to_rgb(hue, 0.85, value), j % 3))
    return looks


def _render_organism(img: np.ndarray, look: Look, cx, cy, radius, angle, light) -> list[float]:
    h, w, _ = img.shape
    x0, x1 = int(max(cx - radius, 0)), int(min(cx + radius + 1, w))
    y0, y1 = int(max(cy - radius, 0)), int(min(cy + radius + 1, h))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = (xs - cx) / radius, (ys - cy) / radius
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    mask = SHAPES[look.shape](u, v)
    if not mask.any():
        return [float(x0), float(y0), 0.0, 0.0]
    color = np.array(look.rgb, dtype=np.float32)
    pattern = np.ones_like(u)
    if look.texture == 1:
        pattern = np.where(np.sin(u * 9.0) > 0, 1.0, 0.45)
    elif look.texture == 2:
        pattern = np.where(np.sin(u * 8.0) * np.sin(v * 8.0) > 0.35, 0.4, 1.0)
    patch = pattern[..., None] * color * light
    region = img[y0:y1, x0:x1]
    region[mask] = patch[mask]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [
        float(x0 + cols[0]),
        float(y0 + rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


def _background(
    rng: np.random.Generator, w: int, h: int, depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """A sea-floor-ish background and the lighting colour; deeper is darker and warmer-lit."""
    deep = depth > TRAIN_MAX_DEPTH
    t = min(depth / EVAL_MAX_DEPTH, 1.0)
    top = np.array([0.10, 0.42, 0.55]) * (1 - 0.6 * t) + rng.normal(0, 0.03, 3)
    bottom = np.array([0.25, 0.35, 0.30]) * (1 - 0.5 * t) + rng.normal(0, 0.03, 3)
    if deep:  # other vehicle lights and sediment: brownish floor, warm light, heavy vignette
        top, bottom = np.array([0.05, 0.06, 0.10]), np.array([0.30, 0.22, 0.14])
    grad = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (top * (1 - grad) + bottom * grad).astype(np.float32) * np.ones((h, w, 3), np.float32)
    img += rng.normal(0, 0.04, (h, w, 3)).astype(np.float32)
    n_snow = int(rng.integers(5, 40 if not deep else 120))
    ys, xs = rng.integers(0, h, n_snow), rng.integers(0, w, n_snow)
    img[ys, xs] = 0.85
    light = np.array([1.0, 1.0, 1.0]) * (1.0 - 0.35 * t)
    if deep:
        light = np.array([1.0, 0.8, 0.55]) * 0.7
    return img, light.astype(np.float32)


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
        img, light = _background(rng, cfg.width, cfg.height, depth)
        n_org = max(len(labels), int(min(6, 1 + rng.poisson(0.6))))
        owners = labels + [
            labels[int(rng.integers(len(labels)))] for _ in range(n_org - len(labels))
        ]
        scale = min(cfg.width, cfg.height)
        for c in owners:
            radius = scale * rng.uniform(0.11, 0.2)
            cx = rng.uniform(radius * 0.6, cfg.width - radius * 0.6)
            cy = rng.uniform(radius * 0.6, cfg.height - radius * 0.6)
            bbox = _render_organism(img, looks[c], cx, cy, radius, rng.uniform(0, 2 * np.pi), light)
            if split == "train":
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image_id, "category_id": float(cat_ids[c]),
                     "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
                )  # fmt: skip
        pixels = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        file_name = f"{uid}.png"
        with fileio.atomic_path(out / "images" / split / file_name) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
        images[split].append(
            {"id": image_id, "file_name": file_name, "width": cfg.width, "height": cfg.height,
             "coco_url": f"https://synthetic.fathom.invalid/images/{file_name}"}
        )  # fmt: skip
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
    fileio.write_json(out / "object_detection" / "train.json",
                      {"info": info, "images": images["train"], "annotations": annotations, "categories": categories})  # fmt: skip
    fileio.write_json(out / "object_detection" / "eval.json",
                      {"info": info, "images": images["eval"], "annotations": [], "categories": categories})  # fmt: skip
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
