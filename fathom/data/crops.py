"""Regions of a frame as images of their own: box crops to train on, tiles to predict on.

Why: a FathomNet frame is 1920x1080 and an organism may cover 1% of it; squashed to 256 px
it is a few pixels wide. Two levers (issue 12) look at it closer, both off by default:

- **Box crops** (`crop_rate`, `crop_margin`): object_detection/train.json holds about four
  boxes per image. Each box gives a square crop around it, with a context margin of
  `crop_margin` times its larger side on every side, clamped to the frame. A crop's targets
  are the categories of the boxes it holds: a box counts when at least half of its area
  (`MIN_INSIDE`) is inside the crop, and the crop's own box always does. Each epoch,
  `crop_rate` of the fold's samples are crops of boxes of the fold's own training images
  (never of its validation images) instead of whole images; validation and OOF stay whole.
- **Tiles** (`tiles`, `tile_overlap`, `tile_blend`): at prediction time an n x n grid of
  overlapping tiles of each frame is predicted as well, and the frame's probabilities are
  blended with the maximum over its tiles (fathom/engine/predict.py).

Regions are fractions of the frame (left, top, right, bottom), so boxes given in the COCO
frame still fit an image stored at another resolution. Their pixels are cut from the
full-resolution file, then resized, into a cache like the images' (fathom/data/cache.py, a
table with a `crop` column): `<dataset>-crops` for the boxes of the training images,
`<dataset>-<split>-tiles<n>` for the tiles.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from fathom.errors import FathomError

MIN_INSIDE = 0.5  # a box belongs to a crop when at least this share of its area is inside
CROP_SALT = 12  # keeps the epoch's crop draw apart from every other use of (seed, epoch)


def crop_region(
    box: tuple[float, float, float, float], frame: tuple[int, int], margin: float
) -> tuple[float, float, float, float]:
    """The square (left, top, right, bottom), in pixels, around a COCO box (x, y, w, h): its
    larger side plus `margin` of it on each side, centred on the box, moved inside the frame
    (width, height); a side longer than the frame's is cut to it."""
    x, y, w, h = box
    width, height = frame
    side = max(w, h) * (1 + 2 * margin)
    sw, sh = min(side, width), min(side, height)
    left = min(max(x + w / 2 - sw / 2, 0.0), width - sw)
    top = min(max(y + h / 2 - sh / 2, 0.0), height - sh)
    return left, top, left + sw, top + sh


def inside_fraction(boxes: np.ndarray, region) -> np.ndarray:
    """The share of each box's (x, y, w, h rows) area that lies inside `region` (pixels)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    left, top, right, bottom = region
    iw = np.clip(
        np.minimum(boxes[:, 0] + boxes[:, 2], right) - np.maximum(boxes[:, 0], left), 0, None
    )
    ih = np.clip(
        np.minimum(boxes[:, 1] + boxes[:, 3], bottom) - np.maximum(boxes[:, 1], top), 0, None
    )
    return iw * ih / (boxes[:, 2] * boxes[:, 3])


def _frame(path: str, width: int, height: int) -> tuple[int, int]:
    """The frame the boxes are given in: the json's size, else the image file's own."""
    if width > 0 and height > 0:
        return width, height
    try:
        with Image.open(path) as img:  # the header only: no pixels are decoded
            return img.size
    except OSError as exc:
        raise FathomError(f"{path}: cannot read image size ({exc})") from None


def crop_table(train: pd.DataFrame, boxes: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One crop per box of the images of `train`: `id` (`<image id>/box<k>`), `source` (the
    image's id), `path`, `crop` (the region as fractions of the frame) and `categories` (those
    of the boxes it holds, sorted), in the order of `train`'s rows."""
    rows = []
    by_image = dict(tuple(boxes.groupby("id", sort=False)))
    for uid, path in zip(train["id"], train["path"], strict=True):
        own = by_image.get(uid)
        if own is None:
            continue
        xywh = own[["x", "y", "w", "h"]].to_numpy(dtype=np.float64)
        cats = own["category_id"].to_numpy()
        width, height = _frame(path, int(own["width"].iloc[0]), int(own["height"].iloc[0]))
        for k, box in enumerate(xywh):
            left, top, right, bottom = crop_region(tuple(box), (width, height), margin)
            held = inside_fraction(xywh, (left, top, right, bottom)) >= MIN_INSIDE
            held[k] = True  # its own box, even one that spills out of the frame
            rows.append(
                {
                    "id": f"{uid}/box{k}",
                    "source": uid,
                    "path": path,
                    "crop": (left / width, top / height, right / width, bottom / height),
                    "categories": tuple(sorted({int(c) for c in cats[held]})),
                }
            )
    return pd.DataFrame(rows, columns=["id", "source", "path", "crop", "categories"])


def tile_regions(n: int, overlap: float) -> list[tuple[float, float, float, float]]:
    """The n x n tiles of a frame, row by row, as fractions: each tile is the frame's shape
    scaled by 1 / (n - (n - 1) overlap), neighbours share `overlap` of a tile's side, the
    first starts at 0 and the last ends at 1."""
    if n < 1 or not 0 <= overlap < 1:
        raise FathomError(f"tiles {n} with overlap {overlap}: need n >= 1 and 0 <= overlap < 1")
    side = 1.0 / (n - (n - 1) * overlap)
    starts = [i * side * (1 - overlap) for i in range(n)]
    ends = [min(s + side, 1.0) for s in starts[:-1]] + [1.0]
    spans = list(zip(starts, ends, strict=True))
    return [(x0, y0, x1, y1) for y0, y1 in spans for x0, x1 in spans]


def tile_table(table: pd.DataFrame, n: int, overlap: float) -> pd.DataFrame:
    """n * n rows per image of `table`, image by image (image r's tiles are rows r*n*n ...):
    `id` (`<image id>/tile<t>`), `source`, `path`, `crop`."""
    regions = tile_regions(n, overlap)
    return pd.DataFrame(
        [
            {"id": f"{uid}/tile{t}", "source": uid, "path": path, "crop": region}
            for uid, path in zip(table["id"], table["path"], strict=True)
            for t, region in enumerate(regions)
        ],
        columns=["id", "source", "path", "crop"],
    )


def fold_crops(
    crops: pd.DataFrame, train: pd.DataFrame, train_rows: np.ndarray, holdout=()
) -> np.ndarray:
    """The rows of `crops` a fold may train on: crops of its training images only (never of
    a validation image), none holding a held-out category."""
    mine = set(train["id"].to_numpy()[train_rows])
    held = set(holdout)
    ok = [
        src in mine and not held.intersection(c)
        for src, c in zip(crops["source"], crops["categories"], strict=True)
    ]
    return np.flatnonzero(np.asarray(ok, dtype=bool))


@dataclass
class FoldCrops:
    """A fold's crops, mixed into its epochs. A sample index below `offset` is a row of the
    training table (a whole image); `offset + j` is crop j of `table`."""

    table: pd.DataFrame  # every crop of the training table (the crop cache's rows)
    eligible: np.ndarray  # rows of `table` this fold trains on
    offset: int  # the training table's length
    rate: float
    source: object  # the crop cache's ImageSource
    targets: np.ndarray  # (len(table), C) 0/1 targets of every crop

    def epoch_rows(self, train_rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """The epoch's samples, as many as `train_rows`: `rate` of them crops (without
        repeats while there are enough), the rest whole images; the same on every rank."""
        n = len(train_rows)
        n_crops = int(round(self.rate * n)) if len(self.eligible) else 0
        rng = np.random.default_rng([seed, epoch, CROP_SALT])
        whole = rng.choice(train_rows, n - n_crops, replace=False)
        crops = rng.choice(self.eligible, n_crops, replace=n_crops > len(self.eligible))
        return np.concatenate([whole, self.offset + crops]).astype(np.int64)

    def epoch_batches(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Each batch with its whole images first, then its crops: one slice from each cache."""
        return [np.concatenate([b[b < self.offset], b[b >= self.offset]]) for b in batches]

    def batches(
        self, whole, index_batches: list[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """(rows, images) of batches from `epoch_batches`: whole images from `whole` (the
        training cache's ImageSource), crops from this fold's crop cache, side by side."""
        wholes = [b[b < self.offset] for b in index_batches]
        crops = [b[b >= self.offset] - self.offset for b in index_batches]
        pairs = zip(index_batches, whole.batches(wholes), self.source.batches(crops), strict=True)
        for rows, (_, a), (_, c) in pairs:
            yield rows, torch.cat([a, c])
