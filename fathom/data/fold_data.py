"""One fold's data, built in one place: what it trains and validates on, on which device,
from which caches. The training loop (fathom/engine/train.py) consumes it and builds none of
it itself.

Two steps, because the model comes between them: `fold_labels` (rows and targets, read off
the tables: the model's heads and prior biases need them) and `fold_images` (the caches and
where they live, judged on the memory the model on the device leaves free).

Sample indices, the numbers a batch holds: a row of the training table is itself; a
pseudo-labelled eval image (second round, `pseudo_from`) is len(train) + its eval-table row;
a box crop (`crop_rate`) is len(train) + its row of the crop table. `FoldImages.targets`
and `super_targets` are indexed by them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fathom.data.cache import build_cache
from fathom.data.coco import label_matrix
from fathom.data.crops import FoldCrops, crop_table, fold_crops
from fathom.data.loader import (
    ImageSource,
    JoinedSource,
    TrainData,
    device_plan,
    fold_rows,
    pseudo_labels,
    supercategory_targets,
    targets,
)
from fathom.errors import FathomError


@dataclass(frozen=True)
class FoldLabels:
    """The rows of a fold and their targets, before any image is read."""

    fold: int | None  # None: a full fit
    train_rows: np.ndarray  # rows of the training table it trains on
    val_rows: np.ndarray  # and validates on (none for a full fit)
    y_all: np.ndarray  # targets of every training-table row (targets())
    y_super: np.ndarray | None = None  # (N, S) supercategory targets; None: no such head
    supercat_of: np.ndarray | None = None  # the supercategory of each class column

    @property
    def name(self) -> str:
        return "full" if self.fold is None else f"fold{self.fold}"

    @property
    def n_super(self) -> int:
        return 0 if self.y_super is None else self.y_super.shape[1]


def fold_labels(data: TrainData, cfg, fold: int | None) -> FoldLabels:
    """Rows and targets of `fold` (None: a full fit); FathomError when it has too few rows."""
    name = "full" if fold is None else f"fold{fold}"
    train_rows, val_rows = fold_rows(data, fold, cfg.holdout_categories)
    if len(train_rows) < 2:
        raise FathomError(f"{name}: {len(train_rows)} training image(s); need at least 2")
    y_all = targets(data.train["categories"], data.class_ids, cfg.task)
    y_super, supercat_of = supercategory_targets(data) if cfg.supercat_weight > 0 else (None, None)
    return FoldLabels(fold, train_rows, val_rows, y_all, y_super, supercat_of)


@dataclass
class FoldImages:
    """The images a fold trains on and where they live, with the targets of every sample."""

    train_rows: np.ndarray  # the samples it trains on: labels.train_rows, then pseudo rows
    targets: np.ndarray  # targets of every sample index (module docstring)
    super_targets: np.ndarray | None  # supercategory targets of every sample index
    train_src: ImageSource | JoinedSource  # serves training-table rows (and pseudo rows)
    eval_src: ImageSource | None  # the eval images (None: the competition has none)
    n_labelled: int  # sample indices from here on are eval images (pseudo-labelled)
    n_pseudo: int = 0
    crops: FoldCrops | None = None


def fold_images(
    data: TrainData,
    cfg,
    labels: FoldLabels,
    side: int,
    device: torch.device,
    is_main: bool = True,
    say: Callable[[str], None] = print,
) -> FoldImages:
    """Build what is missing of the fold's caches and open them, on the device when
    everything that would live there fits (images_on_device), else through the loader. Every
    rank calls this: one process builds a cache while the others wait on its lock."""
    crop_rows = crop_table_of(data, cfg) if cfg.crop_rate > 0 else None
    on_device = images_on_device(data, cfg, side, crop_rows, device, labels.name, say, is_main)
    train_src, eval_src = open_images(data, cfg, side, device, on_device, is_main)
    images = FoldImages(
        train_rows=labels.train_rows,
        targets=labels.y_all,
        super_targets=labels.y_super,
        train_src=train_src,
        eval_src=eval_src,
        n_labelled=len(data.train),
    )
    if cfg.pseudo_from:
        add_pseudo_rows(images, data, cfg, labels, device)
        if is_main:
            say(
                f"{labels.name}: {images.n_pseudo} pseudo-labelled eval images from {cfg.pseudo_from}"
            )
    if crop_rows is not None:  # (config.check keeps crops and pseudo-labels apart)
        add_crops(images, data, cfg, labels, crop_rows, side, device, on_device, is_main)
    return images


def images_on_device(
    data: TrainData,
    cfg,
    side: int,
    crop_rows: pd.DataFrame | None,
    device: torch.device,
    name: str,
    say: Callable[[str], None],
    is_main: bool = True,
) -> bool:
    """Whether the fold's training images live on the device: the training cache, with the
    eval cache in a pseudo-label round and the box crops with crop_rate, judged together and
    once (device_plan), so that the last of them does not find the memory the first took."""
    image = side * side * 3
    parts = {"training cache": len(data.train) * image}
    if cfg.pseudo_from:
        parts["eval cache (pseudo-labels)"] = len(data.eval) * image
    if crop_rows is not None:
        parts["box crops"] = len(crop_rows) * image
    hold, why = device_plan(cfg.data_on_device, parts, device)
    if why and is_main:
        say(f"{name}: {why}")
    return hold


def open_images(
    data: TrainData, cfg, side: int, device: torch.device, on_device: bool, is_main: bool = True
) -> list[ImageSource | None]:
    """Image sources of the training and eval tables (None: an empty table), their caches
    built first if missing. The eval images go to the device only while they are predicted
    (ImageSource.held)."""
    sources = []
    for table, split in ((data.train, "train"), (data.eval, "eval")):
        if not len(table):
            sources.append(None)
            continue
        path = build_cache(
            table, cfg.cache_dir, side, f"{data.name}-{split}", cfg.num_workers or None, is_main
        )
        sources.append(ImageSource(path, device, on_device and split == "train", cfg.num_workers))
    return sources


def add_pseudo_rows(
    images: FoldImages, data: TrainData, cfg, labels: FoldLabels, device: torch.device
) -> None:
    """The second round's pseudo-labelled eval images joined to the fold's samples: rows
    appended, soft targets, and a source that serves both caches (pseudo_labels: fold k's
    targets come from the first round's fold-k model only)."""
    if images.eval_src is None:
        raise FathomError(f"pseudo_from={cfg.pseudo_from}: the competition has no eval images")
    keep, soft = pseudo_labels(
        cfg.pseudo_from, labels.fold, data, labels.val_rows, cfg.pseudo_threshold
    )
    y_eval = np.zeros((len(data.eval), labels.y_all.shape[1]), dtype=np.float32)
    y_eval[keep] = soft
    # the eval cache joins the training images held like them (on the device when they are)
    held = images.train_src.tensor is not None
    second = ImageSource(images.eval_src.path, device, held, cfg.num_workers)
    images.train_rows = np.concatenate([images.train_rows, len(data.train) + keep])
    images.targets = np.concatenate([images.targets, y_eval])
    images.train_src = JoinedSource(images.train_src, second)
    images.n_pseudo = len(keep)


def crop_table_of(data: TrainData, cfg) -> pd.DataFrame:
    """The box crops of every training image (crop_rate > 0), one row each."""
    if data.boxes is None or data.boxes.empty:
        raise FathomError(
            f"crop_rate = {cfg.crop_rate}: {data.name} has no boxes "
            "(object_detection/train.json annotations); set crop_rate = 0"
        )
    table = crop_table(data.train, data.boxes, cfg.crop_margin)
    if table.empty:
        raise FathomError(
            f"crop_rate = {cfg.crop_rate}: no box of {data.name} is on a training image"
        )
    return table


def add_crops(
    images: FoldImages,
    data: TrainData,
    cfg,
    labels: FoldLabels,
    table: pd.DataFrame,
    side: int,
    device: torch.device,
    on_device: bool,
    is_main: bool = True,
) -> None:
    """The fold's box crops: the crops of every training image in one cache,
    `<dataset>-crops`, of which this fold trains on its training images'; their targets
    follow the training table's rows (sample offset + j is crop j)."""
    path = build_cache(
        table, cfg.cache_dir, side, f"{data.name}-crops", cfg.num_workers or None, is_main
    )
    crop_targets = label_matrix(table["categories"], data.class_ids)
    images.crops = FoldCrops(
        table=table,
        eligible=fold_crops(table, data.train, labels.train_rows, cfg.holdout_categories),
        offset=len(data.train),
        rate=cfg.crop_rate,
        source=ImageSource(path, device, on_device, cfg.num_workers),
        targets=crop_targets,
    )
    images.targets = np.concatenate([images.targets, crop_targets])
    if images.super_targets is not None:  # a crop's supercategories: those of its categories
        images.super_targets = np.concatenate(
            [
                images.super_targets,
                crop_supercategories(crop_targets, labels.supercat_of, labels.n_super),
            ]
        )


def crop_supercategories(crop_targets: np.ndarray, supercat_of, n_super: int) -> np.ndarray:
    """The supercategory targets of box crops: those of the categories each crop holds."""
    member = np.zeros((crop_targets.shape[1], n_super), dtype=np.float32)
    for j, s in enumerate(supercat_of):
        if s >= 0:
            member[j, s] = 1.0
    return (crop_targets @ member > 0).astype(np.float32)
