"""The run-folder contract (fathom/runs.py) and the stages that read it: fold numbers, not
positions, pair eval features with OOF features; unfinished folds are never stitched silently."""

from types import SimpleNamespace

import numpy as np
import pytest

from fathom import fileio
from fathom import osd as osd_lib
from fathom.errors import FathomError
from fathom.oof import write_oof
from fathom.runs import FULL_FIT, average_eval, fold_dirs, model_dirs, open_run, write_predictions
from fathom.submit import eval_osd


def _fold(run, k, ids, n_cat=4, seed=0, with_eval=True):
    rng = np.random.default_rng(seed + k)
    probs = rng.random((len(ids), n_cat)).astype(np.float32)
    targets = np.eye(n_cat, dtype=np.float32)[rng.integers(0, n_cat, len(ids))]
    write_predictions(
        run / f"fold{k}" / "oof.npz",
        ids,
        probs,
        probs,
        rng.random((len(ids), 3)),
        range(n_cat),
        targets,
    )
    if with_eval:
        write_predictions(
            run / f"fold{k}" / "eval.npz",
            ["e0", "e1"],
            probs[:2],
            probs[:2],
            rng.random((2, 3)),
            range(n_cat),
        )


def test_fold_folders_sort_by_number_and_full_fit_is_last(tmp_path):
    for name in ("fold10", "fold2", "full", "fold0.old", "folder"):
        (tmp_path / name).mkdir()
    assert list(fold_dirs(tmp_path)) == [2, 10]
    assert list(model_dirs(tmp_path)) == [2, 10, FULL_FIT]


def test_oof_refuses_unfinished_folds_by_name_unless_asked(tmp_path):
    run = tmp_path / "r"
    fileio.write_json(run / "config.json", {"n_folds": 5})
    _fold(run, 0, ["a", "b"])
    _fold(run, 2, ["c", "d"])
    (run / "fold3").mkdir()  # started, never finished
    with pytest.raises(FathomError, match=r"fold\(s\) 1, 3, 4 of 5 have not finished"):
        write_oof(run)
    assert not (run / "oof.npz").exists()
    scores = write_oof(run, allow_missing=True)
    assert scores["missing_folds"] == [1, 3, 4]
    assert set(open_run(run).oof()["fold"]) == {0, 2}


def test_oof_command_names_the_missing_folds(tmp_path, run_cli):
    run = tmp_path / "r"
    fileio.write_json(run / "config.json", {"n_folds": 3})
    _fold(run, 0, ["a", "b"])
    code, _, err = run_cli("oof", run)
    assert code == 2 and "fold(s) 1, 2 of 3" in err and "--allow-missing-folds" in err
    code, out, _ = run_cli("oof", run, "--allow-missing-folds")
    assert code == 0 and "folds 1, 2 missing" in out


def test_eval_osd_pairs_fold_models_by_fold_number_and_skips_the_full_fit():
    """A run holding fold1, fold3 and full/: each eval feature block is compared with the OOF
    features of its own fold; the full fit has no OOF rows and takes no part."""
    rng = np.random.default_rng(0)
    oof_feats = {1: rng.normal(0, 1, (30, 5)), 3: rng.normal(10, 1, (30, 5))}
    oof = {
        "features": np.concatenate([oof_feats[1], oof_feats[3]]),
        "fold": np.repeat([1, 3], 30),
    }
    ev_feats = {
        1: rng.normal(0, 1, (8, 5)),
        3: rng.normal(10, 1, (8, 5)),
        FULL_FIT: rng.normal(5, 1, (8, 5)),
    }
    ev = average_eval(
        {
            k: {
                "ids": np.arange(8).astype(str),
                "probs": np.full((8, 2), 0.5),
                "logits": np.zeros((8, 2)),
                "features": f,
                "category_ids": np.arange(2),
            }
            for k, f in ev_feats.items()
        }
    )
    assert ev["folds"].tolist() == [1, 3, FULL_FIT]
    ens = {
        "runs": [SimpleNamespace(path="runs/r")],
        "evals": [ev],
        "oofs": [oof],
        "probs": ev["probs"],
        "logits": ev["logits"],
    }
    got = eval_osd(ens, "knn")
    want = osd_lib.eval_scores(
        "knn",
        ev["probs"],
        ev["logits"],
        None,
        [ev_feats[1], ev_feats[3]],
        [oof_feats[1], oof_feats[3]],
    )
    np.testing.assert_allclose(got, want)
    swapped = osd_lib.eval_scores(
        "knn",
        ev["probs"],
        ev["logits"],
        None,
        [ev_feats[1], ev_feats[3]],
        [oof_feats[3], oof_feats[1]],
    )
    assert not np.allclose(got, swapped)  # pairing by position would have given this


def test_a_config_json_that_is_no_object_is_one_line_for_the_stages_after_training(
    tmp_path, run_cli
):
    run = tmp_path / "r"
    _fold(run, 0, ["a", "b"])
    (run / "config.json").write_text("[1, 2]")
    code, _, err = run_cli("oof", run)
    assert code == 2 and f"{run / 'config.json'}: not a config" in err
    assert len(err.strip().splitlines()) == 1
