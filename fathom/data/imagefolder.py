"""Read a single-label folder dataset: one folder per class.

Layout (torchvision's ImageFolder layout, as most single-label image datasets ship):

    <root>/train/<class>/<image>      required
    <root>/val/<class>/<image>        optional (also `valid/` or `validation/`)
    <root>/test/<class>/<image>       optional, labelled ...
    <root>/test/<image>               ... or flat (unlabelled)

Classes are the train sub-folders in sorted order; class index i is `classes["id"][i]`.
Each split is returned as a table in the shape of `fathom.data.coco.read_split`, so the
training engine reads both kinds alike: `id` (the path relative to <root> without extension,
e.g. `train/Tilapia/img_001`; unique across splits), `image_id`, `path`, `categories` (a 1-tuple
holding the class index; empty for an unlabelled test image), `supercategories` (empty),
`width`, `height` (0: not read, to keep listing fast), `coco_url` (empty).

Layout mistakes are reported as one-line FathomErrors: a missing train folder, an empty class
folder, a file that is not an image, a file beside the class folders, a nested folder, class
sets that differ between train and val, a test class that train lacks. Hidden files (names
starting with a dot, such as macOS's .DS_Store) are skipped, as ImageFolder does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.errors import FathomError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
VAL_NAMES = ("val", "valid", "validation")
COLUMNS = ["id", "image_id", "path", "categories", "supercategories", "width", "height", "coco_url"]
TRUTH_FILE = Path("hidden") / "test_truth.csv"  # written by the synthetic folder dataset only


@dataclass(frozen=True)
class FolderDataset:
    """Where a folder dataset's splits are. Paths only: nothing is listed until asked."""

    root: Path

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def val_dir(self) -> Path | None:
        for name in VAL_NAMES:
            if (self.root / name).is_dir():
                return self.root / name
        return None

    @property
    def test_dir(self) -> Path | None:
        return self.root / "test" if (self.root / "test").is_dir() else None

    def split_dir(self, split: str) -> Path | None:
        if split not in ("train", "val", "test"):
            raise FathomError(f"unknown split {split!r}; choose from train, val, test")
        return {"train": self.train_dir, "val": self.val_dir, "test": self.test_dir}[split]


def open_folder(root: str | Path) -> FolderDataset:
    root = Path(root)
    if not root.is_dir():
        raise FathomError(f"{root}: no such dataset folder")
    if not (root / "train").is_dir():
        raise FathomError(f"{root}: no train/ folder (expected train/<class>/<image>)")
    return FolderDataset(root)


def _visible(entries) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith("."))


def _list_images(folder: Path) -> list[Path]:
    """The image files directly inside `folder`; anything else is an error."""
    images = []
    for p in _visible(folder.iterdir()):
        if p.is_dir():
            raise FathomError(f"{p}: a folder inside a class folder (expected only images)")
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            raise FathomError(
                f"{p}: not an image (extension {p.suffix or 'none'!r}; "
                f"expected one of {' '.join(IMAGE_EXTENSIONS)})"
            )
        images.append(p)
    if not images:
        raise FathomError(f"{folder}: class folder holds no images")
    return images


def _class_folders(split_dir: Path) -> dict[str, list[Path]]:
    """`{class name: images}` for a split laid out as <split>/<class>/<image>."""
    entries = _visible(split_dir.iterdir())
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise FathomError(
            f"{stray[0]}: a file beside the class folders (expected {split_dir.name}/<class>/<image>)"
        )
    if not entries:
        raise FathomError(f"{split_dir}: no class folders")
    return {p.name: _list_images(p) for p in entries}


def read_classes(ds: FolderDataset) -> pd.DataFrame:
    """`id,name,n_train`: the train class folders in sorted order, ids 0..C-1."""
    folders = _class_folders(ds.train_dir)
    names = sorted(folders)
    return pd.DataFrame(
        {"id": np.arange(len(names)), "name": names, "n_train": [len(folders[n]) for n in names]}
    )


def _differ(split_dir: Path, names: set[str], train: set[str], *, both_ways: bool) -> None:
    extra, missing = sorted(names - train), sorted(train - names)
    if extra:
        raise FathomError(
            f"{split_dir}: class folder {extra[0]!r} is not a train class ({len(extra)} such)"
        )
    if both_ways and missing:
        raise FathomError(f"{split_dir}: lacks train class {missing[0]!r} ({len(missing)} missing)")


def _table(root: Path, items: list[tuple[Path, tuple[int, ...]]]) -> pd.DataFrame:
    ids = [p.relative_to(root).with_suffix("").as_posix() for p, _ in items]
    seen: dict[str, Path] = {}
    for uid, (p, _) in zip(ids, items, strict=True):
        if uid in seen:
            raise FathomError(
                f"{p}: same name as {seen[uid].name} apart from the extension (ids must be unique)"
            )
        seen[uid] = p
    n = len(items)
    return pd.DataFrame(
        {
            "id": ids,
            "image_id": np.arange(n),
            "path": [str(p) for p, _ in items],
            "categories": [cats for _, cats in items],
            "supercategories": [() for _ in range(n)],
            "width": np.zeros(n, dtype=int),
            "height": np.zeros(n, dtype=int),
            "coco_url": ["" for _ in range(n)],
        },
        columns=COLUMNS,
    )


def read_folder_split(
    ds: FolderDataset, split: str, classes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One split as a table (see the module docstring); an absent val/test split is empty."""
    classes = read_classes(ds) if classes is None else classes
    index = dict(zip(classes["name"], classes["id"], strict=True))
    split_dir = ds.split_dir(split)
    if split_dir is None:
        return _table(ds.root, [])
    if split == "test":
        entries = _visible(split_dir.iterdir())
        if entries and all(p.is_file() for p in entries):  # a flat, unlabelled test folder
            return _table(ds.root, [(p, ()) for p in _list_images(split_dir)])
    folders = _class_folders(split_dir)
    _differ(split_dir, set(folders), set(index), both_ways=split == "val")
    items = [(p, (int(index[name]),)) for name in sorted(folders) for p in folders[name]]
    return _table(ds.root, items)


def labels_of(table: pd.DataFrame) -> np.ndarray:
    """The class index of each row of a labelled table (int64)."""
    bad = [i for i, c in enumerate(table["categories"]) if len(c) != 1]
    if bad:
        raise FathomError(
            f"image {table['id'].iloc[bad[0]]} has {len(table['categories'].iloc[bad[0]])} labels, not one"
        )
    return np.array([c[0] for c in table["categories"]], dtype=np.int64)


def balanced_class_weights(labels: Sequence[int], n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights, n_samples / (n_classes_present * count), as float32.

    A class absent from `labels` gets weight 1: it has no training rows, so the value only
    matters for a validation loss, where a neutral weight is the honest choice.
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        raise FathomError("class weights need at least one labelled image")
    if y.min() < 0 or y.max() >= n_classes:
        raise FathomError(
            f"class index {int(y.max() if y.max() >= n_classes else y.min())} outside 0..{n_classes - 1}"
        )
    present = np.unique(y)
    weights = np.ones(n_classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights
