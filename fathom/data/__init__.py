"""Datasets of both kinds behind one door: `open_dataset(path)`.

This is the one place where the two layouts part:
- the Kaggle layout of FathomNet 2023 (`category_key.csv`, COCO jsons, `images/<split>/`),
  multi-label, read by `fathom.data.coco`;
- a single-label folder dataset (`train/<class>/<image>`, optional `val/`, `test/`), read by
  `fathom.data.imagefolder`;
- a Kaggle competition in the `train.csv` + `sample_submission.csv` layout (single labels,
  label sets, one-hot columns or ranked guesses), read by `fathom.data.csvtable`.
Everything downstream (cache, folds, prior, train, predict, tune, submit, score, report) asks a
`Dataset` for its categories and its labelled ("train") and unlabelled ("eval") tables, which
have the same columns for both kinds, and for its `task`.

The rest of the package: `folds` (assignments), `images` (the downloader), `cache` (resized
copies), `loader` (batches for the engine), `augment` (batched augmentation on the device).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fathom.data import coco, csvtable, imagefolder
from fathom.data.folds import read_folds
from fathom.errors import FathomError

KINDS = ("kaggle", "folder", "csv")
# any of these makes a folder a Kaggle-layout competition (whose reader then names what is missing)
KAGGLE_MARKERS = ("category_key.csv", "object_detection", "multilabel_classification")


@dataclass(frozen=True)
class Dataset:
    """A dataset folder and its kind. Paths only: nothing is read until asked."""

    root: Path
    kind: str  # "kaggle" (the FathomNet COCO layout), "folder" (train/<class>/...) or "csv"

    @property
    def task(self) -> str:
        if self.kind == "csv":
            return self.layout().task
        return "multilabel" if self.kind == "kaggle" else "singlelabel"

    def layout(self) -> csvtable.Layout:
        """A train.csv competition's detected layout (format, metric, columns)."""
        return csvtable.open_layout(self.root)

    @property
    def name(self) -> str:
        """The folder's own name: the prefix of its cache files, robust to moving the folder."""
        return self.root.resolve().name or "data"

    @property
    def truth_file(self) -> Path:
        """Where a synthetic dataset keeps its hidden eval truth (real ones have none)."""
        if self.kind == "csv":
            return self.root / csvtable.TRUTH_FILE
        return self.root / (coco_truth() if self.kind == "kaggle" else imagefolder.TRUTH_FILE)

    def categories(self) -> pd.DataFrame:
        """`id,name,supercat,supercat_id`: the output columns of every probability matrix, in
        order. A folder dataset's classes are ids 0..C-1, each its own supercategory."""
        if self.kind == "kaggle":
            return coco.read_categories(coco.open_competition(self.root))
        if self.kind == "csv":
            return self.layout().categories()
        classes = imagefolder.read_classes(imagefolder.open_folder(self.root))
        return classes.assign(supercat=classes["name"], supercat_id=classes["id"])[
            ["id", "name", "supercat", "supercat_id"]
        ]

    def split(self, split: str, *, require_images: bool = True, categories=None) -> pd.DataFrame:
        """ "train": every labelled image (a folder dataset's train/ and val/); "eval": the images
        to predict (COCO eval.json; a folder dataset's test/). Same columns for both kinds."""
        if split not in ("train", "eval"):
            raise FathomError(f"unknown split {split!r}; choose from train, eval")
        if self.kind == "kaggle":
            comp = coco.open_competition(self.root)
            cats = coco.read_categories(comp) if categories is None else categories
            return coco.read_split(comp, split, require_images=require_images, categories=cats)
        if self.kind == "csv":
            return csvtable.read_split(self.layout(), split, require_images=require_images)
        ds = imagefolder.open_folder(self.root)
        classes = imagefolder.read_classes(ds)
        if split == "eval":
            return imagefolder.read_folder_split(ds, "test", classes)
        parts = [imagefolder.read_folder_split(ds, s, classes) for s in ("train", "val")]
        return pd.concat(parts, ignore_index=True)

    def labels(self) -> dict[str, tuple[int, ...]]:
        """image id -> its category ids, for every labelled image."""
        train = self.split("train", require_images=False)
        return dict(zip(train["id"], train["categories"], strict=True))

    def train_data(self, cfg, need_folds: bool = True):
        """The engine's `TrainData` for a config: the training table with its `fold` column
        (from `cfg.folds`, or a folder dataset's own val/ split), the eval table, class ids."""
        from fathom.data.loader import TrainData

        if self.task != cfg.task:
            raise FathomError(
                f'{self.root}: a {self.kind} dataset is {self.task}; set task = "{self.task}"'
            )
        cats = self.categories()
        unknown = sorted(set(cfg.holdout_categories) - {int(c) for c in cats["id"]})
        if unknown:
            # a held-out id that is no category would hold out nothing, silently
            raise FathomError(
                f"config {cfg.name}: holdout_categories {', '.join(map(str, unknown))} "
                f"{'is not a category' if len(unknown) == 1 else 'are not categories'} "
                f"of {self.root} (ids {int(cats['id'].min())}..{int(cats['id'].max())})"
            )
        if self.kind == "folder":
            ds = imagefolder.open_folder(self.root)
            has_val = ds.val_dir is not None
            if need_folds and has_val and cfg.n_folds != 1:
                raise FathomError(
                    f"{ds.val_dir}: the dataset brings its own validation split (one fold): "
                    "set n_folds=1"
                )
            folds = cfg.folds if need_folds and not has_val else None
            train = folder_train_table(ds, imagefolder.read_classes(ds), folds)
            ev = self.split("eval")
        else:
            train = self.split("train", categories=cats)
            ev = self.split("eval", categories=cats)
            if need_folds:
                folds = read_folds(cfg.folds, train, n_folds=cfg.n_folds)
                train = train.merge(folds, on="id", how="left", validate="one_to_one")
            else:
                train = train.assign(fold=-1)
        # the boxes only when asked for: crops off, nothing more is read than before
        boxes = None
        if cfg.crop_rate > 0 and self.kind == "kaggle":
            boxes = coco.read_boxes(coco.open_competition(self.root), cats)
        class_ids = tuple(int(c) for c in cats["id"])
        if self.kind in ("folder", "csv"):
            return TrainData(train, ev, class_ids, name=self.name)
        supercat_of = tuple(int(s) for s in cats["supercat_id"])  # for the supercategory head
        return TrainData(train, ev, class_ids, name=self.name, supercat_of=supercat_of, boxes=boxes)


def folder_train_table(
    ds: imagefolder.FolderDataset, classes: pd.DataFrame, folds_path: str | Path | None = None
) -> pd.DataFrame:
    """Train (and val) images with a `fold` column, the engine's training table.

    With a val folder, the split is given: val images are fold 0 and train images fold -1
    (they train in every fold and are never validated), so one fold covers it. Without one,
    folds come from `folds_path` (`fathom folds` writes stratified folds there).
    """
    train = imagefolder.read_folder_split(ds, "train", classes)
    val = imagefolder.read_folder_split(ds, "val", classes)
    if not val.empty:
        return pd.concat([train.assign(fold=-1), val.assign(fold=0)], ignore_index=True)
    if folds_path is None:
        return train.assign(fold=-1)
    folds = read_folds(folds_path, train)
    return train.merge(folds, on="id", how="left", validate="one_to_one")


def coco_truth() -> Path:
    from fathom.synth.fathomnet import TRUTH_FILE

    return Path(TRUTH_FILE)


def open_dataset(path: str | Path) -> Dataset:
    """The dataset at `path`, of whichever kind its files say; a one-line error otherwise."""
    root = Path(path)
    if not root.is_dir():
        raise FathomError(f"{root}: no such competition or dataset folder")
    if any((root / name).exists() for name in KAGGLE_MARKERS):
        return Dataset(root, "kaggle")
    if csvtable.is_csv_competition(root):
        csvtable.open_layout(root)  # names what is missing or malformed, now
        return Dataset(root, "csv")
    # a folder dataset is the other kind; its reader names what is missing (train/<class>/...)
    imagefolder.open_folder(root)
    return Dataset(root, "folder")


def read_data(cfg, need_folds: bool = True):
    """The engine's TrainData for the dataset a config's `competition` names."""
    return open_dataset(cfg.competition).train_data(cfg, need_folds)
