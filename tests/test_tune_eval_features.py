"""The shift test reads only the eval features it compares (issue 19: reading every model's
probabilities and logits as well was most of its time), with the same checks and errors."""

import numpy as np
import pytest

from fathom import fileio
from fathom.errors import FathomError
from fathom.runs import average_eval, open_run
from fathom.tune import eval_features, eval_shift


def _run(tmp_path, rng, n_oof=60, n_eval=40, width=6, folds=(0, 1, 2)):
    run = tmp_path / "run"
    run.mkdir()
    models = {
        f: {
            "ids": np.array([f"e{i}" for i in range(n_eval)]),
            "probs": rng.random((n_eval, 4)),
            "logits": rng.normal(size=(n_eval, 4)),
            "features": rng.normal(1.0, 1.0, (n_eval, width)),
            "category_ids": np.arange(1, 5),
        }
        for f in folds
    }
    fileio.save_npz(run / "eval.npz", **average_eval(models))
    oof = {
        "features": rng.normal(0.0, 1.0, (n_oof, width)),
        "fold": np.arange(n_oof) % len(folds),
    }
    return open_run(run), oof


def _rewrite(run, **changes):
    with np.load(run.path / "eval.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    fileio.save_npz(run.path / "eval.npz", **arrays)


def test_the_shift_test_reads_only_the_features_and_gets_what_the_whole_file_gives(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(0)
    run, oof = _run(tmp_path, rng)
    whole = run.eval()
    read = []
    original = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    got = eval_features(run)
    assert sorted(read) == ["fold_features", "folds"]
    np.testing.assert_array_equal(got["fold_features"], whole["fold_features"])
    np.testing.assert_array_equal(got["folds"], whole["folds"])
    shift = eval_shift([run], [oof])
    assert shift["n_reference"] == 20 and shift["n_query"] == 40
    assert shift["auc"] > 0.7  # the eval features sit one unit away


def test_eval_features_without_features_or_file(tmp_path):
    rng = np.random.default_rng(1)
    run, oof = _run(tmp_path, rng)
    _rewrite(run, fold_features=None)
    assert eval_features(run) == {}
    assert eval_shift([run], [oof]) == {"auc": None, "n_reference": 0, "n_query": 0}
    (run.path / "eval.npz").unlink()
    with pytest.raises(FathomError, match=r"eval\.npz: missing"):
        eval_features(run)
    (run.path / "eval.npz").write_bytes(b"not a zip")
    with pytest.raises(FathomError, match=r"eval\.npz: cannot read as \.npz"):
        eval_features(run)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda a: {"folds": a["folds"][:2]}, "`folds` must be 3 whole fold number"),
        (lambda a: {"folds": a["folds"] + 0.5}, "`folds` must be 3 whole fold number"),
        (lambda a: {"fold_features": a["fold_features"][0]}, "expected numbers of shape (M, N"),
        (
            lambda a: {"fold_features": np.where(np.arange(6) == 2, np.nan, a["fold_features"])},
            "non-finite fold_features (120 NaN or infinite value(s), first at model fold0, row 0)",
        ),
    ],
)
def test_a_bad_eval_features_file_is_one_line(tmp_path, change, needle):
    rng = np.random.default_rng(2)
    run, _ = _run(tmp_path, rng)
    _rewrite(run, **change(run.eval()))
    with pytest.raises(FathomError) as err:
        eval_features(run)
    assert str(err.value).startswith(str(run.path / "eval.npz"))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_whole_float_fold_numbers_are_read_as_integers(tmp_path):
    rng = np.random.default_rng(3)
    run, _ = _run(tmp_path, rng, folds=(1, 3))
    _rewrite(run, folds=np.array([1.0, 3.0]))
    got = eval_features(run)
    assert got["folds"].dtype == np.int64 and got["folds"].tolist() == [1, 3]
