# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Box crops as training samples (issue 12, part 1): which boxes a crop holds, the crop
cache, and the epochs that mix crops of the fold's own training images only."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401
from PIL import Image

from fathom.config import from_dict
from fathom.data import read_data
from fathom.data.cache import build_cache, cache_path, load_image
from fathom.data.coco import BOX_COLUMNS, open_competition, read_boxes
from fathom.data.crops import FoldCrops, crop_region, crop_table, fold_crops
from fathom.data.loader import fold_rows
from fathom.engine.train import train_run
from fathom.errors import FathomError
from fathom.runs import read_predictions


def _boxes(rows, width=200, height=100, uid="img"):
    """Hand-made boxes of one image: (category, x, y, w, h) rows."""
    return pd.DataFrame(
        [[uid, c, x, y, w, h, width, height] for c, x, y, w, h in rows], columns=BOX_COLUMNS
    )


def test_a_crop_holds_exactly_the_boxes_mostly_inside_it():
    boxes = _boxes(
        [
            (1, 10, 10, 20, 20),  # the crop's own box: its crop is (5, 5)-(35, 35) at margin 0.25
            (2, 25, 25, 10, 10),  # wholly inside
            (7, 26, 10, 12, 10),  # 75% inside
            (5, 28, 28, 10, 10),  # 49% inside: out
            (4, 30, 5, 20, 10),  # 25% inside: out
            (3, 150, 50, 20, 20),  # far away
        ]
    )
    assert crop_region((10, 10, 20, 20), (200, 100), 0.25) == (5, 5, 35, 35)
    train = pd.DataFrame({"id": ["img"], "path": ["img.png"]})
    crops = crop_table(train, boxes, margin=0.25)
    assert crops["id"].tolist() == [f"img/box{k}" for k in range(6)]
    assert crops["categories"][0] == (1, 2, 7)
    assert crops["crop"][0] == pytest.approx((5 / 200, 5 / 100, 35 / 200, 35 / 100))
    assert crops["categories"][5] == (3,)  # the far box alone
    # every crop holds its own box, even at margin 0
    tight = crop_table(train, boxes, 0)["categories"]
    assert all(c in cats for c, cats in zip(boxes["category_id"], tight, strict=True))


def test_a_crop_is_a_square_clamped_to_the_frame():
    # at the corner: moved inside, still square
    assert crop_region((190, 90, 10, 10), (200, 100), 0.25) == (185, 85, 200, 100)
    # wider than the frame is high: its height is cut to the frame's
    assert crop_region((50, 0, 80, 60), (200, 100), 0.25) == (30, 0, 150, 100)


def test_read_boxes_joins_images_and_names_a_bad_annotation(tiny_comp, tmp_path):
    comp, _ = tiny_comp
    boxes = read_boxes(open_competition(comp))
    coco = json.loads((comp / "object_detection" / "train.json").read_text())
    assert len(boxes) == len(coco["annotations"]) > 0
    assert list(boxes.columns) == BOX_COLUMNS and (boxes["w"] > 0).all()
    train_ids = set(read_data(tiny_config(tiny_comp, tmp_path), need_folds=False).train["id"])
    assert set(boxes["id"]) <= train_ids

    bad = tmp_path / "bad"
    shutil.copytree(comp, bad)
    coco["annotations"][3]["bbox"] = [1, 2, 0, 4]
    (bad / "object_detection" / "train.json").write_text(json.dumps(coco))
    with pytest.raises(FathomError, match=r"annotations\[3\]: bbox \[1, 2, 0, 4\]") as err:
        read_boxes(open_competition(bad))
    assert "\n" not in str(err.value)


def test_a_crop_is_cut_from_the_full_image_and_cached_beside_it(tmp_path):
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:20, :40] = (255, 0, 0)  # top-left quarter red
    pixels[20:, 40:] = (0, 0, 255)  # bottom-right quarter blue
    Image.fromarray(pixels).save(tmp_path / "a.png")
    path = str(tmp_path / "a.png")
    assert (load_image(path, 8, (0.0, 0.0, 0.5, 0.5)) == (255, 0, 0)).all()
    assert (load_image(path, 8, (0.5, 0.5, 1.0, 1.0)) == (0, 0, 255)).all()
    np.testing.assert_array_equal(load_image(path, 8, (0, 0, 1, 1)), load_image(path, 8))

    table = pd.DataFrame({"id": ["a/box0", "a/box1"], "path": [path, path]})
    table["crop"] = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    cached = np.load(build_cache(table, tmp_path, 8, "t", workers=1, progress=False))
    np.testing.assert_array_equal(cached[1], load_image(path, 8, table["crop"][1]))
    # another margin is another file, never the same file's stale pixels, nor the images'
    other = table.assign(crop=[(0.0, 0.0, 0.25, 0.5), (0.5, 0.5, 1.0, 1.0)])
    files = {
        build_cache(table, tmp_path, 8, "t", workers=1, progress=False),
        build_cache(other, tmp_path, 8, "t", workers=1, progress=False),
        cache_path(table, tmp_path, 8, "t"),
    }
    assert len(files) == 3


def test_a_fold_trains_on_crops_of_its_own_training_images_only(tiny_comp, tmp_path, monkeypatch):
    cfg = tiny_config(tiny_comp, tmp_path, crop_rate=0.5, epochs=2, batch_size=8)
    data = read_data(cfg)
    assert data.boxes is not None and len(data.boxes) > len(data.train)
    train_rows, val_rows = fold_rows(data, 0)
    crops = crop_table(data.train, data.boxes, cfg.crop_margin)
    eligible = fold_crops(crops, data.train, train_rows)
    ids = data.train["id"].to_numpy()
    assert set(crops["source"][eligible]) == set(data.boxes["id"]) & set(ids[train_rows])
    assert not set(crops["source"][eligible]) & set(ids[val_rows])

    drawn, seen = [], []
    real_rows, real_batches = FoldCrops.epoch_rows, FoldCrops.batches

    def record_rows(self, rows, seed, epoch):
        drawn.append(real_rows(self, rows, seed, epoch))
        return drawn[-1]

    def record_batches(self, whole, index_batches):
        seen.append(np.concatenate(index_batches))
        return real_batches(self, whole, index_batches)

    monkeypatch.setattr(FoldCrops, "epoch_rows", record_rows)
    monkeypatch.setattr(FoldCrops, "batches", record_batches)
    run_dir = train_run(cfg, data, tmp_path / "runs", [0], progress=False)
    assert len(drawn) == len(seen) == 2  # one per epoch
    offset = len(data.train)
    for rows, trained in zip(drawn, seen, strict=True):
        crop_rows, whole_rows = rows[rows >= offset] - offset, rows[rows < offset]
        # the epoch's share of crops, as many samples as training rows
        assert len(crop_rows) == round(0.5 * len(train_rows)) and len(rows) == len(train_rows)
        assert set(crops["source"][crop_rows]) <= set(ids[train_rows])
        assert set(whole_rows) <= set(train_rows)
        assert set(trained) <= set(rows) and (trained >= offset).any()
    # validation and OOF stay whole images
    assert sorted(read_predictions(run_dir / "fold0" / "oof.npz")["ids"]) == sorted(ids[val_rows])


def test_crops_with_default_keys_read_no_boxes_and_need_boxes_when_asked(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path)
    assert read_data(cfg).boxes is None  # crop_rate = 0: nothing more is read
    data = read_data(cfg.replace(crop_rate=0.3))
    no_boxes = type(data)(data.train, data.eval, data.class_ids, data.name, boxes=None)
    with pytest.raises(FathomError, match=r"crop_rate = 0.3: .* has no boxes") as err:
        train_run(cfg.replace(crop_rate=0.3), no_boxes, tmp_path / "runs", [0], progress=False)
    assert "\n" not in str(err.value)
    # a single-label (folder) dataset has no boxes: refused before anything starts
    with pytest.raises(FathomError, match="crop_rate and tiles are for multilabel"):
        from_dict({"task": "singlelabel", "loss": "ce", "crop_rate": 0.5})
    with pytest.raises(FathomError, match=r"crop_rate = 1.0 must be in \[0, 1\)"):
        from_dict({"crop_rate": 1.0})
