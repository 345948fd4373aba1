"""`fathom compare` on hand-made run folders in the engine's layout."""

import json

import numpy as np
import pandas as pd
import pytest
from folder_fixtures import make_dataset
from PIL import Image

from fathom import fileio
from fathom.cli import main


def _run(root, name, data, probs_by_fold, ids_by_fold, times):
    run = root / name
    fileio.write_json(
        run / "config.json",
        {"name": name, "model": "fathom_cnn", "task": "singlelabel", "competition": str(data)},
    )
    for k, (probs, ids) in enumerate(zip(probs_by_fold, ids_by_fold, strict=True)):
        n_epochs = len(times)
        history = pd.DataFrame(
            {
                "epoch": range(1, n_epochs + 1),
                "train_loss": np.linspace(2, 1, n_epochs),
                "val_accuracy": np.linspace(0.2, 0.6, n_epochs),
                "epoch_time_s": times,
            }
        )
        fileio.write_csv(run / f"fold{k}" / "history.csv", history)
        fileio.save_npz(
            run / f"fold{k}" / "oof.npz",
            ids=np.array(ids),
            probs=np.asarray(probs, np.float32),
            category_ids=np.arange(3),
        )
    return run


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(
        tmp_path / "d", {"train": {"a": 2, "b": 2, "c": 1}, "val": {"a": 1, "b": 1, "c": 1}}
    )


def test_compare_scores_runs_from_their_oof(tmp_path, dataset, capsys):
    val_ids = ["val/a/a_0", "val/b/b_0", "val/c/c_0"]
    perfect = _run(tmp_path, "perfect", dataset, [np.eye(3)], [val_ids], [10.0, 20.0])
    # predicts a, a, b: one right; top-3 of 3 classes always hits
    wrong = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    # two folds: the second fold's oof holds train images
    two = _run(
        tmp_path,
        "two_folds",
        dataset,
        [wrong, np.eye(3)[[0, 1]]],
        [val_ids, ["train/a/a_0", "train/b/b_0"]],
        [30.0, 30.0],
    )
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as code:
        main(["compare", str(perfect), str(two), "--out", str(out)])
    assert code.value.code == 0
    table = pd.read_csv(out / "compare.csv")
    assert table["run"].tolist() == ["perfect", "two_folds"]
    assert table["accuracy"].tolist() == pytest.approx([1.0, 3 / 5])
    assert table["top3"].tolist() == pytest.approx([1.0, 1.0])
    assert table["train_min"].tolist() == pytest.approx([0.5, 2.0])
    assert table["folds"].tolist() == [1, 2] and table["n_oof"].tolist() == [3, 5]
    # two_folds: a P 2/3 R 1; b P 1/2 R 1/2; c P 0 R 0 -> macro F1 (0.8 + 0.5 + 0) / 3
    assert table["macro_f1"].iloc[1] == pytest.approx(1.3 / 3)
    with Image.open(out / "history.png") as img:
        assert img.format == "PNG"
    pairs = pd.read_csv(out / "two_folds" / "most_confused.csv")
    assert pairs[["true", "predicted", "count"]].values.tolist() == [["b", "a", 1], ["c", "b", 1]]
    assert (out / "perfect" / "confusion.png").is_file()
    printed = capsys.readouterr().out
    assert "two_folds: confuses b -> a 1x (50% of b)" in printed


def test_not_a_run_folder(tmp_path):
    from fathom.report import compare_runs

    (tmp_path / "x").mkdir()
    with pytest.raises(Exception, match="not a run folder"):
        compare_runs([tmp_path / "x"], tmp_path / "out")


def test_run_without_oof_is_one_line_error(tmp_path, dataset, capsys):
    run = _run(
        tmp_path, "r", dataset, [np.eye(3)], [["val/a/a_0", "val/b/b_0", "val/c/c_0"]], [1.0]
    )
    (run / "fold0" / "oof.npz").unlink()
    with pytest.raises(SystemExit) as code:
        main(["compare", str(run), "--out", str(tmp_path / "o")])
    assert code.value.code == 2
    assert "no oof.npz" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["name"] == "r"


def test_targets_stored_in_oof_need_no_dataset(tmp_path):
    from fathom.report import oof_targets
    from fathom.runs import open_run

    run = _run(tmp_path, "t", tmp_path / "gone", [np.eye(3)[[0, 0, 2]]], [["x", "y", "z"]], [1.0])
    fileio.save_npz(
        run / "fold0" / "oof.npz",
        ids=np.array(["x", "y", "z"]),
        probs=np.eye(3, dtype=np.float32)[[0, 0, 2]],
        targets=np.eye(3, dtype=np.float32)[[0, 1, 2]],
        category_ids=np.arange(3),
    )
    oof, _ = open_run(run).oof_so_far()
    rows, targets = oof_targets(open_run(run), oof, labels=None)
    assert targets.argmax(1).tolist() == [0, 1, 2] and oof["probs"][rows].argmax(1).tolist() == [
        0,
        0,
        2,
    ]
    with pytest.raises(SystemExit) as code:
        main(["compare", str(run), "--out", str(tmp_path / "o")])
    assert code.value.code == 0
    assert pd.read_csv(tmp_path / "o" / "compare.csv")["accuracy"].tolist() == pytest.approx(
        [2 / 3]
    )


def test_compare_says_which_fold_it_plots_and_where_its_confusions_are(tmp_path, dataset, capsys):
    ids = ["val/a/a_0", "val/b/b_0", "val/c/c_0"]
    one = _run(tmp_path, "one", dataset, [np.eye(3)], [ids], [1.0])
    two = _run(tmp_path, "two", dataset, [np.eye(3), np.eye(3)[[0, 1]]], [ids, ids[:2]], [1.0])
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as code:
        main(["compare", str(one), str(two), "--out", str(out)])
    assert code.value.code == 0
    printed = capsys.readouterr().out
    assert "history.png draws one fold of each run (the first it has): one fold0, two fold0" in (
        printed
    )
    assert f"confusion matrices: {out}/one/confusion.png, {out}/two/confusion.png" in printed


def test_compare_claims_no_confusion_matrix_for_a_multilabel_run(tmp_path, capsys):
    run = _run(tmp_path, "ml", tmp_path / "gone", [np.eye(3)], [["x", "y", "z"]], [1.0])
    config = json.loads((run / "config.json").read_text())
    fileio.write_json(run / "config.json", {**config, "task": "multilabel"})
    fileio.save_npz(
        run / "fold0" / "oof.npz",
        ids=np.array(["x", "y", "z"]),
        probs=np.full((3, 3), 0.5, dtype=np.float32),
        targets=np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32),
        category_ids=np.arange(3),
    )
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as code:
        main(["compare", str(run), "--out", str(out)])
    assert code.value.code == 0
    printed = capsys.readouterr().out
    assert "map20" in printed and "confusion" not in printed
    assert not (out / "ml").exists()
