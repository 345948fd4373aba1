"""Read a Kaggle competition in the `train.csv` layout, the one most image-classification
competitions ship (Cassava, Plant Pathology 2020 / 2021, Humpback Whale, ...):

    <comp>/train.csv                  an image id column and its label(s)
    <comp>/sample_submission.csv      the test ids, in order, and the columns to write
    <comp>/train_images/ | train/ | images/     the training images
    <comp>/test_images/ | test/ | images/       the test images
    <comp>/competition.toml           optional: what the files cannot say (metric, new_label)

An id finds its file with or without an extension (`1000015157.jpg` or `Train_0`). The label
format is read off the columns:
- `single`: one label column, one label per row (Cassava: `image_id,label`);
- `set`: one label column holding space-separated labels (Plant Pathology 2021);
- `onehot`: one 0/1 column per class (Plant Pathology 2020);
- `ranked`: one label per row, and the submission lists several space-separated guesses
  (Humpback Whale: `Image,Id` and `new_whale w_1287fbc ...`), scored by MAP@K.
`competition.toml` names the metric (default: the format's usual one), the token of "no known
class" (`new_label = "new_whale"`: training rows holding it have no class), and, where the
files do not say, `label_column`, `train_images`, `test_images`.

Tables come out in the shape of `fathom.data.coco.read_split` (`id`, `path`, `categories` as
tuples of class ids 0..C-1, ...), so the engine and the flow read this layout like the others.
Class ids follow the sorted class names (numerically when every name is an integer, so
Cassava's label `3` is class 3); one-hot classes keep the sample submission's column order. Mistakes are one line naming the file, line and column.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.errors import FathomError

TRAIN_CSV = "train.csv"
SAMPLE_CSV = "sample_submission.csv"
COMPETITION_TOML = "competition.toml"
TRUTH_FILE = Path("hidden") / "test_truth.csv"  # written by the synthetic competitions only
FORMATS = ("single", "set", "onehot", "ranked")
TRAIN_DIRS = ("train_images", "train", "images")
TEST_DIRS = ("test_images", "test", "images")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_METRIC = {"single": "accuracy", "set": "mean_f1", "onehot": "auc", "ranked": "map@5"}
TOML_KEYS = {
    "metric": "the metric's name: accuracy, macro_f1, mean_f1, map@K, auc, fathomnet",
    "new_label": "the submission's token for an image of no known class (e.g. new_whale)",
    "label_column": "the train.csv column holding the labels",
    "train_images": "the folder of training images",
    "test_images": "the folder of test images",
}
COLUMNS = ["id", "image_id", "path", "categories", "supercategories", "width", "height", "coco_url"]


def is_csv_competition(root: Path) -> bool:
    return (Path(root) / TRAIN_CSV).is_file()


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV read as strings (an id such as `007` or a label `1.0` stays as written)."""
    if not path.is_file():
        raise FathomError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise FathomError(f"{path}: cannot read as CSV ({str(exc).splitlines()[0]})") from None
    if frame.columns.empty:
        raise FathomError(f"{path}: no header")
    return frame


def read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    import tomllib

    text = path.read_text(encoding="utf-8")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FathomError(f"{path}: not valid TOML ({exc})") from None
    for key, value in values.items():
        line = next((i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith(key)), 0)
        where = f"{path}, line {line}" if line else str(path)
        if key not in TOML_KEYS:
            known = "; ".join(f"{k} ({v})" for k, v in TOML_KEYS.items())
            raise FathomError(f"{where}: unknown key {key!r}; known keys: {known}")
        if not isinstance(value, str) or not value.strip():
            raise FathomError(f"{where}: {key} must be a non-empty string")
    return values


def _class_order(names) -> list[str]:
    names = set(names)
    if names and all(re.fullmatch(r"-?\d+", n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


@dataclass(frozen=True)
class Layout:
    """What was detected in a train.csv competition folder (see the module docstring)."""

    root: Path
    format: str  # single | set | onehot | ranked
    id_column: str  # in train.csv
    label_columns: tuple[str, ...]  # one (single, set, ranked) or one per class (onehot)
    classes: tuple[str, ...]  # class names; class id i is classes[i]
    metric: str
    metric_source: str  # "competition.toml" or "default for <format>"
    new_label: str | None
    submission_columns: tuple[str, ...]  # exactly sample_submission.csv's header
    k: int  # guesses per row of a ranked submission (1 otherwise)
    train_dir: Path
    test_dir: Path
    exclusive: bool  # every training row holds exactly one class: a softmax head fits

    @property
    def train_csv(self) -> Path:
        return self.root / TRAIN_CSV

    @property
    def sample_csv(self) -> Path:
        return self.root / SAMPLE_CSV

    @property
    def submission_id(self) -> str:
        return self.submission_columns[0]

    @property
    def task(self) -> str:
        """The engine's task: softmax over classes when every image holds exactly one of them
        (single labels, one-hot rows with one 1), else sigmoid per class (sets; ranked lists
        whose `new_label` rows hold no class, which a sigmoid head can say)."""
        return "singlelabel" if self.exclusive else "multilabel"

    def categories(self) -> pd.DataFrame:
        ids = np.arange(len(self.classes))
        names = list(self.classes)
        return pd.DataFrame({"id": ids, "name": names, "supercat": names, "supercat_id": ids})

    @cached_property
    def train_rows(self) -> tuple[list[str], list[tuple[int, ...]]]:
        """(ids, class-id tuples) of train.csv, checked row by row."""
        return _parse_labels(self)

    def test_ids(self) -> list[str]:
        frame = read_csv_text(self.sample_csv)
        ids = frame[self.submission_id].tolist()
        _check_ids(ids, self.sample_csv, self.submission_id)
        return ids


def _check_ids(ids: list[str], path: Path, column: str) -> None:
    seen: dict[str, int] = {}
    for line, uid in enumerate(ids, start=2):
        if uid.strip() == "":
            raise FathomError(f"{path}, line {line}, column {column}: empty id")
        if uid in seen:
            raise FathomError(
                f"{path}, line {line}, column {column}: id {uid} appears again (first on line "
                f"{seen[uid]})"
            )
        seen[uid] = line


def _find_dir(root: Path, given: str | None, names: tuple[str, ...], what: str, key: str) -> Path:
    if given:
        path = root / given
        if not path.is_dir():
            raise FathomError(f"{root / COMPETITION_TOML}: {key} {given!r}: no such folder")
        return path
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise FathomError(
        f"{root}: no folder of {what} images (looked for {', '.join(n + '/' for n in names)}; "
        f'name it with {key} = "..." in {COMPETITION_TOML})'
    )


def open_layout(root: str | Path) -> Layout:
    """Detect the layout of a train.csv competition folder; a one-line error names what is
    missing or malformed."""
    root = Path(root)
    train_csv, sample_csv = root / TRAIN_CSV, root / SAMPLE_CSV
    if not train_csv.is_file():
        raise FathomError(f"{root}: no {TRAIN_CSV}")
    if not sample_csv.is_file():
        raise FathomError(
            f"{root}: {TRAIN_CSV} but no {SAMPLE_CSV} beside it (its header is the format to "
            "write, its ids the test images)"
        )
    toml = read_toml(root / COMPETITION_TOML)
    train = read_csv_text(train_csv)
    sample = read_csv_text(sample_csv)
    sub_cols = tuple(str(c) for c in sample.columns)
    if len(sub_cols) < 2:
        raise FathomError(
            f"{sample_csv}: header `{','.join(sub_cols)}` needs an id and a column to predict"
        )
    cols = [str(c) for c in train.columns]
    id_col = sub_cols[0] if sub_cols[0] in cols else cols[0]
    rest = [c for c in cols if c != id_col]
    if not rest:
        raise FathomError(f"{train_csv}: only the id column `{id_col}`; no label column")
    metric = toml.get("metric")
    source = COMPETITION_TOML if metric else ""
    new_label = toml.get("new_label")
    label_col = toml.get("label_column")
    if label_col is not None and label_col not in rest:
        raise FathomError(
            f"{root / COMPETITION_TOML}: label_column {label_col!r} is not a column of {train_csv} "
            f"(it has {', '.join(rest)})"
        )
    class_cols = [c for c in sub_cols[1:] if c in rest]
    k = 1
    if label_col is None and len(class_cols) >= 2:  # one column per class, in both files
        fmt, labels = "onehot", tuple(class_cols)
        classes = tuple(class_cols)
    else:
        if label_col is None:
            if len(rest) > 1:
                raise FathomError(
                    f"{train_csv}: several columns could hold the labels ({', '.join(rest)}); "
                    f'name one with label_column = "..." in {COMPETITION_TOML}'
                )
            label_col = rest[0]
        labels = (label_col,)
        values = train[label_col]
        guesses = [len(v.split()) for v in sample[sub_cols[-1]]] if len(sample) else [1]
        spaced = values.str.strip().str.contains(r"\s", regex=True).any()
        # a MAP@K metric says so; else several guesses per row where train.csv has one label
        if (metric or "").startswith("map@") or (max(guesses) > 1 and not spaced):
            fmt = "ranked"
            k = int(metric.split("@", 1)[1]) if (metric or "").startswith("map@") else max(guesses)
        else:
            fmt = "set" if spaced else "single"
        names = {t for v in values for t in v.split()} - ({new_label} if new_label else set())
        classes = tuple(_class_order(names))
    if not metric:
        metric = DEFAULT_METRIC[fmt] if fmt != "ranked" else f"map@{k}"
        source = f"default for {fmt}"
    from fathom.metrics import check_metric_format

    check_metric_format(metric, fmt, root / COMPETITION_TOML)
    if fmt == "ranked" and metric.startswith("map@"):
        k = int(metric.split("@", 1)[1])
    if fmt != "onehot" and len(sub_cols) != 2:
        raise FathomError(
            f"{sample_csv}: header `{','.join(sub_cols)}`: expected the id and one column for "
            f"a {fmt} format (or one column per class, as in {TRAIN_CSV})"
        )
    if fmt == "onehot" and set(sub_cols[1:]) != set(classes):
        extra = sorted(set(sub_cols[1:]) - set(classes))
        raise FathomError(f"{sample_csv}: column {extra[0]!r} is not a class column of {train_csv}")
    if not classes:
        raise FathomError(f"{train_csv}: no class labels in column {labels[0]}")
    train_dir = _find_dir(root, toml.get("train_images"), TRAIN_DIRS, "training", "train_images")
    test_dir = _find_dir(root, toml.get("test_images"), TEST_DIRS, "test", "test_images")
    layout = Layout(
        root=root,
        format=fmt,
        id_column=id_col,
        label_columns=labels,
        classes=classes,
        metric=metric,
        metric_source=source,
        new_label=new_label,
        submission_columns=sub_cols,
        k=k,
        train_dir=train_dir,
        test_dir=test_dir,
        exclusive=False,
    )
    parsed = _parse_labels(layout)
    # a row of no class (a `new_label` row, an all-zero one-hot row) needs a sigmoid head
    exclusive = fmt in ("single", "onehot") and all(len(r) == 1 for r in parsed[1])
    layout = dataclasses.replace(layout, exclusive=exclusive)
    layout.__dict__["train_rows"] = parsed  # parsed once, for the cached property
    return layout


def _parse_labels(layout: Layout) -> tuple[list[str], list[tuple[int, ...]]]:
    path = layout.train_csv
    frame = read_csv_text(path)
    ids = frame[layout.id_column].tolist()
    _check_ids(ids, path, layout.id_column)
    index = {name: i for i, name in enumerate(layout.classes)}
    rows: list[tuple[int, ...]] = []
    if layout.format == "onehot":
        cells = frame[list(layout.label_columns)].to_numpy()
        for i, row in enumerate(cells):
            for col, v in zip(layout.label_columns, row, strict=True):
                if v.strip() not in ("0", "1", "0.0", "1.0"):
                    raise FathomError(f"{path}, line {i + 2}, column {col}: {v!r} is not 0 or 1")
            rows.append(
                tuple(
                    index[c]
                    for c, v in zip(layout.label_columns, row, strict=True)
                    if float(v) == 1
                )
            )
        return ids, rows
    col = layout.label_columns[0]
    for i, value in enumerate(frame[col]):
        tokens = value.split()
        if not tokens:
            raise FathomError(f"{path}, line {i + 2}, column {col}: empty label")
        if layout.format in ("single", "ranked") and len(tokens) > 1:
            raise FathomError(
                f"{path}, line {i + 2}, column {col}: {value!r} holds {len(tokens)} labels, "
                "one expected"
            )
        if layout.new_label and layout.new_label in tokens:
            if len(tokens) > 1:
                raise FathomError(
                    f"{path}, line {i + 2}, column {col}: {layout.new_label} beside other labels"
                )
            rows.append(())
            continue
        if len(set(tokens)) != len(tokens):
            raise FathomError(f"{path}, line {i + 2}, column {col}: a label appears twice")
        rows.append(tuple(sorted(index[t] for t in tokens)))
    return ids, rows


def _file_index(folder: Path) -> dict[str, Path]:
    """name -> file and stem -> file of the images in `folder` (one listing, not a stat per id)."""
    index: dict[str, Path] = {}
    stems: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.is_file():
            continue
        index[p.name] = p
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            stems.setdefault(p.stem, []).append(p)
    for stem, paths in stems.items():
        if stem not in index and len(paths) == 1:  # an id without its extension
            index[stem] = paths[0]
    return index


def image_paths(
    ids: list[str], folder: Path, listed_in: Path, column: str, require: bool
) -> list[str]:
    """Each id's file in `folder` (the id as a file name, or the id plus an image extension)."""
    index = _file_index(folder) if folder.is_dir() else {}
    paths = []
    for line, uid in enumerate(ids, start=2):
        path = index.get(uid)
        if path is None:
            if require:
                raise FathomError(
                    f"{listed_in}, line {line}, column {column}: image {uid} not found in "
                    f"{folder} (as {uid} or {uid}.<ext>)"
                )
            path = folder / uid
        paths.append(str(path))
    return paths


def read_split(layout: Layout, split: str, *, require_images: bool = True) -> pd.DataFrame:
    """ "train": train.csv's images and classes; "eval": sample_submission.csv's ids, in its
    order, with no classes."""
    if split == "train":
        ids, cats = layout.train_rows
        paths = image_paths(
            ids, layout.train_dir, layout.train_csv, layout.id_column, require_images
        )
    elif split == "eval":
        ids = layout.test_ids()
        cats = [() for _ in ids]
        paths = image_paths(
            ids, layout.test_dir, layout.sample_csv, layout.submission_id, require_images
        )
    else:
        raise FathomError(f"unknown split {split!r}; choose from train, eval")
    n = len(ids)
    return pd.DataFrame(
        {
            "id": ids,
            "image_id": np.arange(n),
            "path": paths,
            "categories": cats,
            "supercategories": [() for _ in range(n)],
            "width": np.zeros(n, dtype=int),
            "height": np.zeros(n, dtype=int),
            "coco_url": ["" for _ in range(n)],
        },
        columns=COLUMNS,
    )


def adopt_task(cfg, overrides=()):
    """The config with the task (and a loss for it) of the train.csv competition it names,
    unless the command line set `task` itself: `fathom train default competition=D` then
    trains a softmax head on single labels and a sigmoid head on sets, as the format says."""
    from fathom.config import LOSSES

    root = Path(cfg.competition)
    if any(o.partition("=")[0].strip() == "task" for o in overrides) or not (
        root.is_dir() and is_csv_competition(root)
    ):
        return cfg
    from fathom.data import open_dataset

    ds = open_dataset(root)
    if ds.kind != "csv" or ds.task == cfg.task:
        return cfg
    task = ds.task
    loss = cfg.loss if cfg.loss in LOSSES[task] else LOSSES[task][0]
    return cfg.replace(task=task, loss=loss)
