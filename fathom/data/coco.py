"""Read a competition folder in the Kaggle layout into one table per split.

Layout (what `kaggle competitions download -c fathomnet-out-of-sample-detection` unpacks,
plus the images that `fathom images` fetches):

    <comp>/category_key.csv                        id,name,supercat
    <comp>/multilabel_classification/train.csv     id,categories  ("[1.0, 9.0]")
    <comp>/object_detection/train.json             COCO: images, annotations, categories
    <comp>/object_detection/eval.json              COCO: images, categories
    <comp>/sample_submission.csv
    <comp>/images/train/<file_name>, <comp>/images/eval/<file_name>

A split's table has one row per image: `id` (the file name without extension, as the
submission wants it), `image_id` (the COCO integer id), `path`, `categories` and
`supercategories` (tuples of ints; empty for eval), `width`, `height`, `coco_url`.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.errors import FathomError

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Competition:
    """Where a competition's files are. Paths only: nothing is read until asked."""

    root: Path

    @property
    def category_key(self) -> Path:
        return self.root / "category_key.csv"

    @property
    def train_csv(self) -> Path:
        return self.root / "multilabel_classification" / "train.csv"

    def coco_json(self, split: str) -> Path:
        return self.root / "object_detection" / f"{split}.json"

    def image_dir(self, split: str) -> Path:
        return self.root / "images" / split

    @property
    def sample_submission(self) -> Path:
        return self.root / "sample_submission.csv"


def open_competition(root: str | Path) -> Competition:
    root = Path(root)
    if not root.is_dir():
        raise FathomError(f"{root}: no such competition folder")
    return Competition(root)


def read_categories(comp: Competition) -> pd.DataFrame:
    """category_key.csv as `id,name,supercat,supercat_id` (supercat ids 0.. in order of first appearance)."""
    path = comp.category_key
    if not path.is_file():
        raise FathomError(f"{path}: missing (the competition's category key)")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises several types for unreadable CSVs
        raise FathomError(f"{path}: cannot read as CSV ({exc})") from None
    missing = {"id", "name", "supercat"} - set(frame.columns)
    if missing:
        raise FathomError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    ids = pd.to_numeric(frame["id"], errors="coerce")
    for row, (raw, value) in enumerate(zip(frame["id"], ids, strict=True), start=2):
        if pd.isna(value) or value != int(value):
            raise FathomError(f"{path}, line {row}: category id {raw!r} is not an integer")
    frame["id"] = ids.astype(int)
    dup = frame["id"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0]) + 2
        raise FathomError(f"{path}, line {row}: duplicate category id {frame['id'].iloc[row - 2]}")
    for col in ("name", "supercat"):
        empty = frame[col].isna() | (frame[col].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0]) + 2
            # an empty supercategory would silently become one more (unnamed) supercategory
            raise FathomError(
                f"{path}, line {row}: category {frame['id'].iloc[row - 2]} has no {col}"
            )
    # "Fish" and " Fish " are one supercategory: a hand-edited key (or a spreadsheet export)
    # pads names, and each padded variant would become one more class of the supercategory head
    frame["supercat"] = frame["supercat"].astype(str).str.strip()
    codes = {name: i for i, name in enumerate(dict.fromkeys(frame["supercat"]))}
    frame["supercat_id"] = frame["supercat"].map(codes).astype(int)
    return frame[["id", "name", "supercat", "supercat_id"]].reset_index(drop=True)


def parse_categories(text: str) -> tuple[int, ...]:
    """Parse a train.csv categories cell such as "[1.0, 9.0, 11.0]" into (1, 9, 11).

    Raises ValueError with a short reason on anything else.
    """
    try:
        value = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"categories {text!r} is not a list like [1.0, 9.0]") from None
    if not isinstance(value, list | tuple):
        raise ValueError(f"categories {text!r} is not a list like [1.0, 9.0]")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise ValueError(f"categories {text!r} holds {item!r}, not a number")
        if item != int(item):
            raise ValueError(f"categories {text!r} holds {item!r}, not a whole number")
        out.append(int(item))
    return tuple(sorted(set(out)))


def safe_target(root: Path, file_name: str) -> Path:
    """`root / file_name`, or FathomError if the name could land outside `root`.

    COCO file names come from a downloaded json, i.e. untrusted input: an absolute path,
    a `..` part or a backslash (a separator on Windows) is refused, by every reader and by
    the downloader alike (one path rule everywhere).
    """
    if not file_name or "\\" in file_name or "\x00" in file_name:
        raise FathomError(f"file name {file_name!r} is not a plain relative path")
    pure = PurePosixPath(file_name)
    if (
        pure.is_absolute()
        or any(part in ("..", "") for part in pure.parts)
        or pure.name in (".", "")
    ):
        raise FathomError(f"file name {file_name!r} escapes the images folder")
    return root / pure


def _integer(image: dict, key: str, where: str, default=None) -> int:
    """A COCO image's integer field (`id`, `width`, `height`): 12 and 12.0 pass, "x" does not."""
    value = image.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FathomError(f"{where}: `{key}` {value!r} is not an integer")
    try:
        number = float(value)
    except ValueError:
        raise FathomError(f"{where}: `{key}` {value!r} is not an integer") from None
    if not math.isfinite(number) or number != int(number) or number < 0:
        raise FathomError(f"{where}: `{key}` {value!r} is not a whole number >= 0")
    return int(number)


def read_coco(path: Path) -> dict:
    data = fileio.read_json(path, "missing")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FathomError(f"{path}: no `images` list (not a COCO file?)")
    return data


def coco_images(path: Path, data: dict) -> pd.DataFrame:
    rows = []
    seen: dict[str, int] = {}
    for i, image in enumerate(data["images"]):
        where = f"{path}, images[{i}]"
        if not isinstance(image, dict) or "file_name" not in image or "id" not in image:
            raise FathomError(f"{where}: needs `id` and `file_name`")
        if not isinstance(image["file_name"], str):
            raise FathomError(f"{where}: `file_name` {image['file_name']!r} is not a string")
        file_name = image["file_name"]
        try:
            safe_target(Path("."), file_name)
        except FathomError as exc:
            raise FathomError(f"{where}: {exc}") from None
        uid = Path(file_name).stem
        if uid in seen:
            raise FathomError(f"{where}: duplicate image {file_name!r} (also images[{seen[uid]}])")
        seen[uid] = i
        rows.append(
            {
                "id": uid,
                "image_id": _integer(image, "id", where),
                "file_name": file_name,
                "width": _integer(image, "width", where, default=0),
                "height": _integer(image, "height", where, default=0),
                "coco_url": str(image.get("coco_url") or ""),
            }
        )
    return pd.DataFrame(
        rows, columns=["id", "image_id", "file_name", "width", "height", "coco_url"]
    )


def _read_train_csv(comp: Competition, known: set[int]) -> dict[str, tuple[int, ...]]:
    path = comp.train_csv
    if not path.is_file():
        raise FathomError(f"{path}: missing")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns[:2]) != ["id", "categories"]:
        raise FathomError(f"{path}: header must be `id,categories`, got {','.join(frame.columns)}")
    labels: dict[str, tuple[int, ...]] = {}
    for line, (uid, text) in enumerate(zip(frame["id"], frame["categories"], strict=True), start=2):
        if uid in labels:
            raise FathomError(f"{path}, line {line}: duplicate id {uid}")
        try:
            cats = parse_categories(text)
        except ValueError as exc:
            raise FathomError(f"{path}, line {line}: {exc}") from None
        if not cats:
            # an image without a category would train as "none of them" and score nothing
            raise FathomError(f"{path}, line {line}: image {uid} has an empty category list")
        unknown = [c for c in cats if c not in known]
        if unknown:
            raise FathomError(f"{path}, line {line}: unknown category id {unknown[0]}")
        labels[uid] = cats
    return labels


def read_split(
    comp: Competition, split: str, *, require_images: bool = True, categories=None
) -> pd.DataFrame:
    """One split as a table (see the module docstring). `require_images` checks every file exists."""
    if split not in SPLITS:
        raise FathomError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    cats = read_categories(comp) if categories is None else categories
    supercat_of = dict(zip(cats["id"], cats["supercat_id"], strict=True))
    json_path = comp.coco_json(split)
    table = coco_images(json_path, read_coco(json_path))
    if split == "train":
        labels = _read_train_csv(comp, set(supercat_of))
        missing = sorted(set(labels) - set(table["id"]))
        if missing:
            raise FathomError(f"{comp.train_csv}: id {missing[0]} is not an image of {json_path}")
        table = table[table["id"].isin(labels)].reset_index(drop=True)
        table["categories"] = [labels[uid] for uid in table["id"]]
    else:
        table["categories"] = [() for _ in range(len(table))]
    table["supercategories"] = [
        tuple(sorted({int(supercat_of[c]) for c in row})) for row in table["categories"]
    ]
    image_dir = comp.image_dir(split)
    table["path"] = [str(image_dir / name) for name in table["file_name"]]
    if require_images:
        check_images(table, image_dir)
    cols = [
        "id",
        "image_id",
        "path",
        "categories",
        "supercategories",
        "width",
        "height",
        "coco_url",
    ]
    return table[cols]


def check_images(table: pd.DataFrame, image_dir: Path) -> None:
    exists = np.array([Path(p).is_file() for p in table["path"]], dtype=bool)
    if not exists.all():
        first = table["path"][int(np.flatnonzero(~exists)[0])]
        n = int((~exists).sum())
        raise FathomError(
            f"{first}: image listed but missing ({n} of {len(table)} missing under {image_dir}; "
            "`fathom images` fetches them)"
        )


def label_matrix(categories, category_ids) -> np.ndarray:
    """A (n_images, n_categories) 0/1 float32 matrix; columns follow `category_ids`."""
    column = {int(c): j for j, c in enumerate(category_ids)}
    matrix = np.zeros((len(categories), len(column)), dtype=np.float32)
    for i, row in enumerate(categories):
        for c in row:
            matrix[i, column[int(c)]] = 1.0
    return matrix


BOX_COLUMNS = ["id", "category_id", "x", "y", "w", "h", "width", "height"]


def read_boxes(comp: Competition, categories=None) -> pd.DataFrame:
    """The boxes of object_detection/train.json, one row per annotation: `id` (its image's id,
    as in the split tables), `category_id`, `x, y, w, h` (COCO pixels: left, top, width,
    height) and the frame's `width, height` (0 when the json does not give them). A file with
    no `annotations` gives no rows; a malformed one is a one-line error naming it."""
    cats = read_categories(comp) if categories is None else categories
    known = {int(c) for c in cats["id"]}
    path = comp.coco_json("train")
    data = read_coco(path)
    images = coco_images(path, data)
    by_image = {int(i): k for k, i in enumerate(images["image_id"])}
    annotations = data.get("annotations") or []
    if not isinstance(annotations, list):
        raise FathomError(f"{path}: `annotations` is not a list")
    rows = []
    for i, ann in enumerate(annotations):
        where = f"{path}, annotations[{i}]"
        if not isinstance(ann, dict) or not {"image_id", "category_id", "bbox"} <= set(ann):
            raise FathomError(f"{where}: needs `image_id`, `category_id` and `bbox`")
        image = _integer(ann, "image_id", where)
        category = _integer(ann, "category_id", where)
        if image not in by_image:
            raise FathomError(f"{where}: image_id {image} is not an image of the file")
        if category not in known:
            raise FathomError(f"{where}: unknown category id {category}")
        box = ann["bbox"]
        if (
            not isinstance(box, list | tuple)
            or len(box) != 4
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in box)
            or not all(math.isfinite(v) for v in box)
            or box[2] <= 0
            or box[3] <= 0
        ):
            raise FathomError(f"{where}: bbox {box!r} is not [x, y, width, height] with sizes > 0")
        k = by_image[image]
        rows.append(
            [images["id"][k], category, *map(float, box)]
            + [int(images["width"][k]), int(images["height"][k])]
        )
    return pd.DataFrame(rows, columns=BOX_COLUMNS)
