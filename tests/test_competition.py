import json
import shutil

import pandas as pd
import pytest

from fathom.data.coco import open_competition, parse_categories, read_categories, read_split
from fathom.errors import FathomError


@pytest.fixture
def comp(small_comp, tmp_path):
    """A private copy of the small competition that a test may break."""
    root = tmp_path / "comp"
    shutil.copytree(small_comp, root)
    return open_competition(root)


def test_reads_train_and_eval_tables(comp):
    cats = read_categories(comp)
    assert len(cats) == 290 and cats["supercat_id"].nunique() == 20
    train = read_split(comp, "train")
    raw = pd.read_csv(comp.train_csv)
    assert list(train["id"]) == list(raw["id"])
    row = train.iloc[0]
    assert row["categories"] == parse_categories(raw["categories"][0])
    supercat_of = dict(zip(cats["id"], cats["supercat_id"], strict=True))
    assert row["supercategories"] == tuple(sorted({supercat_of[c] for c in row["categories"]}))
    assert row["path"].endswith(f"images/train/{row['id']}.png")
    assert (row["width"], row["height"]) == (64, 48)
    ev = read_split(comp, "eval")
    assert len(ev) == 60 and all(c == () for c in ev["categories"])


def test_parse_categories():
    assert parse_categories("[1.0, 9.0, 11.0, 88.0]") == (1, 9, 11, 88)
    assert parse_categories("[]") == ()
    for bad in ["1.0 9.0", "[1.5]", "['a']", "[1.0, nan]", "{1: 2}"]:
        with pytest.raises(ValueError):
            parse_categories(bad)


def _rewrite_train_csv(comp, line, text):
    lines = comp.train_csv.read_text().splitlines()
    lines[line - 1] = text
    comp.train_csv.write_text("\n".join(lines) + "\n")


def _error(comp, split="train"):
    with pytest.raises(FathomError) as exc:
        read_split(comp, split)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_malformed_categories_names_file_and_line(comp):
    uid = pd.read_csv(comp.train_csv)["id"][2]
    _rewrite_train_csv(comp, 4, f'{uid},"1.0 9.0"')
    message = _error(comp)
    assert "train.csv, line 4" in message and "not a list" in message


def test_unknown_category_id(comp):
    uid = pd.read_csv(comp.train_csv)["id"][0]
    _rewrite_train_csv(comp, 2, f'{uid},"[1.0, 291.0]"')
    message = _error(comp)
    assert "line 2" in message and "unknown category id 291" in message


def test_duplicate_id(comp):
    ids = pd.read_csv(comp.train_csv)["id"]
    _rewrite_train_csv(comp, 3, f'{ids[0]},"[1.0]"')
    message = _error(comp)
    assert "line 3" in message and "duplicate id" in message


def test_image_listed_but_missing(comp):
    train = read_split(comp, "train")
    (comp.image_dir("train") / f"{train['id'][5]}.png").unlink()
    message = _error(comp)
    assert train["id"][5] in message and "missing" in message and "1 of 120" in message
    assert len(read_split(comp, "train", require_images=False)) == 120


def test_json_without_images(comp):
    comp.coco_json("eval").write_text(json.dumps({"annotations": []}))
    assert "no `images` list" in _error(comp, "eval")
    comp.coco_json("eval").write_text("{not json")
    assert "not valid JSON" in _error(comp, "eval")


def test_duplicate_image_in_json_and_missing_files(comp):
    data = json.loads(comp.coco_json("eval").read_text())
    data["images"].append(dict(data["images"][0]))
    comp.coco_json("eval").write_text(json.dumps(data))
    assert "duplicate image" in _error(comp, "eval")
    comp.category_key.unlink()
    assert "category_key.csv: missing" in _error(comp)
    with pytest.raises(FathomError, match="no such competition folder"):
        open_competition(comp.root / "nope")


def test_csv_id_absent_from_json(comp):
    _rewrite_train_csv(comp, 2, 'not-an-image,"[1.0]"')
    assert "is not an image of" in _error(comp)
