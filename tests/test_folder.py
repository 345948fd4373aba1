"""The folder reader, stratified folds, class weights and the synthetic folder dataset."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from folder_fixtures import make_dataset
from folder_fixtures import write_image as _image

from fathom.data.folds import stratified_folds
from fathom.data.imagefolder import (
    balanced_class_weights,
    labels_of,
    open_folder,
    read_classes,
    read_folder_split,
)
from fathom.errors import FathomError
from fathom.synth.imagefolder import FolderSynthConfig, class_counts, generate_folder


@pytest.fixture
def fish(tmp_path):
    return make_dataset(
        tmp_path / "fish",
        {"train": {"tilapia": 3, "carp": 2}, "valid": {"carp": 1, "tilapia": 1}},
        flat_test=2,
    )


def test_reads_classes_splits_and_a_flat_test(fish):
    ds = open_folder(fish)
    classes = read_classes(ds)
    assert classes["name"].tolist() == ["carp", "tilapia"]  # sorted, as ImageFolder
    assert classes["n_train"].tolist() == [2, 3]
    train = read_folder_split(ds, "train", classes)
    assert train["id"].tolist()[:2] == ["train/carp/carp_0", "train/carp/carp_1"]
    assert labels_of(train).tolist() == [0, 0, 1, 1, 1]
    assert all(Path(p).is_file() for p in train["path"])
    val = read_folder_split(ds, "val", classes)  # found under valid/
    assert val["id"].tolist() == ["valid/carp/carp_0", "valid/tilapia/tilapia_0"]
    assert labels_of(val).tolist() == [0, 1]
    test = read_folder_split(ds, "test", classes)
    assert test["id"].tolist() == ["test/t0", "test/t1"]
    assert test["categories"].tolist() == [(), ()]
    assert not set(train["id"]) & set(val["id"])


def test_same_columns_as_the_competition_reader(fish):
    from fathom.data.coco import open_competition, read_split
    from fathom.synth.fathomnet import SynthConfig, generate

    comp = generate(
        fish.parent / "comp", SynthConfig(n_train=10, n_eval=10, n_categories=40), progress=False
    )
    multilabel = read_split(open_competition(comp), "train")
    table = read_folder_split(open_folder(fish), "train")
    assert list(table.columns) == list(multilabel.columns)
    assert isinstance(table["categories"].iloc[0], tuple)


def test_labelled_test_and_absent_val(tmp_path):
    root = make_dataset(tmp_path / "d", {"train": {"a": 1, "b": 1}, "test": {"b": 2}})
    ds = open_folder(root)
    assert read_folder_split(ds, "val").empty
    assert labels_of(read_folder_split(ds, "test")).tolist() == [1, 1]  # a test may lack a class


def test_hidden_files_are_skipped(fish):
    (fish / "train" / "carp" / ".DS_Store").write_bytes(b"\0")
    (fish / "train" / ".hidden").mkdir()
    assert len(read_folder_split(open_folder(fish), "train")) == 5


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: (r / "train" / "pike").mkdir(), "pike: class folder holds no images"),
        (lambda r: (r / "train" / "carp" / "notes.txt").write_text("x"), "notes.txt: not an image"),
        (
            lambda r: _image(r / "valid" / "pike" / "p.jpg"),
            "class folder 'pike' is not a train class",
        ),
        (lambda r: _image(r / "train" / "pike" / "p.jpg"), "lacks train class 'pike'"),
        (lambda r: _image(r / "train" / "loose.jpg"), "loose.jpg: a file beside the class folders"),
        (
            lambda r: _image(r / "train" / "carp" / "sub" / "x.jpg"),
            "a folder inside a class folder",
        ),
        (lambda r: _image(r / "train" / "carp" / "carp_0.png"), "apart from the extension"),
    ],
)
def test_bad_layouts_raise_one_line_errors(fish, breakage, message):
    breakage(fish)
    ds = open_folder(fish)
    with pytest.raises(FathomError, match=message) as info:
        read_folder_split(ds, "train")
        read_folder_split(ds, "val")
    assert "\n" not in str(info.value)


def test_test_class_unknown_to_train(tmp_path):
    root = make_dataset(tmp_path / "d", {"train": {"a": 1}, "test": {"z": 1}})
    with pytest.raises(FathomError, match="'z' is not a train class"):
        read_folder_split(open_folder(root), "test")


def test_missing_train_folder_from_the_command_line(tmp_path):
    (tmp_path / "d" / "val").mkdir(parents=True)
    (tmp_path / "sub.csv").write_text("id,label\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom",
            "validate",
            str(tmp_path / "sub.csv"),
            "--folder",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"fathom validate: error: {tmp_path / 'd'}: no train/ folder (expected train/<class>/<image>)"
    ]


def test_stratified_folds_spread_every_class():
    labels = np.repeat([0, 1, 2], [10, 25, 5])
    table = pd.DataFrame(
        {"id": [f"i{k}" for k in range(len(labels))], "categories": [(int(c),) for c in labels]}
    )
    folds = stratified_folds(table, n_splits=5, seed=1)
    assert list(folds.columns) == ["id", "fold"] and folds["id"].tolist() == table["id"].tolist()
    per_fold = pd.crosstab(labels, folds["fold"]).to_numpy()
    np.testing.assert_array_equal(per_fold, np.array([[2] * 5, [5] * 5, [1] * 5]))
    assert not folds.equals(stratified_folds(table, n_splits=5, seed=2))
    with pytest.raises(FathomError, match="class 2 has 5 image"):
        stratified_folds(table, n_splits=6)


def test_balanced_class_weights_by_hand():
    # n / (n_classes * count): 6/(3*2), 6/(3*1), 6/(3*3)
    np.testing.assert_allclose(
        balanced_class_weights([0, 0, 1, 2, 2, 2], 3), [1.0, 2.0, 2 / 3], rtol=1e-6
    )
    # class 2 absent: weights over the two present classes, 1 for the absent one
    np.testing.assert_allclose(
        balanced_class_weights([0, 0, 0, 1], 3), [4 / 6, 2.0, 1.0], rtol=1e-6
    )
    with pytest.raises(FathomError):
        balanced_class_weights([0, 3], 3)


def test_synthetic_folder_dataset(tmp_path):
    cfg = FolderSynthConfig(smallest=2, size=32, seed=3)
    root = generate_folder(tmp_path / "syn", cfg, progress=False)
    ds = open_folder(root)
    classes = read_classes(ds)
    assert len(classes) == 31 and classes["name"].is_unique
    counts = classes["n_train"].to_numpy()
    assert counts.max() == 11 * counts.min() == 22
    train, val, test = (read_folder_split(ds, s, classes) for s in ("train", "val", "test"))
    assert len(val) == class_counts(cfg)["val"].sum()
    assert set(labels_of(val)) == set(range(31))
    truth = pd.read_csv(root / "hidden" / "test_truth.csv")
    assert (
        sorted(truth["id"]) == sorted(test["id"]) and len(test) == class_counts(cfg)["test"].sum()
    )
    assert set(truth["label"]) <= set(classes["name"])
    with pytest.raises(FathomError, match="already holds"):
        generate_folder(root, cfg, progress=False)


def test_folder_train_table_uses_val_as_fold_zero(fish, tmp_path):
    from fathom.data import folder_train_table

    ds = open_folder(fish)
    table = folder_train_table(ds, read_classes(ds))
    assert sorted(table["fold"].unique()) == [-1, 0]
    assert table.loc[table["fold"] == 0, "id"].str.startswith("valid/").all()
    assert table["id"].is_unique and len(table) == 7


def test_folds_command_writes_stratified_folds_without_val(tmp_path, capsys):
    from fathom.cli import main
    from fathom.data import folder_train_table
    from fathom.data.folds import read_folds

    root = make_dataset(tmp_path / "d", {"train": {"a": 4, "b": 6}})
    with pytest.raises(SystemExit) as code:
        main(["folds", str(root), "--n-splits", "2", "--out-dir", str(tmp_path / "folds")])
    assert code.value.code == 0
    folds = read_folds(tmp_path / "folds" / "skf2.csv")
    table = folder_train_table(
        open_folder(root), read_classes(open_folder(root)), tmp_path / "folds" / "skf2.csv"
    )
    assert pd.crosstab(labels_of(table), table["fold"]).to_numpy().tolist() == [[2, 2], [3, 3]]
    assert len(folds) == 10 and "StratifiedKFold" in capsys.readouterr().out


def test_engine_loss_weights_match_scikit_learn():
    from fathom.engine.losses import balanced_class_weight

    labels = np.random.default_rng(0).choice(5, size=200, p=[0.5, 0.3, 0.1, 0.1, 0.0])
    np.testing.assert_allclose(
        balanced_class_weight(labels, 5).numpy(), balanced_class_weights(labels, 5), rtol=1e-6
    )
