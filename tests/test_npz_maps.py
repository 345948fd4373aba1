"""Prediction files read without copying (issue 19 part 2): fileio.load_npz maps the stored
members of an .npz read-only, runs.read_predictions hands those maps out (and reads only what
a caller names), align_rows leaves rows already in order as they are. The stages that read
them (oof, tune, submit, report) run on these read-only arrays in their own tests
(test_tune_submit.py, test_csv_flow.py, test_folder_flow.py, test_report.py, test_knn.py):
an in-place write into one would fail there."""

import io
import zipfile

import numpy as np
import pytest

from fathom import fileio
from fathom.errors import FathomError
from fathom.runs import align_rows, all_finite, check_finite, read_predictions, write_predictions


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "f32": rng.normal(size=(7, 5)).astype(np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(4, 3))),
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "scalar": np.array(3, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "ids": np.array(["a", "bb", "ccc"]),
        "mask": np.array([True, False, True]),
        "cube": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    }


def same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert np.array_equal(got[k], v), k


def test_stored_members_are_read_only_maps_equal_to_what_np_load_reads(tmp_path):
    path = fileio.save_npz(tmp_path / "a.npz", **arrays())
    got = fileio.load_npz(path)
    with np.load(path) as data:
        same(got, {k: data[k] for k in data.files})
    for key, a in got.items():
        assert not a.flags.writeable and not a.flags.owndata, key
    with pytest.raises(ValueError, match="read-only"):
        got["f32"][0, 0] = 1.0
    assert got["fortran"].flags.f_contiguous


def test_only_the_named_members_are_read(tmp_path):
    path = fileio.save_npz(tmp_path / "a.npz", **arrays())
    assert sorted(fileio.load_npz(path, ("ids", "cube", "absent"))) == ["cube", "ids"]


def test_compressed_members_and_unknown_headers_are_read_by_np_load(tmp_path):
    want = arrays()
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, **want)
    same(fileio.load_npz(packed), want)
    # a member in the .npy format 3.0 (utf-8 header) is not mapped, but still read
    odd = tmp_path / "odd.npz"
    with zipfile.ZipFile(odd, "w") as zf:
        for key, version in (("v2", (2, 0)), ("v3", (3, 0))):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, want["f32"], version=version)
            zf.writestr(f"{key}.npy", buf.getvalue())
    got = fileio.load_npz(odd)
    same(got, {"v2": want["f32"], "v3": want["f32"]})
    assert not got["v2"].flags.writeable and got["v3"].flags.writeable


def test_a_map_keeps_the_contents_it_was_read_with_when_the_file_is_replaced(tmp_path):
    path = fileio.save_npz(tmp_path / "a.npz", x=np.arange(5.0))
    old = fileio.load_npz(path)["x"]
    fileio.save_npz(path, x=np.arange(5.0) * 10)  # atomic: a new file renamed over the old
    assert old.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert fileio.load_npz(path)["x"].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]


def test_damaged_or_object_files_are_one_line_errors(tmp_path):
    objects = tmp_path / "objects.npz"
    np.savez(objects, ids=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FathomError, match="objects.npz: cannot read as .npz"):
        read_predictions(objects, ("ids",))
    whole = fileio.save_npz(tmp_path / "whole.npz", **arrays()).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FathomError, match="cut.npz: cannot read as .npz"):
        read_predictions(cut, ("ids",))


def predictions(tmp_path, n=6, c=4):
    rng = np.random.default_rng(1)
    return write_predictions(
        tmp_path / "eval.npz",
        [f"id{i}" for i in range(n)],
        rng.random((n, c)),
        rng.normal(size=(n, c)),
        rng.normal(size=(n, 8)),
        [1, 2, 3, 4],
    )


def test_read_predictions_hands_out_read_only_maps_and_reads_only_what_is_named(tmp_path):
    path = predictions(tmp_path)
    full = read_predictions(path)
    assert not full["features"].flags.writeable and not full["probs"].flags.writeable
    assert sorted(full) == ["category_ids", "features", "ids", "logits", "probs"]
    assert sorted(read_predictions(path, ("ids",), only=("probs",))) == ["ids", "probs"]
    with pytest.raises(FathomError, match="lacks array"):
        read_predictions(path, ("folds",), only=())


def test_non_finite_values_are_found_past_the_first_block():
    values = np.zeros((5, 7, 3), dtype=np.float32)
    assert all_finite(values, block=4)
    values[4, 6, 2] = np.nan  # the very last value, in the last (partial) block
    assert not all_finite(values, block=4)
    assert not all_finite(values[:, ::2], block=4)  # not contiguous
    with pytest.raises(FathomError, match="non-finite fold_features .*model fold4, row 6"):
        check_finite({"fold_features": values, "folds": np.arange(5)}, "x.npz")


def test_rows_already_in_order_are_not_copied_and_others_are_reordered(tmp_path):
    data = read_predictions(predictions(tmp_path))
    ids = [f"id{i}" for i in range(6)]
    same_order = align_rows(data, ids, "eval.npz")
    for key in ("probs", "logits", "features"):
        assert same_order[key] is data[key]
    turned = align_rows(data, ids[::-1], "eval.npz")
    assert np.array_equal(turned["probs"], data["probs"][::-1])
    assert turned["ids"].tolist() == ids[::-1]
    fewer = align_rows(data, ids[:3], "eval.npz")
    assert np.array_equal(fewer["features"], data["features"][:3])
