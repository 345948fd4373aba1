"""A tiny end-to-end run of a folder dataset through the engine: train, compare, predict, submit."""

import numpy as np
import pandas as pd
import pytest
from engine_fixtures import one_thread  # noqa: F401
from folder_fixtures import make_dataset

from fathom import metrics as cm
from fathom.data.imagefolder import labels_of, open_folder, read_classes, read_folder_split

COLORS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 20)}


@pytest.fixture
def tiny_folder(tmp_path):
    splits = {"train": {"red": 8, "green": 4, "blue": 2}, "val": {"red": 2, "green": 2, "blue": 2}}
    return make_dataset(tmp_path / "fish", splits, flat_test=3, colors=COLORS, size=16)


def test_train_compare_predict_submit(tiny_folder, tmp_path, run_cli):  # noqa: F811
    runs = tmp_path / "runs"
    common = [
        f"competition={tiny_folder}",
        f"cache_dir={tmp_path / 'cache'}",
        "img_size=16",
        "epochs=2",
        "batch_size=4",
        "num_workers=0",
        "device=cpu",
    ]
    code, out, err = run_cli(
        "train", "fish_scratch", *common, "--name", "tiny", "--runs", runs, "--no-progress"
    )
    assert code == 0, err
    fold = runs / "tiny" / "fold0"
    history = pd.read_csv(fold / "history.csv")
    assert len(history) == 2 and "val_acc" in history.columns
    ds = open_folder(tiny_folder)
    classes = read_classes(ds)
    val = read_folder_split(ds, "val", classes)
    with np.load(fold / "oof.npz") as oof:
        assert sorted(oof["ids"]) == sorted(val["id"])  # the val folder is fold 0's validation
        assert oof["probs"].shape == (6, 3)
        np.testing.assert_allclose(oof["probs"].sum(axis=1), 1.0, rtol=1e-5)  # softmax
        labels = dict(zip(val["id"], labels_of(val), strict=True))
        expected = cm.accuracy(oof["probs"], [labels[i] for i in oof["ids"]])
    with np.load(fold / "eval.npz") as ev:
        assert sorted(ev["ids"]) == ["test/t0", "test/t1", "test/t2"]
        ev_ids, ev_probs = ev["ids"].tolist(), ev["probs"]

    code, out, err = run_cli("compare", runs / "tiny", "--out", tmp_path / "cmp")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert table["accuracy"].iloc[0] == pytest.approx(expected)
    assert table["epochs"].iloc[0] == 2 and (tmp_path / "cmp" / "tiny" / "confusion.png").is_file()

    code, out, err = run_cli(
        "predict",
        runs / "tiny",
        "--comp",
        tiny_folder,
        "--out",
        tmp_path / "pred",
        "--cache-dir",
        tmp_path / "cache",
    )
    assert code == 0, err
    with np.load(tmp_path / "pred" / "eval.npz") as pred:
        np.testing.assert_allclose(pred["probs"], ev_probs, atol=1e-5)

    from fathom.submission import make_label_submission, write_label_submission

    sub = make_label_submission(ev_ids, ev_probs, classes["name"].tolist())
    path = write_label_submission(tmp_path / "sub.csv", sub, ev_ids, classes["name"])
    code, out, err = run_cli("validate", path, "--folder", tiny_folder)
    assert code == 0 and "valid (3 test images)" in out


def test_folder_config_mistakes_are_one_line_errors(tiny_folder, tmp_path, run_cli):  # noqa: F811
    common = [f"competition={tiny_folder}", f"cache_dir={tmp_path / 'cache'}", "device=cpu"]
    code, _, err = run_cli(
        "train", "fish_scratch", *common, "n_folds=5", "--runs", tmp_path / "runs"
    )
    assert code == 2 and "set n_folds=1" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("train", "default", *common, "n_folds=1", "--runs", tmp_path / "runs")
    assert code == 2 and 'set task = "singlelabel"' in err


def test_demo_pretrains_a_backbone_that_the_frozen_transfer_run_keeps(
    tiny_folder, tmp_path, monkeypatch, capsys
):
    """The folder demo's pretraining stage: a full fit on the synthetic FathomNet competition,
    exported head-less, reused on a rerun, and loaded unchanged by the frozen transfer config."""
    import torch

    from fathom import demo as demo_folder
    from fathom.config import load_config
    from fathom.data import read_data
    from fathom.engine.train import load_checkpoint, train_run
    from fathom.synth.fathomnet import SynthConfig

    monkeypatch.setattr(
        demo_folder, "PRETRAIN_DATA", SynthConfig(n_train=24, n_eval=10, width=32, height=32)
    )
    monkeypatch.setattr(
        demo_folder, "PRETRAIN_OVERRIDES", ["epochs=1", "batch_size=8", "device=cpu"]
    )
    path = demo_folder.pretrain_backbone(tmp_path / "work", seed=0)
    weights = torch.load(path, weights_only=True)
    trained = load_checkpoint(
        tmp_path / "work" / "runs" / "pretrain_synth_fathomnet" / "full" / "best.pt"
    )
    assert trained["config"]["competition"].endswith("synth_fathomnet")
    assert trained["model"]["backbone.classifier.weight"].shape[0] == 290  # the multi-label task
    assert weights and not any(k.startswith("classifier.") for k in weights)  # head dropped
    for key, value in weights.items():
        torch.testing.assert_close(value, trained["model"][f"backbone.{key}"])
    stamp = path.stat().st_mtime_ns
    capsys.readouterr()
    assert demo_folder.pretrain_backbone(tmp_path / "work", seed=0) == path
    assert "reusing" in capsys.readouterr().out and path.stat().st_mtime_ns == stamp

    overrides = [
        f"competition={tiny_folder}",
        f"cache_dir={tmp_path / 'cache'}",
        "img_size=16",
        "epochs=1",
        "batch_size=4",
        "num_workers=0",
        "device=cpu",
        f"model={demo_folder.PRETRAIN_MODEL}",
        f"pretrained={path}",
    ]
    cfg = load_config("fish_effb0_frozen", overrides, name="frozen")
    run = train_run(cfg, read_data(cfg), tmp_path / "runs", [0], progress=False)
    best = load_checkpoint(run / "fold0" / "best.pt")["model"]
    assert best["backbone.classifier.weight"].shape[0] == 3  # a new head for the 3 classes
    for key, value in weights.items():  # the frozen backbone is the pretrained one, BN stats too
        torch.testing.assert_close(best[f"backbone.{key}"], value)
