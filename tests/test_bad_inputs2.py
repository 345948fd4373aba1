"""Bad inputs and silent wrong answers of the second campaign (issues 16 and 21): planted
symbolic links, a full disk under torch's zip writer, hand-edited tuning files, kNN banks,
stale or non-finite OOF files, runs that share a folder name. Each ends in one line naming
the file and the key (exit status 2), or in the right answer; nothing a user owns is lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fathom import fileio
from fathom.errors import FathomError

# --- issue 16.3: outputs replace a planted symbolic link, never write through it


@pytest.mark.parametrize(
    "write",
    [
        lambda p: fileio.write_text(p, "new"),
        lambda p: fileio.write_json(p, {"new": 1}),
        lambda p: fileio.write_csv(p, pd.DataFrame({"new": [1]})),
        lambda p: fileio.save_npz(p, new=np.zeros(3)),
        lambda p: fileio.save_torch(p, {"new": 1}),
    ],
    ids=["text", "json", "csv", "npz", "torch"],
)
def test_a_planted_symlink_is_replaced_not_written_through(tmp_path, write):
    outside = tmp_path / "elsewhere" / "precious.txt"
    outside.parent.mkdir()
    outside.write_text("keep me")
    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)
    target = out / "oof.npz"
    target.symlink_to(outside)
    write(target)
    assert outside.read_text() == "keep me"
    assert not target.is_symlink() and target.is_file()
    assert sorted(p.name for p in out.iterdir()) == ["oof.npz"]  # no temp left


def test_a_temp_swapped_for_a_link_is_never_renamed_into_place(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    target = tmp_path / "out" / "sub.csv"
    with pytest.raises(FathomError, match="symbolic link"):
        with fileio.atomic_path(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(outside)
    assert outside.read_text() == "keep me"
    assert not target.exists() and list(target.parent.iterdir()) == []


# --- issue 16.4: a full disk (here: a real file-size limit) under torch.save

_FSIZE = """
import resource, signal, sys
import torch
from fathom import fileio
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from fathom.errors import FathomError
try:
    fileio.save_torch(sys.argv[1], {"weights": torch.zeros(1_000_000)})
except FathomError as exc:
    print("FATHOM", exc)
"""


def test_a_checkpoint_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    import torch

    path = fileio.save_torch(tmp_path / "last.pt", {"epoch": torch.tensor(1)})
    before = path.read_bytes()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", _FSIZE, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip()
    assert line.startswith(f"FATHOM {path}: cannot write (a file-size limit"), line
    assert "\n" not in line and "enforce fail" not in line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_plain_write_past_a_size_limit_is_one_line(tmp_path):
    import errno

    exc = OSError(errno.EFBIG, "File too large")
    err = fileio.os_error(exc, tmp_path / "oof.npz")
    assert isinstance(err, FathomError) and f"{tmp_path / 'oof.npz'}: file too large" in str(err)


# --- a world of fake runs and one tuning file (tests/_fake_runs.py: predictions constructed)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small competition; runs/a (good) and other/a (weak: another folder of the same name),
    and their tuning with the kNN member of runs/a."""
    from _fake_runs import make_run, small_competition

    root = tmp_path_factory.mktemp("bad2")
    comp = small_competition(root)
    a = make_run(root / "runs", comp, "a", quality=0.6, seed=1)
    other = make_run(root / "other", comp, "a", quality=0.05, seed=2)
    b = make_run(root / "runs", comp, "b", quality=0.3, seed=3)
    tune, pair = root / "tune.json", root / "pair.json"
    _cli("tune", a, b, "--knn", "--osd", "max_prob", "--out", tune)
    _cli("tune", a, other, "--osd", "max_prob", "--out", pair)
    return {"root": root, "comp": comp, "a": a, "other": other, "b": b, "tune": tune, "pair": pair}


def _cli(*args) -> None:
    from fathom.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert exc.code == 0, args


def _edited(world, tmp_path, change) -> Path:
    data = json.loads(world["tune"].read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def _one_line_error(run_cli, argv, *needles):
    code, out, err = run_cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, out, err)
    assert "Traceback" not in err and "unexpected error" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _set(path: str, value):
    """A change to the JSON at a dotted path (`ensemble.weights.0`), or a deletion (`...`)."""

    def change(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        key = int(last) if isinstance(node, list) else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return change


# issue 16.5: the 14 ways of the campaign, and a few more; each names the file and the key
TUNING_CASES = [
    ("member-without-name", _set("experiments.0.name", ...), "`experiments[0].name`"),
    ("no-experiments", _set("experiments", ...), "lacks experiments"),
    ("empty-experiments", _set("experiments", []), "`experiments`"),
    ("no-weights", _set("ensemble.weights", ...), "`ensemble.weights`"),
    ("no-scorer", _set("osd.scorer", ...), "`osd.scorer`"),
    ("no-temperature", _set("experiments.2.temperature", ...), "`experiments[2].temperature`"),
    ("weight-a-string", _set("ensemble.weights.0", "0.5"), "`ensemble.weights[0]`"),
    ("weight-negative", _set("ensemble.weights.1", -0.2), "`ensemble.weights[1]`"),
    ("weights-all-zero", _set("ensemble.weights", [0, 0, 0, 0]), "`ensemble.weights`"),
    ("more-weights", _set("ensemble.weights", [0.2, 0.2, 0.2, 0.2, 0.2]), "5 weight(s) for 4"),
    ("unknown-method", _set("ensemble.method", "median"), "`ensemble.method`"),
    ("null-path", _set("experiments.0.path", None), "`experiments[0].path`"),
    ("null-ensemble", _set("ensemble", None), "`ensemble`"),
    ("int-path", _set("experiments.1.path", 3), "`experiments[1].path`"),
    ("null-osd", _set("osd", None), "`osd`"),
    ("unknown-kind", _set("experiments.0.kind", "model"), "`experiments[0].kind`"),
    ("temperature-zero", _set("experiments.2.temperature", 0), "`experiments[2].temperature`"),
    ("unknown-scorer", _set("osd.scorer", "magic"), "`osd.scorer`"),
    ("weight-nan", _set("ensemble.weights.0", float("nan")), "`ensemble.weights[0]`"),
    ("member-a-string", _set("experiments.0", "runs/a"), "`experiments[0]`"),
    ("null-competition", _set("competition", None), "`competition`"),
    ("no-scores", _set("ensemble.scores", ...), "`ensemble.scores`"),
    ("weight-bool", _set("ensemble.weights.0", True), "`ensemble.weights[0]`"),
    ("threshold-a-string", _set("thresholds.global", "0.3"), "`thresholds.global`"),
    ("holdout-runs-null", _set("osd.holdout_runs", [None]), "`osd.holdout_runs`"),
    ("holdout-cats-strings", _set("osd.holdout_categories", ["7"]), "`osd.holdout_categories`"),
    ("scores-file-a-path", _set("osd.scores_file", "../../x.npz"), "`osd.scores_file`"),
]


def test_the_tuning_file_as_tune_wrote_it_submits(world, tmp_path, run_cli):
    code, out, err = run_cli(
        "submit", world["tune"], "--name", "ok", "--out-dir", tmp_path / "subs"
    )
    assert code == 0, err
    tuning = json.loads(world["tune"].read_text())
    assert [e["kind"] for e in tuning["experiments"]] == ["run", "run", "knn", "knn"]


@pytest.mark.parametrize(
    "change, needle", [c[1:] for c in TUNING_CASES], ids=[c[0] for c in TUNING_CASES]
)
def test_a_hand_edited_tuning_file_is_refused_in_one_line(world, tmp_path, run_cli, change, needle):
    path = _edited(world, tmp_path, change)
    subs = tmp_path / "subs"
    _one_line_error(run_cli, ["submit", path, "--name", "x", "--out-dir", subs], str(path), needle)
    assert not subs.exists()


def test_the_tuning_check_is_the_reader_every_command_uses(world, tmp_path, run_cli):
    """report (and kernel build, upload-weights: fathom/kaggle/*) read through read_tuning."""
    from fathom.runs import read_tuning

    path = _edited(world, tmp_path, _set("ensemble.weights.0", "x"))
    with pytest.raises(FathomError, match=r"`ensemble.weights\[0\]`"):
        read_tuning(path, need=("experiments",))  # what kernel build and upload-weights ask
    _one_line_error(
        run_cli, ["report", world["a"], "--tune", path, "--out", tmp_path / "r"], str(path)
    )


# --- issue 21.1: members are their resolved paths, not their folder names


def test_two_runs_of_one_folder_name_are_two_members(world, tmp_path, run_cli):
    from fathom.submission import read_submission

    subs = tmp_path / "subs"
    tuning = json.loads(world["pair"].read_text())
    assert [e["path"] for e in tuning["experiments"]] == [str(world["a"]), str(world["other"])]
    # what the submission would be from runs/a alone (weight 1, 0), and from both
    alone = _edited(
        {"tune": world["pair"]},
        tmp_path,
        lambda d: (
            d["ensemble"].update(weights=[1.0, 0.0], method="weighted"),
            d["ensemble"]["scores"].update(weighted=0.5),
        ),
    )
    assert run_cli("submit", alone, "--name", "alone", "--out-dir", subs)[0] == 0
    both = tmp_path / "both.json"
    both.write_text(alone.read_text().replace("[1.0, 0.0]", "[0.0, 1.0]"))
    code, _, err = run_cli("submit", both, "--name", "other", "--out-dir", subs)
    assert code == 0, err
    a_rows = read_submission(subs / "alone.csv")
    other_rows = read_submission(subs / "other.csv")
    # before: both members read runs/a's predictions, so the two submissions were equal
    assert not a_rows["categories"].equals(other_rows["categories"])
    manifest = json.loads((subs / "other.json").read_text())
    assert manifest["experiments"][1]["eval"]["path"] == str(world["other"] / "eval.npz")
    assert manifest["experiments"][1]["checkpoints"][0]["path"].startswith(str(world["other"]))


def test_two_runs_of_one_name_cannot_share_a_predictions_folder(world, tmp_path, run_cli):
    _one_line_error(
        run_cli,
        ["submit", world["pair"], "--name", "x", "--out-dir", tmp_path, "--predictions", tmp_path],
        "two runs named 'a'",
    )


# --- issue 21.5: the manifest hashes the eval predictions and kNN banks it used


def test_the_manifest_hashes_the_eval_files_and_banks_it_used(world, tmp_path, run_cli):
    from fathom.manifest import sha256

    subs = tmp_path / "subs"
    assert run_cli("submit", world["tune"], "--name", "m", "--out-dir", subs)[0] == 0
    members = json.loads((subs / "m.json").read_text())["experiments"]
    run_a, knn_a = members[0], members[2]
    assert run_a["eval"] == {
        "path": str(world["a"] / "eval.npz"),
        "sha256": sha256(world["a"] / "eval.npz"),
    }
    assert "banks" not in run_a
    assert [b["path"] for b in knn_a["banks"]] == [
        str(world["a"] / f"fold{k}" / "bank.npz") for k in range(3)
    ]
    assert knn_a["banks"][1]["sha256"] == sha256(world["a"] / "fold1" / "bank.npz")


# --- issue 16.6: kNN banks that do not belong to the fold model


def _copy_run(world, tmp_path, name="a") -> Path:
    import shutil

    return Path(shutil.copytree(world[name], tmp_path / "runs" / "a"))


def test_a_knn_bank_of_another_width_is_one_line(world, tmp_path, run_cli):
    from fathom.knn import read_bank, write_bank

    run = _copy_run(world, tmp_path)
    bank = read_bank(run / "fold1", np.load(run / "oof.npz")["category_ids"])
    narrow = run / "fold1" / "bank.npz"
    write_bank(narrow, bank["ids"], bank["features"][:, :8], bank["targets"], bank["category_ids"])
    argv = ["tune", run, "--knn", "--osd", "max_prob", "--out", tmp_path / "t.json"]
    _one_line_error(run_cli, argv, f"{narrow}: features 8 wide", "have 32")


def test_a_knn_bank_from_another_fold_is_refused_by_tune_and_submit(world, tmp_path, run_cli):
    import shutil

    run = _copy_run(world, tmp_path)
    tune = tmp_path / "t.json"
    argv = ["tune", run, "--knn", "--osd", "max_prob", "--out", tune]
    assert run_cli(*argv)[0] == 0  # the banks as training wrote them
    # fold 0's bank holds fold 1's validation rows (it trained on them)
    shutil.copyfile(run / "fold0" / "bank.npz", run / "fold2" / "bank.npz")
    bank = run / "fold2" / "bank.npz"
    _one_line_error(
        run_cli, [*argv, "--overwrite"], f"{bank}: holds", "of fold 2's validation images"
    )
    _one_line_error(
        run_cli, ["submit", tune, "--name", "x", "--out-dir", tmp_path / "s"], f"{bank}: holds"
    )


# --- issue 16.9: supercategory names padded with spaces are one supercategory


def test_supercategory_names_are_stripped_where_read(tmp_path):
    from _fake_runs import small_competition

    from fathom.data.coco import open_competition, read_categories

    comp = small_competition(tmp_path)
    key = comp / "category_key.csv"
    frame = pd.read_csv(key)
    before = read_categories(open_competition(comp))
    n_super = before["supercat"].nunique()
    frame.loc[::3, "supercat"] = " " + frame.loc[::3, "supercat"].astype(str) + "  "
    frame.to_csv(key, index=False)
    after = read_categories(open_competition(comp))
    assert after["supercat"].nunique() == n_super
    assert after["supercat_id"].tolist() == before["supercat_id"].tolist()
    assert after["supercat"].tolist() == before["supercat"].tolist()


# --- issue 21.3: non-finite predictions and features are refused where read


def _poke(path: Path, key: str, index, value=np.nan) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key][index] = value
    fileio.save_npz(path, **arrays)


def test_a_diverged_runs_nan_oof_is_refused_by_tune_naming_run_and_fold(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    fold = int(np.load(run / "oof.npz")["fold"][7])
    _poke(run / "oof.npz", "probs", (7, 3))
    argv = ["tune", run, world["b"], "--osd", "max_prob", "--out", tmp_path / "t.json"]
    _one_line_error(run_cli, argv, f"{run / 'oof.npz'}: non-finite probs", f"at fold {fold}, row 7")


def test_nan_eval_features_are_refused_by_submit_naming_the_fold_model(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    tune = tmp_path / "t.json"
    assert run_cli("tune", run, "--osd", "mahalanobis", "--out", tune)[0] == 0
    _poke(run / "eval.npz", "fold_features", (1, 4))  # fold 1's model, every feature of a row
    _one_line_error(
        run_cli,
        ["submit", tune, "--name", "x", "--out-dir", tmp_path / "s"],
        f"{run / 'eval.npz'}: non-finite fold_features",
        "model fold1, row 4",
    )
    assert not (tmp_path / "s").exists()


def _fold_oofs(run: Path, folds, inf_at: int | None = None) -> None:
    """fold<k>/oof.npz of `folds` as training writes them, cut from the run's stitched OOF."""
    from fathom.runs import write_predictions

    oof = dict(np.load(run / "oof.npz"))
    for k in folds:
        rows = oof["fold"] == k
        logits = oof["logits"][rows]
        if k == inf_at:
            logits[0, 0] = np.inf
        write_predictions(
            run / f"fold{k}" / "oof.npz",
            oof["ids"][rows],
            oof["probs"][rows],
            logits,
            oof["features"][rows],
            oof["category_ids"],
            truth=np.zeros_like(oof["probs"][rows]),
        )


def test_oof_refuses_a_folds_infinite_logits(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    _fold_oofs(run, range(3), inf_at=2)
    bad = run / "fold2" / "oof.npz"
    _one_line_error(run_cli, ["oof", run], f"{bad}: non-finite logits (1 NaN or infinite")


# --- issue 21.4: an oof.npz stitched before every fold had finished


def test_a_partial_oof_is_refused_once_more_folds_have_finished(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    _fold_oofs(run, range(3))
    (run / "fold2" / "oof.npz").rename(tmp_path / "later.npz")  # fold 2 still training
    code, out, err = run_cli("oof", run, "--allow-missing-folds")
    assert code == 0, err
    assert sorted(np.unique(np.load(run / "oof.npz")["fold"])) == [0, 1]
    tune = tmp_path / "t.json"
    assert run_cli("tune", run, "--osd", "max_prob", "--out", tune)[0] == 0
    (tmp_path / "later.npz").rename(run / "fold2" / "oof.npz")  # fold 2 has finished
    needles = (f"{run / 'oof.npz'}: stitched fold(s) 0, 1, but fold(s) 2", f"`fathom oof {run}`")
    argv = ["tune", run, "--osd", "max_prob", "--out", tune, "--overwrite"]
    _one_line_error(run_cli, argv, *needles)
    _one_line_error(run_cli, ["submit", tune, "--name", "x", "--out-dir", tmp_path / "s"], *needles)
    assert run_cli("oof", run)[0] == 0  # stitched again: every fold
    assert run_cli(*argv)[0] == 0
    assert json.loads(tune.read_text())["n_images"] == 150


def test_a_run_copied_without_its_fold_oofs_is_not_stale(world, tmp_path):
    """A Kaggle dataset carries the stitched oof.npz, not the folds': nothing to compare."""
    from fathom.runs import open_run

    run = _copy_run(world, tmp_path)
    assert open_run(run).folds_finished_since(dict(np.load(run / "oof.npz"))) == []


# --- issue 21.5: an empty `pretrained=` and a batch size below 1


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_pretrained_is_refused_by_the_config(value, run_cli, tmp_path, monkeypatch):
    from fathom.config import load_config

    with pytest.raises(FathomError, match="pretrained is empty"):
        load_config("default", [f"pretrained={value}"])
    monkeypatch.chdir(tmp_path)
    _one_line_error(run_cli, ["train", "default", f"pretrained={value}"], "pretrained is empty")
    assert not (tmp_path / "runs").exists()


def test_pretrained_false_and_a_path_still_load():
    from fathom.config import load_config

    assert load_config("default", ["pretrained=false"]).pretrained is False
    assert load_config("default", ["pretrained=w.pth"]).pretrained == "w.pth"


@pytest.mark.parametrize("size", ["-4", "0", "two"])
def test_predict_refuses_a_batch_size_below_one(size, run_cli, world, tmp_path):
    code, out, err = run_cli(
        "predict", world["a"], "--comp", world["comp"], "--batch-size", size, "--out", tmp_path
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--batch-size" in err and "Traceback" not in err
    assert not (tmp_path / "eval.npz").exists()


def test_predict_run_refuses_a_batch_size_below_one_from_python(world, tmp_path):
    from fathom.engine.predict import predict_run

    with pytest.raises(FathomError, match="batch size must be a whole number of images >= 1"):
        predict_run(world["a"], world["comp"], tmp_path / "eval.npz", batch_size=-4)


def test_tune_refuses_one_run_named_twice(world, tmp_path, run_cli):
    again = world["a"].parent / "." / "a"
    argv = ["tune", world["a"], again, "--osd", "max_prob", "--out", tmp_path / "t.json"]
    _one_line_error(run_cli, argv, f"{again}: named twice")


def test_a_kernel_of_two_runs_of_one_name_is_refused(world, tmp_path, run_cli, monkeypatch):
    """A weights dataset holds runs/<name>: runs/a and other/a cannot both travel in it."""
    from fathom.runs import read_tuning, run_folders, run_members

    monkeypatch.chdir(tmp_path)
    tuning = read_tuning(world["pair"])
    assert [f["path"] for f in run_folders(tuning)] == [str(world["a"]), str(world["other"])]
    with pytest.raises(FathomError, match="two runs named 'a'"):
        run_members(tuning)
    argv = ["kernel", "build", "fathom-predict", "--dataset", "me/weights-ds", "--owner", "me"]
    _one_line_error(run_cli, [*argv, "--tune", world["pair"]], str(world["pair"]), "two runs")
    assert not (tmp_path / "kernels").exists()


# --- prediction files of the wrong shape: one line naming the file and the array

SHAPE_CASES = [
    ("oof-features-1d", "oof.npz", "features", lambda a: a[:, 0], "`features` has shape (150,)"),
    (
        "oof-features-short",
        "oof.npz",
        "features",
        lambda a: a[:10],
        "`features` has shape (10, 32)",
    ),
    ("oof-fold-half", "oof.npz", "fold", lambda a: a + 0.5, "`fold` must be 150 whole"),
    ("oof-fold-short", "oof.npz", "fold", lambda a: a[:10], "`fold` must be 150 whole"),
    ("oof-probs-strings", "oof.npz", "probs", lambda a: a.astype(str), "`probs` holds <U"),
    (
        "eval-fold-probs-short",
        "eval.npz",
        "fold_probs",
        lambda a: a[:, :5],
        "`fold_probs` has shape",
    ),
    ("eval-two-models", "eval.npz", "fold_features", lambda a: a[:2], "different model counts"),
    ("eval-features-narrow", "eval.npz", "fold_features", lambda a: a[..., :8], "8 wide"),
]


@pytest.mark.parametrize(
    "file, key, fn, needle", [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES]
)
def test_a_prediction_file_of_the_wrong_shape_is_one_line(
    world, tmp_path, run_cli, file, key, fn, needle
):
    run = _copy_run(world, tmp_path)
    tune = tmp_path / "t.json"
    assert run_cli("tune", run, "--osd", "mahalanobis", "--out", tune)[0] == 0
    with np.load(run / file) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = fn(arrays[key])
    fileio.save_npz(run / file, **arrays)
    argv = ["submit", tune, "--name", "x", "--out-dir", tmp_path / "s"]
    if file == "oof.npz":
        argv = ["tune", run, "--osd", "mahalanobis", "--out", tune, "--overwrite"]
    _one_line_error(run_cli, argv, str(run / file), needle)


def test_oof_refuses_folds_whose_features_differ_in_width(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    _fold_oofs(run, range(3))
    with np.load(run / "fold1" / "oof.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["features"] = arrays["features"][:, :8]
    fileio.save_npz(run / "fold1" / "oof.npz", **arrays)
    _one_line_error(run_cli, ["oof", run], "fold 0: 32, fold 1: 8")


_TRAIN_UNDER_LIMIT = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # the cache fits, best.pt not
sys.argv = ["fathom", *sys.argv[1:]]
runpy.run_module("fathom", run_name="__main__")
"""


def test_fathom_train_on_a_full_disk_names_the_checkpoint(small_comp, tmp_path):
    """The campaign's case end to end: `fathom train` writing best.pt past a real size limit
    said "unexpected error ... a bug in fathom" (torch's "unexpected pos")."""
    from fathom.data.folds import write_folds

    folds, _, _ = write_folds(small_comp, 3, 0, out_dir=tmp_path / "folds")
    root = Path(__file__).resolve().parents[1]
    args = [f"competition={small_comp}", f"folds={folds}", "n_folds=3", "epochs=1"]
    proc = subprocess.run(
        [sys.executable, "-c", _TRAIN_UNDER_LIMIT, "train", "default", *args, "num_workers=0"]
        + ["--fold", "0", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and "%|" not in ln]
    best = Path("runs") / "default" / "fold0" / "best.pt"
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"fathom train: error: {best}: cannot write (a file-size limit")
    assert not (tmp_path / best).exists()
    assert not list((tmp_path / best.parent).glob(".*.tmp"))


# --- more of the campaign: outputs where a folder is, an empty --osd, an id twice


def test_an_output_named_like_a_folder_is_one_line(world, tmp_path, run_cli):
    folder = tmp_path / "adir"
    (folder / "inside").mkdir(parents=True)
    argv = ["tune", world["a"], "--osd", "max_prob", "--out", folder, "--overwrite"]
    _one_line_error(run_cli, argv, f"{folder}: is a folder, not a file")
    assert (folder / "inside").is_dir()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    argv = ["submit", world["tune"], "--name", "x", "--out-dir", a_file]
    _one_line_error(run_cli, argv, f"{a_file}: a file stands where")
    assert a_file.read_text() == "mine"


def test_submit_with_an_empty_osd_is_refused_not_ignored(world, tmp_path, run_cli):
    argv = ["submit", world["tune"], "--name", "x", "--out-dir", tmp_path, "--osd", ""]
    _one_line_error(run_cli, argv, "unknown osd scorer ''")


@pytest.mark.parametrize("file", ["oof.npz", "eval.npz"])
def test_a_prediction_file_with_an_id_twice_is_one_line(world, tmp_path, run_cli, file):
    run = _copy_run(world, tmp_path)
    tune = tmp_path / "t.json"
    assert run_cli("tune", run, "--osd", "max_prob", "--out", tune)[0] == 0
    with np.load(run / file) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["ids"][3] = arrays["ids"][4]
    fileio.save_npz(run / file, **arrays)
    argv = ["submit", tune, "--name", "x", "--out-dir", tmp_path / "s"]
    if file == "oof.npz":
        argv = ["tune", run, "--osd", "max_prob", "--out", tune, "--overwrite"]
    _one_line_error(run_cli, argv, f"{run / file}: image {arrays['ids'][4]} has 2 rows")


def test_an_oof_stitched_before_a_fold_was_trained_again_is_refused(world, tmp_path, run_cli):
    run = _copy_run(world, tmp_path)
    _fold_oofs(run, range(3))
    assert run_cli("oof", run)[0] == 0
    stitched = np.load(run / "oof.npz")
    assert stitched["stitched_folds"].tolist() == [0, 1, 2]
    tune = tmp_path / "t.json"
    argv = ["tune", run, "--osd", "max_prob", "--out", tune, "--overwrite"]
    assert run_cli(*argv)[0] == 0
    _poke(run / "fold1" / "oof.npz", "probs", (0, 0), 0.99)  # fold 1 trained again
    needle = f"{run / 'oof.npz'}: stitched fold(s) 0, 1, 2, but fold(s) 1 were trained again"
    _one_line_error(run_cli, argv, needle)
    assert run_cli("oof", run)[0] == 0
    assert run_cli(*argv)[0] == 0
