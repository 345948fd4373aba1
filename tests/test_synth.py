import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fathom.data.coco import open_competition, read_categories, read_split
from fathom.errors import FathomError
from fathom.synth import write_synthetic
from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate
from fathom.synth.imagefolder import FolderSynthConfig, class_counts


def test_layout_matches_the_kaggle_files(small_comp):
    for rel in [
        "category_key.csv",
        "multilabel_classification/train.csv",
        "object_detection/train.json",
        "object_detection/eval.json",
        "sample_submission.csv",
    ]:
        assert (small_comp / rel).is_file(), rel
    assert list(pd.read_csv(small_comp / "category_key.csv").columns) == ["id", "name", "supercat"]
    train_csv = pd.read_csv(small_comp / "multilabel_classification/train.csv")
    assert list(train_csv.columns) == ["id", "categories"]
    assert train_csv["categories"][0].startswith("[") and ".0" in train_csv["categories"][0]
    coco = json.loads((small_comp / "object_detection/train.json").read_text())
    image = coco["images"][0]
    assert image["file_name"].endswith(".png") and len(image["file_name"]) == 40  # uuid + .png
    assert isinstance(coco["annotations"][0]["category_id"], float)
    assert len(coco["annotations"][0]["bbox"]) == 4
    assert {"id", "name", "supercategory"} <= set(coco["categories"][0])
    with Image.open(small_comp / "images" / "train" / image["file_name"]) as im:
        assert im.size == (64, 48)


def test_truth_is_kept_apart_and_matches_eval(small_comp):
    truth = pd.read_csv(small_comp / TRUTH_FILE, dtype=str)
    assert list(truth.columns) == ["id", "categories", "osd"]
    ev = read_split(open_competition(small_comp), "eval")
    assert set(truth["id"]) == set(ev["id"])
    assert set(truth["osd"]) == {"0", "1"}
    # nothing a model reads mentions the truth file
    assert not any("hidden" in p for p in ev["path"])


def test_statistics_follow_the_real_competition(tmp_path):
    root = generate(
        tmp_path / "c",
        SynthConfig(n_train=400, n_eval=200, width=48, height=36, seed=1),
        progress=False,
    )
    comp = open_competition(root)
    cats = read_categories(comp)
    assert len(cats) == 290 and cats["supercat"].nunique() == 20
    train = read_split(comp, "train")
    counts = Counter(c for row in train["categories"] for c in row)
    assert max(counts.values()) >= 10 * min(counts.values())  # long tail
    assert 0.4 <= len(counts) / 290 <= 0.6  # about half never occur in training
    coco = json.loads(comp.coco_json("train").read_text())
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    assert min(per_image.values()) >= 1 and max(per_image.values()) <= 6
    truth = pd.read_csv(root / TRUTH_FILE, dtype=str)
    deep = truth[truth["osd"] == "1"]
    unseen = [bool(set(map(int, s.split())) - set(counts)) for s in deep["categories"]]
    assert np.mean(unseen) > 0.5  # out-of-sample images hold categories training never shows
    shallow = truth[truth["osd"] == "0"]
    assert not any(set(map(int, s.split())) - set(counts) for s in shallow["categories"])


def test_same_seed_same_competition(tmp_path):
    cfg = SynthConfig(n_train=20, n_eval=10, width=40, height=32, seed=7)
    a = generate(tmp_path / "a", cfg, progress=False)
    b = generate(tmp_path / "b", cfg, progress=False)
    assert (a / "multilabel_classification/train.csv").read_bytes() == (
        b / "multilabel_classification/train.csv"
    ).read_bytes()
    name = pd.read_csv(a / "multilabel_classification/train.csv")["id"][0] + ".png"
    assert (a / "images/train" / name).read_bytes() == (b / "images/train" / name).read_bytes()
    c = generate(
        tmp_path / "c",
        SynthConfig(n_train=20, n_eval=10, width=40, height=32, seed=8),
        progress=False,
    )
    assert (c / "multilabel_classification/train.csv").read_bytes() != (
        a / "multilabel_classification/train.csv"
    ).read_bytes()


def test_synth_cli_refuses_to_overwrite(run_cli, tmp_path):
    out = tmp_path / "s"
    code, stdout, _ = run_cli(
        "synth", out, "--n-train", 12, "--n-eval", 10, "--width", 40, "--height", 32
    )
    assert code == 0 and "hidden eval truth" in stdout
    code, _, err = run_cli("synth", out, "--n-train", 12, "--n-eval", 10)
    assert code == 2 and "already holds a competition" in err and "Traceback" not in err


def test_every_shape_has_a_name_and_draws_something():
    from fathom.synth.draw import SHAPE_NAMES, SHAPES

    assert len(SHAPE_NAMES) == len(SHAPES) == len(set(SHAPE_NAMES))
    u, v = np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41))
    for name, shape in zip(SHAPE_NAMES, SHAPES, strict=True):
        mask = shape(u, v)
        assert mask.dtype == bool and 0 < mask.mean() < 1, name


def test_synth_cli_folder_kind_says_what_it_wrote(run_cli, tmp_path):
    out = tmp_path / "f"
    # --n-train belongs to the other kind: accepted and ignored, as the command line offers both
    code, stdout, _ = run_cli(
        "synth", out, "--kind", "folder", "--smallest", 2, "--size", 32, "--n-train", 5
    )
    assert code == 0
    n = {split: int(c.sum()) for split, c in class_counts(FolderSynthConfig(smallest=2)).items()}
    assert stdout.splitlines() == [
        f"wrote a synthetic folder dataset to {out}: 31 classes, {n['train']} train / "
        f"{n['val']} val / {n['test']} test images, 11:1 imbalance",
        f"hidden test truth: {out / 'hidden' / 'test_truth.csv'}",
    ]
    assert len(list((out / "test").glob("*.png"))) == n["test"]


def test_write_synthetic_refuses_an_unknown_kind_or_field(tmp_path):
    with pytest.raises(FathomError, match="unknown synthetic kind"):
        write_synthetic(tmp_path / "x", "coco")
    with pytest.raises(TypeError, match="n_trian"):
        write_synthetic(tmp_path / "x", "fathomnet", n_trian=12)
    assert not (tmp_path / "x").exists()


def test_realistic_mode_draws_small_occluded_organisms_in_a_wide_frame(tmp_path, run_cli):
    import json

    code, out, err = run_cli(
        "synth", tmp_path / "r", "--realistic", "--n-train", 40, "--n-eval", 10
    )
    assert code == 0, err
    assert "384x216, realistic" in out
    coco = json.loads((tmp_path / "r" / "object_detection" / "train.json").read_text())
    assert {(im["width"], im["height"]) for im in coco["images"]} == {(384, 216)}
    share = np.array([a["area"] for a in coco["annotations"]]) / (384 * 216)
    # a few percent of the frame at most, as an organism on a full-HD ROV frame
    assert 0.002 < np.median(share) < 0.03 and share.max() < 0.05


def test_realistic_categories_of_a_supercategory_look_more_alike():
    import colorsys

    from fathom.synth.fathomnet import SynthConfig, category_looks

    supercat_of = np.repeat(np.arange(4), 15)

    def spread(cfg):
        hues = [colorsys.rgb_to_hsv(*look.rgb)[0] for look in category_looks(cfg, supercat_of)]
        return np.ptp(hues[15:30])  # supercategory 1: its hues do not wrap around 0

    assert spread(SynthConfig(realistic=True)) < 0.5 * spread(SynthConfig())
