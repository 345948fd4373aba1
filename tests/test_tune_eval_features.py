"""The shift test reads only the eval features it compares, one fold model's block of eval.npz
(issue 19: reading every model's probabilities, logits and features was most of its time),
with the same checks and one-line errors."""

import numpy as np
import pytest

from fathom import fileio, osd
from fathom.errors import FathomError
from fathom.runs import average_eval, open_run
from fathom.tune import eval_shift, shift_sets


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
        "fold": np.asarray(folds)[np.arange(n_oof) % len(folds)],
    }
    return open_run(run), oof


def _rewrite(run, **changes):
    with np.load(run.path / "eval.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    fileio.save_npz(run.path / "eval.npz", **{k: v for k, v in arrays.items() if v is not None})


def test_the_shift_test_reads_one_model_s_block_and_gets_what_the_whole_file_gives(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(0)
    run, oof = _run(tmp_path, rng)
    oof["fold"][oof["fold"] == 0] = 2  # fold 0's model has no OOF rows: fold 1's is the one
    whole = run.eval()
    read = []
    original = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    reference, query = shift_sets(run, oof)
    # both arrays are maps of the file (fileio.load_npz): nothing is copied through numpy's zip
    # reader, and only the chosen model's block of the features is read
    assert read == []
    np.testing.assert_array_equal(query, whole["fold_features"][1])
    np.testing.assert_array_equal(reference, oof["features"][oof["fold"] == 1])
    shift = eval_shift([run], [oof])
    assert shift == {
        "auc": osd.shift_auc(reference, whole["fold_features"][1]),
        "n_reference": 20,
        "n_query": 40,
    }
    assert shift["auc"] > 0.7  # the eval features sit one unit away


def test_a_fortran_ordered_or_fold_less_file_is_read_as_well(tmp_path):
    rng = np.random.default_rng(4)
    run, oof = _run(tmp_path, rng)
    whole = run.eval()
    _rewrite(run, fold_features=np.asfortranarray(whole["fold_features"]), folds=None)
    reference, query = shift_sets(run, oof)  # no `folds`: the OOF's folds in order
    np.testing.assert_array_equal(query, whole["fold_features"][0])
    np.testing.assert_array_equal(reference, oof["features"][oof["fold"] == 0])


def test_no_features_no_shift_test_and_a_missing_or_damaged_file_is_one_line(tmp_path):
    rng = np.random.default_rng(1)
    run, oof = _run(tmp_path, rng)
    _rewrite(run, fold_features=None)
    assert shift_sets(run, oof) is None
    assert eval_shift([run], [oof]) == {"auc": None, "n_reference": 0, "n_query": 0}
    (run.path / "eval.npz").unlink()
    with pytest.raises(FathomError, match=r"eval\.npz: missing"):
        shift_sets(run, oof)
    (run.path / "eval.npz").write_bytes(b"not a zip")
    with pytest.raises(FathomError, match=r"eval\.npz: cannot read as \.npz"):
        shift_sets(run, oof)


def _nan_in_model(index):
    def change(a):
        features = a["fold_features"].copy()
        features[index, 3, 2] = np.nan
        return {"fold_features": features}

    return change


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda a: {"folds": a["folds"][:2]}, "`folds` must be 3 whole fold number"),
        (lambda a: {"folds": a["folds"] + 0.5}, "`folds` must be 3 whole fold number"),
        (lambda a: {"fold_features": a["fold_features"][0]}, "expected numbers of shape (M, N"),
        (lambda a: {"fold_features": a["fold_features"][..., :4]}, "eval features are 4 wide"),
        (
            _nan_in_model(0),
            "non-finite fold_features (1 NaN or infinite value(s), first at model fold0, row 3)",
        ),
        (
            lambda a: {"fold_features": a["fold_features"][:0], "folds": None},
            "`fold_features` holds 0 model(s), none for fold 0 of the OOF",
        ),
    ],
)
def test_a_bad_eval_features_file_is_one_line(tmp_path, change, needle):
    rng = np.random.default_rng(2)
    run, oof = _run(tmp_path, rng)
    _rewrite(run, **change(run.eval()))
    with pytest.raises(FathomError) as err:
        shift_sets(run, oof)
    assert str(err.value).startswith(str(run.path / "eval.npz"))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_only_the_block_used_is_checked_and_whole_float_folds_are_fold_numbers(tmp_path):
    rng = np.random.default_rng(3)
    run, oof = _run(tmp_path, rng, folds=(1, 3))
    _rewrite(run, folds=np.array([1.0, 3.0]), **_nan_in_model(1)(run.eval()))
    reference, query = shift_sets(run, oof)  # fold 3's NaN is not the shift test's business
    with np.load(run.path / "eval.npz") as data:
        np.testing.assert_array_equal(query, data["fold_features"][0])
    np.testing.assert_array_equal(reference, oof["features"][oof["fold"] == 1])
    with pytest.raises(FathomError, match="model fold3, row 3"):  # which `submit` refuses
        run.eval()
