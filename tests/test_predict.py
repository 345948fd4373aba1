# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""`fathom predict` on a run that holds only some of its folds: what it labels each fold
model's predictions with, where it writes them, what it warns about, and TTA."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom import fileio
from fathom.data import read_data as read_competition_data
from fathom.data.augment import Preprocess
from fathom.data.coco import open_competition, read_split
from fathom.data.folds import assign_folds
from fathom.engine.predict import predict_run
from fathom.engine.train import train_run
from fathom.errors import FathomError
from fathom.oof import write_oof
from fathom.runs import read_predictions


@pytest.fixture(scope="module")
def gappy_run(tiny_comp, tmp_path_factory):  # noqa: F811
    """A 4-fold run of which only folds 1 and 3 were trained, stitched by `fathom oof`."""
    tmp = tmp_path_factory.mktemp("gappy")
    torch.set_num_threads(1)
    comp, _ = tiny_comp
    folds = assign_folds(read_split(open_competition(comp), "train"), n_splits=4, seed=0)
    fileio.write_csv(tmp / "folds4.csv", folds)
    cfg = tiny_config(tiny_comp, tmp, folds=str(tmp / "folds4.csv"), n_folds=4, epochs=1)
    run_dir = train_run(cfg, read_competition_data(cfg), tmp / "runs", [1, 3], progress=False)
    # the run's own eval.npz, which `fathom predict` must leave alone (folds 0 and 2 on purpose)
    write_oof(run_dir, allow_missing=True)
    return cfg, run_dir


def _predict(cfg, run_dir, out, **kwargs):
    return read_predictions(
        predict_run(run_dir, cfg.competition, out, cfg.cache_dir, "cpu", **kwargs)
    )


def test_each_fold_model_is_labelled_by_its_fold_number_and_a_full_fit_by_minus_1(
    gappy_run, tmp_path
):
    cfg, run_dir = gappy_run
    ev = _predict(cfg, run_dir, tmp_path / "folds.npz")
    assert ev["folds"].tolist() == [1, 3]
    assert ev["checkpoints"].tolist() == ["fold1", "fold3"]
    for row, k in enumerate(ev["folds"]):  # row k holds fold k's model, as its own eval.npz does
        own = read_predictions(run_dir / f"fold{k}" / "eval.npz")
        np.testing.assert_allclose(ev["fold_logits"][row], own["logits"], atol=1e-5)

    with_full = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, with_full)
    train_run(cfg, read_competition_data(cfg), with_full.parent, [None], progress=False)
    ev = _predict(cfg, with_full, tmp_path / "full.npz")
    assert ev["folds"].tolist() == [1, 3, -1]
    assert ev["checkpoints"].tolist() == ["fold1", "fold3", "full"]
    own = read_predictions(with_full / "full" / "eval.npz")
    np.testing.assert_allclose(ev["fold_logits"][2], own["logits"], atol=1e-5)


def test_predicting_with_fewer_folds_than_the_run_has_names_the_missing_ones(
    gappy_run, tmp_path, capsys
):
    cfg, run_dir = gappy_run
    _predict(cfg, run_dir, tmp_path / "eval.npz")
    err = capsys.readouterr().err
    assert f"warning: {run_dir}: folds 0, 2 have no best.pt; predicting with folds 1, 3\n" in err


def test_predict_writes_under_predictions_and_never_replaces_an_eval_npz_unasked(
    gappy_run, tmp_path, monkeypatch, run_cli
):
    cfg, run_dir = gappy_run
    own = (run_dir / "eval.npz").read_bytes()
    monkeypatch.chdir(tmp_path)
    args = ["predict", run_dir, "--comp", cfg.competition, "--cache-dir", cfg.cache_dir]
    args += ["--device", "cpu"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    # where `fathom submit TUNE --predictions predictions/<comp>` looks for <exp>/eval.npz
    written = tmp_path / "predictions" / "comp" / run_dir.name / "eval.npz"
    assert f"wrote {written.relative_to(tmp_path)}" in out
    assert read_predictions(written)["folds"].tolist() == [1, 3]
    assert (run_dir / "eval.npz").read_bytes() == own

    stamp = written.stat().st_mtime_ns
    code, out, err = run_cli(*args)
    assert code == 2 and err.strip().count("\n") == 0
    assert str(written.relative_to(tmp_path)) in err and "--overwrite" in err
    assert written.stat().st_mtime_ns == stamp
    code, out, err = run_cli(*args, "--overwrite")
    assert code == 0, err
    with pytest.raises(FathomError, match="already exists"):
        predict_run(run_dir, cfg.competition, run_dir / "eval.npz", cfg.cache_dir, "cpu")
    assert (run_dir / "eval.npz").read_bytes() == own


def test_tta_is_chosen_at_prediction_time_and_averages_the_plain_and_flipped_passes(
    gappy_run, tmp_path, monkeypatch, run_cli
):
    cfg, run_dir = gappy_run
    args = ["predict", run_dir, "--comp", cfg.competition, "--cache-dir", cfg.cache_dir]
    args += ["--device", "cpu"]
    for flag in ("tta", "no-tta"):
        code, _, err = run_cli(*args, f"--{flag}", "--out", tmp_path / flag)
        assert code == 0, err
    with_tta = read_predictions(tmp_path / "tta" / "eval.npz")
    plain = read_predictions(tmp_path / "no-tta" / "eval.npz")
    assert bool(with_tta["tta"]) and not bool(plain["tta"])
    default = _predict(cfg, run_dir, tmp_path / "default.npz")  # the run's config: tta=false
    assert not bool(default["tta"])
    np.testing.assert_array_equal(default["fold_logits"], plain["fold_logits"])

    real = Preprocess.eval
    monkeypatch.setattr(
        Preprocess, "eval", lambda self, images, hflip=False: real(self, images, True)
    )
    flipped = _predict(cfg, run_dir, tmp_path / "flipped.npz", tta=False)
    mean = (plain["fold_logits"] + flipped["fold_logits"]) / 2
    assert not np.allclose(with_tta["fold_logits"], plain["fold_logits"], atol=1e-4)
    np.testing.assert_allclose(with_tta["fold_logits"], mean, atol=1e-5)


def test_tiles_are_chosen_at_prediction_time_and_change_probs_only(gappy_run, tmp_path, run_cli):
    cfg, run_dir = gappy_run
    args = ["predict", run_dir, "--comp", cfg.competition, "--cache-dir", cfg.cache_dir]
    args += ["--device", "cpu"]
    for name, extra in (
        ("plain", []),
        ("tiled", ["--tiles", "2"]),
        ("unblended", ["--tiles", "2", "--tile-blend", "0"]),
    ):
        code, out, err = run_cli(*args, *extra, "--out", tmp_path / name)
        assert code == 0, err
    assert "fold1: predicted 16 images and 2x2 tiles" in out
    plain, tiled, unblended = (
        read_predictions(tmp_path / name / "eval.npz") for name in ("plain", "tiled", "unblended")
    )
    assert int(tiled["tiles"]) == 2 and int(plain["tiles"]) == 0
    # logits and features stay the whole frame's; probs move to the blend
    np.testing.assert_array_equal(tiled["fold_logits"], plain["fold_logits"])
    np.testing.assert_array_equal(tiled["fold_features"], plain["fold_features"])
    # (a one-epoch model is nearly the prior whatever it sees: the tiles move probs a little)
    assert np.abs(tiled["fold_probs"] - plain["fold_probs"]).max() > 1e-6
    assert (tiled["fold_probs"] >= 0.5 * plain["fold_probs"] - 1e-6).all()
    np.testing.assert_allclose(unblended["fold_probs"], plain["fold_probs"], atol=1e-6)
    assert list((tmp_path / "cache").glob("*")) == [] and any(
        p.name.startswith("comp-eval-tiles2-") for p in Path(cfg.cache_dir).iterdir()
    )
    code, _, err = run_cli(*args, "--tiles", "2", "--tile-blend", "1.5", "--out", tmp_path / "bad")
    assert code == 2 and "tile_blend = 1.5 must be in [0, 1]" in err
