# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""The engine end to end on a tiny synthetic competition, on CPU: every path of the training
loop, what it writes, resuming after kill -9, OOF stitching and prediction."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

import fathom.engine.train as train_module
from fathom.data import read_data
from fathom.data.augment import Preprocess
from fathom.data.coco import open_competition, read_categories, read_split
from fathom.data.loader import TrainData, fold_rows, train_batches
from fathom.engine.models import build_model
from fathom.engine.predict import predict_run
from fathom.engine.train import train_fold, train_run
from fathom.errors import FathomError
from fathom.oof import write_oof
from fathom.runs import read_predictions

REPO = Path(__file__).resolve().parents[1]
NUMBERS = ["train_loss", "val_loss", "val_map20", "lr"]


def _history(run_dir, fold="fold0"):
    return pd.read_csv(Path(run_dir) / fold / "history.csv")


def test_two_stage_fold_with_ema_accumulation_and_tta_writes_everything(
    tiny_comp, tmp_path, monkeypatch
):  # noqa: F811
    cfg = tiny_config(
        tiny_comp,
        tmp_path,
        epochs=3,
        stage1_epochs=1,
        unfreeze_stages=1,
        ema=True,
        accumulate=2,
        tta=True,
    )
    data = read_data(cfg)
    trainable_per_stage = []
    real = train_module.make_optimizer

    def spy(cfg_, model, stage, updates):
        trainable_per_stage.append(
            (stage, {n for n, p in model.named_parameters() if p.requires_grad})
        )
        return real(cfg_, model, stage, updates)

    monkeypatch.setattr(train_module, "make_optimizer", spy)
    run_dir = train_run(cfg, data, tmp_path / "runs", [0], progress=False)
    out = run_dir / "fold0"

    # stage 1 trains the head only; stage 2 the head and the last backbone stage
    (s1, head), (s2, later) = trainable_per_stage
    assert (s1, s2) == (1, 2)
    assert head == {"backbone.head.weight", "backbone.head.bias"}
    assert head < later and all(n.startswith(("backbone.head", "backbone.neck")) for n in later)
    # frozen stages never change, running statistics included
    torch.manual_seed(cfg.seed)
    fresh = build_model(cfg, len(data.class_ids)).state_dict()
    last = torch.load(out / "last.pt", weights_only=True)
    for key in (
        "backbone.blocks.0.0.weight",
        "backbone.blocks.0.1.running_mean",
        "backbone.blocks.3.3.weight",
    ):
        torch.testing.assert_close(last["model"][key], fresh[key])
    assert not torch.equal(last["model"]["backbone.neck.0.weight"], fresh["backbone.neck.0.weight"])

    # the run folder: config, history, checkpoints, predictions keyed by id
    assert json.loads((run_dir / "config.json").read_text()) == cfg.to_dict()
    hist = _history(run_dir)
    assert hist["epoch"].tolist() == [1, 2, 3] and hist["stage"].tolist() == [1, 2, 2]
    assert {"train_loss", "val_loss", "val_map20", "lr", "seconds", "images_per_s"} <= set(
        hist.columns
    )
    assert np.isfinite(hist[NUMBERS].to_numpy()).all() and (hist["images_per_s"] > 0).all()
    assert last["config"] == cfg.to_dict() and last["state"]["finished"] and last["ema"] is not None
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["epoch"] == int(hist["epoch"][hist["val_map20"].idxmax()])
    assert best["score"] == pytest.approx(hist["val_map20"].max())

    oof, ev = read_predictions(out / "oof.npz"), read_predictions(out / "eval.npz")
    val_ids = set(data.train["id"][data.train["fold"] == 0])
    assert set(oof["ids"]) == val_ids and len(oof["ids"]) == len(val_ids)
    assert list(ev["ids"]) == list(data.eval["id"])
    cats = read_categories(open_competition(cfg.competition))["id"].tolist()
    for p in (oof, ev):
        assert p["probs"].shape == (len(p["ids"]), len(cats)) and p["category_ids"].tolist() == cats
        np.testing.assert_allclose(p["probs"], 1 / (1 + np.exp(-p["logits"])), rtol=1e-5, atol=1e-6)
        assert p["features"].shape == (len(p["ids"]), 256)
    # oof targets are the images' true categories, row by row
    truth = dict(zip(data.train["id"], data.train["categories"], strict=True))
    for i in range(len(oof["ids"])):
        assert {cats[j] for j in np.flatnonzero(oof["targets"][i])} == set(truth[oof["ids"][i]])

    # a finished fold is skipped; another config under the same name is refused
    stamp = (out / "eval.npz").stat().st_mtime_ns
    train_run(cfg, data, tmp_path / "runs", [0], progress=False)
    assert (out / "eval.npz").stat().st_mtime_ns == stamp
    with pytest.raises(FathomError, match="another config .*lr.*--name"):
        train_run(cfg.replace(lr=0.5), data, tmp_path / "runs", [0], progress=False)


def test_tta_on_a_finished_run_is_not_another_config(tiny_comp, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1)
    data = read_data(cfg)
    run_dir = train_run(cfg, data, tmp_path / "runs", [0], progress=False)
    plain = read_predictions(run_dir / "fold0" / "oof.npz")
    # killed while writing its predictions: the finished fold resumes from last.pt
    for name in ("oof.npz", "eval.npz"):
        (run_dir / "fold0" / name).unlink()
    train_run(cfg.replace(tta=True), data, tmp_path / "runs", [0], progress=False)
    flipped = read_predictions(run_dir / "fold0" / "oof.npz")
    np.testing.assert_array_equal(flipped["ids"], plain["ids"])
    assert not np.allclose(flipped["logits"], plain["logits"])  # the same weights, with the flip
    assert json.loads((run_dir / "config.json").read_text())["tta"] is True


@pytest.mark.parametrize("loss", ["bce_balanced", "asl", "focal"])
def test_each_multilabel_loss_trains(tiny_comp, tmp_path, loss):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, loss=loss, epochs=1)
    out = train_fold(cfg, read_data(cfg), tmp_path / "runs" / "tiny", 1, progress=False)
    hist = _history(out.parent, "fold1")
    assert np.isfinite(hist[NUMBERS].to_numpy()).all()
    assert read_predictions(out / "oof.npz")["probs"].shape[1] == 40


def test_loader_path_feeds_the_same_batches_as_the_device_path(tiny_comp, tmp_path):  # noqa: F811
    runs = []
    for on_device, workers in (("yes", 0), ("no", 1)):
        cfg = tiny_config(
            tiny_comp, tmp_path, data_on_device=on_device, num_workers=workers, epochs=1
        )
        train_fold(cfg, read_data(cfg), tmp_path / on_device, 0, progress=False)
        runs.append(_history(tmp_path / on_device))
    pd.testing.assert_frame_equal(runs[0][NUMBERS], runs[1][NUMBERS])


def _cli_overrides(cfg) -> list[str]:
    out = []
    for key, value in cfg.to_dict().items():
        if key == "name":
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        out.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def test_a_run_interrupted_mid_epoch_resumes_to_the_same_result(tiny_comp, tmp_path, monkeypatch):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=3, ema=True, accumulate=2)
    data = read_data(cfg)
    train_fold(cfg, data, tmp_path / "straight", 0, progress=False)

    calls = {"n": 0}
    real = Preprocess.train
    per_epoch = len(train_batches(len(fold_rows(data, 0)[0]), cfg.batch_size, cfg.seed, 0))

    def dies_in_epoch_3(self, images, generator):
        calls["n"] += 1
        if calls["n"] == 2 * per_epoch + 2:  # the second batch of epoch 3
            raise KeyboardInterrupt
        return real(self, images, generator)

    monkeypatch.setattr(Preprocess, "train", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    assert (
        torch.load(tmp_path / "resumed" / "fold0" / "last.pt", weights_only=True)["state"]["epoch"]
        == 2
    )
    assert not (tmp_path / "resumed" / "fold0" / "oof.npz").exists()
    train_fold(cfg, data, tmp_path / "resumed", 0, progress=False)
    _same_run(tmp_path / "resumed", tmp_path / "straight")


def _same_run(a, b):
    pd.testing.assert_frame_equal(
        _history(a)[NUMBERS], _history(b)[NUMBERS]
    )  # a CPU run repeats exactly
    pa, pb = (
        read_predictions(Path(a) / "fold0" / "oof.npz"),
        read_predictions(Path(b) / "fold0" / "oof.npz"),
    )
    np.testing.assert_array_equal(pa["ids"], pb["ids"])
    np.testing.assert_allclose(pa["probs"], pb["probs"], atol=1e-6)


@pytest.mark.slow
def test_kill_9_mid_run_resumes_to_the_same_result_as_an_uninterrupted_run(tiny_comp, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=4, ema=True)
    train_fold(cfg, read_data(cfg), tmp_path / "straight", 0, progress=False)
    train = [sys.executable, "-m", "fathom", "train", "default", "--name", "tiny", "--fold", "0"]
    cmd = [*train, "--runs", str(tmp_path / "runs"), "--no-progress", *_cli_overrides(cfg)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = tmp_path / "runs" / "tiny" / "fold0" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    # at once: epoch 1 is saved and the next has begun; a fixed wait here outran all four
    # epochs of this tiny run on an idle machine
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(last, weights_only=True)["state"]["epoch"]
    assert 1 <= done < 4, "the kill should land mid-run"
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming after epoch {done}" in again.stdout
    _same_run(tmp_path / "runs" / "tiny", tmp_path / "straight")


def test_full_fit_trains_on_everything_and_writes_eval_only(tiny_comp, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1)
    data = read_data(cfg, need_folds=False)
    out = train_run(cfg, data, tmp_path / "runs", [None], progress=False) / "full"
    assert sorted(p.name for p in out.iterdir()) == [
        "bank.npz",
        "best.pt",
        "eval.npz",
        "history.csv",
        "last.pt",
    ]
    bank = np.load(out / "bank.npz")  # the kNN bank of a full fit: every training image
    assert sorted(bank["ids"].astype(str)) == sorted(data.train["id"].astype(str))
    hist = _history(out.parent, "full")
    assert "val_map20" not in hist.columns and len(hist) == 1
    assert list(read_predictions(out / "eval.npz")["ids"]) == list(data.eval["id"])


def _four_class_data(tiny_comp) -> TrainData:
    """The tiny competition as a generic single-label table: class = first category mod 4."""
    comp = open_competition(tiny_comp[0])
    train = read_split(comp, "train")
    train = train.assign(
        categories=[(c[0] % 4,) for c in train["categories"]], fold=np.arange(len(train)) % 2
    )
    return TrainData(
        train[["id", "path", "categories", "fold"]],
        read_split(comp, "eval")[["id", "path"]],
        (0, 1, 2, 3),
        "fish",
    )


def test_singlelabel_task_from_a_generic_table(tiny_comp, tmp_path, capsys, run_cli):  # noqa: F811
    data = _four_class_data(tiny_comp)
    cfg = tiny_config(
        tiny_comp, tmp_path, task="singlelabel", loss="ce_balanced", label_smoothing=0.1, epochs=3
    )
    run = train_run(cfg, data, tmp_path / "runs", [0], progress=False)
    out = run / "fold0"
    hist = _history(run)
    assert "val_acc" in hist.columns and 0 <= hist["val_acc"].iloc[-1] <= 1
    # issue 22: a single-label run speaks of its own metric, and keeps the epoch it scores best
    said = capsys.readouterr().out
    assert "MAP@20" not in said and "map20" not in said
    best = int(hist["epoch"][hist["val_acc"].idxmax()])
    assert f"best epoch {best}, val accuracy {hist['val_acc'].max():.4f}" in said
    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == best
    code, said, err = run_cli("oof", run, "--allow-missing-folds")
    assert code == 0, err
    assert "MAP@20" not in said and f"fold 0: accuracy {hist['val_acc'].max():.4f}" in said
    assert "CV accuracy" in said
    oof = read_predictions(out / "oof.npz")
    assert oof["probs"].shape == (24, 4)
    np.testing.assert_allclose(oof["probs"].sum(axis=1), 1.0, rtol=1e-5)
    assert oof["category_ids"].tolist() == [0, 1, 2, 3]


def test_holdout_categories_leave_training_rows_only(tiny_comp, tmp_path):  # noqa: F811
    data = read_data(tiny_config(tiny_comp, tmp_path))
    common = pd.Series([c for row in data.train["categories"] for c in row]).value_counts().index[0]
    train, val = fold_rows(data, 0, holdout=(int(common),))
    cats = data.train["categories"]
    assert not any(common in cats[i] for i in train)
    assert set(val) == set(np.flatnonzero(data.train["fold"] == 0))  # validation keeps them
    assert any(common in cats[i] for i in val)
    with pytest.raises(FathomError, match="fold 7 is not in the folds file"):
        fold_rows(data, 7)


@pytest.fixture(scope="module")
def two_folds(tiny_comp, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("twofold")
    torch.set_num_threads(1)
    cfg = tiny_config(tiny_comp, tmp, epochs=1)
    run_dir = train_run(cfg, read_data(cfg), tmp / "runs", [0, 1], progress=False)
    return cfg, run_dir


def test_oof_stitches_every_training_image_once_with_its_fold(two_folds, tmp_path):
    cfg, run_dir = two_folds
    scores = write_oof(run_dir)
    oof = read_predictions(run_dir / "oof.npz")
    folds = pd.read_csv(cfg.folds, dtype={"id": str}).set_index("id")["fold"]
    assert sorted(oof["ids"]) == sorted(folds.index)
    assert (folds[oof["ids"]].to_numpy() == oof["fold"]).all()
    from fathom.metrics import map_at_k_matrix

    assert scores["map20"] == pytest.approx(map_at_k_matrix(oof["probs"], oof["targets"]))
    for k in (0, 1):
        rows = oof["fold"] == k
        assert scores["per_fold"][k] == pytest.approx(
            map_at_k_matrix(oof["probs"][rows], oof["targets"][rows])
        )
    assert json.loads((run_dir / "cv.json").read_text())["n_images"] == 48
    # the prior ranks fold k's images by the other fold's frequencies
    other = oof["targets"][oof["fold"] == 1].mean(axis=0)
    rows = oof["fold"] == 0
    prior0 = map_at_k_matrix(np.tile(other, (rows.sum(), 1)), oof["targets"][rows])
    prior1 = map_at_k_matrix(
        np.tile(oof["targets"][rows].mean(axis=0), ((~rows).sum(), 1)), oof["targets"][~rows]
    )
    assert scores["prior_map20"] == pytest.approx(
        (prior0 * rows.sum() + prior1 * (~rows).sum()) / 48
    )
    ev = read_predictions(run_dir / "eval.npz")
    assert ev["fold_probs"].shape == (2, 16, 40) and ev["fold_features"].shape == (2, 16, 256)
    np.testing.assert_allclose(ev["probs"], ev["fold_probs"].mean(axis=0), rtol=1e-6)

    # `fathom predict` on the same competition reproduces the run's eval predictions
    out = predict_run(
        run_dir, cfg.competition, tmp_path / "eval.npz", cache_dir=cfg.cache_dir, device="cpu"
    )
    again = read_predictions(out)
    np.testing.assert_array_equal(again["ids"], ev["ids"])
    np.testing.assert_allclose(again["fold_probs"], ev["fold_probs"], atol=1e-5)


# --- issue 12: mixing, colour and layer-wise lr decay in the loop


def _group_lrs(opt, model):
    """{parameter name: its group's lr} of an optimizer."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g["lr"] for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("scheduler", ["cosine", "none"])
def test_layer_decay_gives_earlier_layers_lower_learning_rates(scheduler):
    from fathom.config import TrainConfig
    from fathom.engine.models import set_trainable

    cfg = TrainConfig(layer_decay=0.5, scheduler=scheduler, warmup_epochs=0, lr=1e-2)
    model = build_model(cfg, 5)
    set_trainable(model, 2, -1)
    opt, sched = train_module.make_optimizer(cfg, model, 2, 10)
    sched.step_update(num_updates=0)
    lrs = _group_lrs(opt, model)
    assert set(lrs) == {n for n, _ in model.named_parameters()}  # every parameter, once
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)  # the head's: the history's lr
    assert lrs["backbone.head.weight"] == pytest.approx(1e-2)
    # fathom_cnn's group_matcher: blocks 0..3, then the neck, then the head, each 0.5x the next
    layers = [f"backbone.blocks.{i}.0.weight" for i in range(4)] + ["backbone.neck.0.weight"]
    expected = [1e-2 * 0.5 ** (5 - i) for i in range(5)]
    assert [lrs[n] for n in layers] == pytest.approx(expected)
    # off: one lr for every parameter, as before
    plain, _ = train_module.make_optimizer(cfg.replace(layer_decay=0.0), model, 2, 10)
    assert list(_group_lrs(plain, model).values()) == pytest.approx([1e-2] * len(lrs))


def test_layer_decay_leaves_stage_1_and_frozen_stages_alone():
    from fathom.config import TrainConfig
    from fathom.engine.models import set_trainable

    cfg = TrainConfig(layer_decay=0.5, stage1_epochs=1, unfreeze_stages=1, scheduler="none")
    model = build_model(cfg, 5)
    set_trainable(model, 1)
    opt, _ = train_module.make_optimizer(cfg, model, 1, 10)
    assert set(_group_lrs(opt, model)) == {"backbone.head.weight", "backbone.head.bias"}
    assert set(_group_lrs(opt, model).values()) == {cfg.stage1_lr}
    set_trainable(model, 2, 1)  # the head and the last stage (the neck) only
    opt, _ = train_module.make_optimizer(cfg, model, 2, 10)
    lrs = _group_lrs(opt, model)
    assert not any(n.startswith("backbone.blocks.") for n in lrs)
    assert lrs["backbone.neck.0.weight"] == pytest.approx(cfg.lr * 0.5)


LEVERS = dict(
    mixup=0.4,
    cutmix=1.0,
    mix_prob=0.8,
    hue=0.05,
    saturation=0.3,
    contrast=0.3,
    auto_augment="trivial",
    layer_decay=0.75,
)


def test_mixing_colour_and_layer_decay_train_and_repeat_exactly(tiny_comp, tmp_path):  # noqa: F811
    cfg = tiny_config(tiny_comp, tmp_path, epochs=2, stage1_epochs=1, **LEVERS)
    data = read_data(cfg)
    for name in ("a", "b"):
        train_fold(cfg, data, tmp_path / name, 0, progress=False)
    pd.testing.assert_frame_equal(
        _history(tmp_path / "a")[NUMBERS], _history(tmp_path / "b")[NUMBERS]
    )
    assert np.isfinite(_history(tmp_path / "a")[NUMBERS].to_numpy()).all()
    plain = tiny_config(tiny_comp, tmp_path, epochs=2, stage1_epochs=1)
    train_fold(plain, data, tmp_path / "plain", 0, progress=False)
    assert not np.allclose(
        _history(tmp_path / "a")["train_loss"], _history(tmp_path / "plain")["train_loss"]
    )


@pytest.mark.parametrize("loss", ["ce", "focal"])
def test_singlelabel_trains_on_mixed_one_hot_targets(tiny_comp, tmp_path, loss):  # noqa: F811
    data = _four_class_data(tiny_comp)
    cfg = tiny_config(
        tiny_comp, tmp_path, task="singlelabel", loss=loss, epochs=1, mixup=0.4, cutmix=1.0
    )
    train_fold(cfg, data, tmp_path / "runs", 0, progress=False)
    hist = _history(tmp_path / "runs")
    assert np.isfinite(hist[NUMBERS].to_numpy()).all() and "val_acc" in hist.columns


def test_train_loss_and_val_loss_are_both_the_category_loss(tiny_comp, tmp_path, monkeypatch):  # noqa: F811
    """Issue 22: with the supercategory head, train_loss used to carry its term and val_loss
    not. A constant added to that term (no gradient: the same training) must not show."""
    real = train_module.supercat_loss
    monkeypatch.setattr(train_module, "supercat_loss", lambda *a: real(*a) + 1000.0)
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1, supercat_weight=1.0)
    train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    hist = _history(tmp_path / "runs")
    assert hist["train_loss"].iloc[0] < 10 and hist["val_loss"].iloc[0] < 10
