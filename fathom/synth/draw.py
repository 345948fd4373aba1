"""The drawing both synthetic datasets share: organism shapes, looks, sea-floor backgrounds.

An image is a float32 (h, w, 3) array in [0, 1]: `background` paints the sea floor and
returns the light at its depth, `render_organism` paints one organism in that light, and
`to_pixels` / `write_png` turn it into the file. Every random draw goes through the caller's
generator in a fixed order, so one seed gives the same bytes every time; tests and the demo
rely on that, so a change here changes every synthetic dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fathom import fileio

TRAIN_MAX_DEPTH = 800.0  # metres: training images come from 0-800 m, eval from 0-1300 m
EVAL_MAX_DEPTH = 1300.0


# shapes: a boolean mask over local coordinates (u, v) in [-1, 1]; a supercategory (fathomnet)
# or a pair of look-alike classes (folder) has one
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


def _cross(u, v):
    return (abs(u - v) <= 0.4) & (abs(u + v) <= 1.4) | (abs(u + v) <= 0.4) & (abs(u - v) <= 1.4)


def _frame(u, v):
    edge = np.maximum(abs(u), abs(v))
    return (edge <= 0.85) & (edge >= 0.5)


def _dumbbell(u, v):
    bells = ((u - 0.55) ** 2 + v**2 <= 0.2) | ((u + 0.55) ** 2 + v**2 <= 0.2)
    return bells | ((abs(u) <= 0.6) & (abs(v) <= 0.15))


SHAPES = [
    lambda u, v: u**2 + v**2 <= 1,
    lambda u, v: np.maximum(abs(u), abs(v)) <= 0.8,
    _polygon(3, 0.55),
    lambda u, v: abs(u) + abs(v) <= 1,
    _polygon(5),
    _polygon(6, 0.85),
    _radial(lambda t: 0.4 + 0.6 * ((1 + np.cos(5 * t)) / 2) ** 3),
    _radial(lambda t: 0.3 + 0.7 * ((1 + np.cos(4 * t)) / 2) ** 6),
    lambda u, v: ((abs(u) <= 0.3) & (abs(v) <= 1)) | ((abs(v) <= 0.3) & (abs(u) <= 1)),
    _cross,
    lambda u, v: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.35),
    lambda u, v: (u**2 + v**2 <= 1) & ((u - 0.5) ** 2 + v**2 >= 0.6),
    lambda u, v: u**2 + (v / 0.45) ** 2 <= 1,
    lambda u, v: (abs(u) <= 1) & (abs(v) <= 0.22),
    lambda u, v: (u**2 + v**2 <= 1) & (v >= -0.1),
    _radial(lambda t: 0.55 + 0.45 * np.cos(6 * t)),
    _frame,
    _radial(lambda t: 0.35 + 0.65 * ((1 + np.cos(t)) / 2) ** 0.5),
    _radial(lambda t: 0.3 + 0.7 * ((1 + np.cos(9 * t)) / 2) ** 8),
    _dumbbell,
]
# SHAPES[i] is SHAPE_NAMES[i]; the folder dataset builds its class names from these
SHAPE_NAMES = (
    "disc square triangle diamond pentagon hexagon star fourstar plus cross ring crescent "
    "ellipse bar halfdisc flower frame teardrop spiny dumbbell"
).split()
TEXTURES = ["solid", "striped", "spotted"]


@dataclass(frozen=True)
class Look:
    shape: int  # index into SHAPES
    rgb: tuple[float, float, float]
    texture: int  # index into TEXTURES


def render_organism(img: np.ndarray, look: Look, cx, cy, radius, angle, light) -> list[float]:
    """Paint one organism into `img` in place; return its COCO bbox [x, y, width, height]."""
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


def occlude(img: np.ndarray, rng: np.random.Generator, cx, cy, radius, light) -> None:
    """Paint a rock over part of the organism at (cx, cy): an ellipse of about its size,
    centred near its edge, so between a quarter and a half of it stays hidden."""
    h, w, _ = img.shape
    angle = rng.uniform(0, 2 * np.pi)
    ox, oy = cx + radius * 0.9 * np.cos(angle), cy + radius * 0.9 * np.sin(angle)
    rx, ry = radius * rng.uniform(0.6, 1.0), radius * rng.uniform(0.4, 0.8)
    x0, x1 = int(max(ox - rx, 0)), int(min(ox + rx + 1, w))
    y0, y1 = int(max(oy - ry, 0)), int(min(oy + ry + 1, h))
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    mask = ((xs - ox) / rx) ** 2 + ((ys - oy) / ry) ** 2 <= 1
    rock = np.array([0.32, 0.28, 0.24], dtype=np.float32) * rng.uniform(0.6, 1.1) * light
    img[y0:y1, x0:x1][mask] = rock


def background(
    rng: np.random.Generator, w: int, h: int, depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """A sea-floor-ish background and the lighting colour; deeper is darker and warmer-lit."""
    deep = depth > TRAIN_MAX_DEPTH
    t = min(depth / EVAL_MAX_DEPTH, 1.0)
    top = np.array([0.10, 0.42, 0.55]) * (1 - 0.6 * t) + rng.normal(0, 0.03, 3)
    bottom = np.array([0.25, 0.35, 0.30]) * (1 - 0.5 * t) + rng.normal(0, 0.03, 3)
    if deep:  # other vehicle lights and sediment: brownish floor, warm light
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


def to_pixels(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> None:
    # through a temp file: an interrupted run must not leave a half image under its final name
    with fileio.atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
