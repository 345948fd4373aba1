"""The Kaggle commands driven through a recording stand-in for KaggleApi."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from kaggle_fake import FakeKaggleApi, http_error, kaggle_mounts, kernel_template

from fathom.cli import main
from fathom.errors import FathomError
from fathom.kaggle import api as kaggle_api
from fathom.kaggle import competition as kaggle_data
from fathom.kaggle import kernels
from fathom.kaggle import weights as weights_dataset
from fathom.prior import write_prior
from fathom.runs import open_run
from fathom.synth.fathomnet import SynthConfig, generate

ROOT = Path(__file__).resolve().parents[1]
SLUG = kaggle_api.COMPETITION


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "comp"
    generate(out, SynthConfig(n_train=20, n_eval=12, width=32, height=32), progress=False)
    return out


def _connect_to(monkeypatch, api):
    monkeypatch.setattr(kaggle_api, "connect", lambda: api)


# --- the stand-in matches the real KaggleApi ------------------------------------------------


def test_fake_methods_match_kaggle_signatures():
    """Read kaggle's source with ast (importing it would authenticate and touch ~/.kaggle)."""
    spec = importlib.util.find_spec("kaggle")
    source = Path(spec.submodule_search_locations[0]) / "api" / "kaggle_api_extended.py"
    tree = ast.parse(source.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "KaggleApi")
    real = {
        f.name: [a.arg for a in f.args.args[1:]] for f in cls.body if isinstance(f, ast.FunctionDef)
    }
    used = [
        "competition_download_files",
        "competition_submit",
        "competition_submissions",
        "dataset_status",
        "dataset_create_new",
        "dataset_create_version",
        "kernels_push",
        "kernels_status",
        "kernels_output",
    ]
    for name in used:
        fake = getattr(FakeKaggleApi, name).__code__
        fake_args = list(fake.co_varnames[1 : fake.co_argcount])
        assert fake_args == real[name][: len(fake_args)], name


# --- credentials -----------------------------------------------------------------------------


def _clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "kcfg"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def test_no_credentials_gives_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fathom", "kaggle", "submissions"],
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "kaggle.json" in lines[0] and "chmod 600" in lines[0] and "KAGGLE_KEY" in lines[0]


def test_credentials_from_env_authenticate_without_printing_the_key(tmp_path):
    code = "from fathom.kaggle.api import connect; api = connect(); print(type(api).__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_clean_env(tmp_path, KAGGLE_USERNAME="alice", KAGGLE_KEY="0123456789abcdef-secret"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "KaggleApi"
    assert "0123456789abcdef-secret" not in result.stdout + result.stderr


def test_open_kaggle_json_is_warned_about(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "kaggle.json").write_text('{"username": "bob", "key": "x"}')
    (folder / "kaggle.json").chmod(0o644)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    kaggle_api.warn_open_permissions()
    assert "chmod 600" in capsys.readouterr().out
    assert kaggle_api.default_owner() == "bob"
    (folder / "kaggle.json").chmod(0o600)
    kaggle_api.warn_open_permissions()
    assert capsys.readouterr().out == ""


def test_rules_not_accepted_says_so_and_never_prints_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-value")
    api = FakeKaggleApi(
        raises={"competition_download_files": http_error(403, "403 Forbidden key=s3cr3t-key-value")}
    )
    _connect_to(monkeypatch, api)
    with pytest.raises(SystemExit) as exit_info:
        main(["kaggle", "download", "--out", str(tmp_path / "c")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"https://www.kaggle.com/competitions/{SLUG}/rules" in err and "accept" in err
    assert "s3cr3t-key-value" not in err and len(err.strip().splitlines()) == 1


def test_rejected_credentials_and_no_internet(monkeypatch):
    import requests

    api = FakeKaggleApi(raises={"competition_submissions": http_error(401)})
    with pytest.raises(FathomError, match="rejected the credentials.*kaggle.json"):
        kaggle_data.submissions_table(api)
    api = FakeKaggleApi(raises={"competition_submissions": requests.ConnectionError("boom")})
    with pytest.raises(FathomError, match="cannot reach Kaggle"):
        kaggle_data.submissions_table(api)


# --- download ----------------------------------------------------------------------------------


def _archive_from(comp: Path) -> dict[str, bytes]:
    return {name: (comp / name).read_bytes() for name in kaggle_data.EXPECTED_FILES[SLUG]}


def test_download_unzips_checks_and_skips_when_present(tmp_path, comp):
    api = FakeKaggleApi(archive=_archive_from(comp))
    dest = tmp_path / "fathomnet"
    kaggle_data.download_competition(api, SLUG, dest)
    assert api.calls == [
        (
            "competition_download_files",
            {"competition": SLUG, "path": str(dest), "force": False, "quiet": False},
        )
    ]
    for name in kaggle_data.EXPECTED_FILES[SLUG]:
        assert (dest / name).read_bytes() == (comp / name).read_bytes()
    kaggle_data.download_competition(api, SLUG, dest)  # already there: no second call
    assert len(api.calls) == 1
    kaggle_data.download_competition(api, SLUG, dest, force=True)
    assert api.calls[-1][1]["force"] is True


def test_download_refuses_an_archive_that_escapes(tmp_path, comp):
    archive = _archive_from(comp)
    archive["../outside.txt"] = b"x"
    api = FakeKaggleApi(archive=archive)
    dest = tmp_path / "c"
    with pytest.raises(FathomError, match="would land outside"):
        kaggle_data.download_competition(api, SLUG, dest)
    assert not (tmp_path / "outside.txt").exists()
    assert not (dest / "category_key.csv").exists()  # nothing extracted at all


def test_safe_extract_refuses_absolute_and_symlink_members(tmp_path):
    abs_zip = tmp_path / "abs.zip"
    with zipfile.ZipFile(abs_zip, "w") as zf:
        zf.writestr("/etc/evil", b"x")
    with pytest.raises(FathomError, match="outside"):
        kaggle_data.safe_extract(abs_zip, tmp_path / "a")
    link_zip = tmp_path / "link.zip"
    with zipfile.ZipFile(link_zip, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(FathomError, match="symbolic link"):
        kaggle_data.safe_extract(link_zip, tmp_path / "b")


def test_download_with_a_file_missing_fails(tmp_path, comp):
    archive = _archive_from(comp)
    del archive["object_detection/eval.json"]
    with pytest.raises(FathomError, match="object_detection/eval.json missing"):
        kaggle_data.download_competition(FakeKaggleApi(archive=archive), SLUG, tmp_path / "c")


# --- submit and submissions ----------------------------------------------------------------


@pytest.fixture
def submission(tmp_path, comp):
    path = write_prior(comp, tmp_path / "submissions" / "prior.csv")
    manifest = {
        "name": "prior",
        "cv": {"map20": 0.43217, "estimated_score": 0.4012},
    }  # as `fathom submit` writes
    path.with_suffix(".json").write_text(json.dumps(manifest))
    return path


def test_submit_dry_run_sends_nothing(monkeypatch, capsys, submission, comp):
    _connect_to(monkeypatch, None)  # any connection attempt would fail
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "kaggle",
                "submit",
                str(submission),
                "--comp",
                str(comp),
                "--dry-run",
                "-m",
                "prior baseline",
            ]
        )
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "dry run: would submit" in out and f"to {SLUG}" in out
    assert "message: prior | CV MAP@20 0.4322, est. score 0.4012 | prior baseline" in out


def test_submit_finds_the_competition_folder_in_the_manifest(monkeypatch, submission, comp):
    manifest = json.loads(submission.with_suffix(".json").read_text())
    manifest["competition"] = str(comp)
    submission.with_suffix(".json").write_text(json.dumps(manifest))
    api = FakeKaggleApi()
    _connect_to(monkeypatch, api)
    with pytest.raises(SystemExit) as exit_info:
        main(["kaggle", "submit", str(submission)])
    assert exit_info.value.code == 0
    assert [c[0] for c in api.calls] == ["competition_submit"]
    submission.with_suffix(".json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["kaggle", "submit", str(submission)])
    assert exit_info.value.code == 2 and len(api.calls) == 1


def test_submit_sends_the_validated_file_with_cv_in_the_message(submission, comp):
    api = FakeKaggleApi()
    kaggle_data.submit(api, submission, comp)
    assert api.calls == [
        (
            "competition_submit",
            {
                "file_name": str(submission),
                "message": "prior | CV MAP@20 0.4322, est. score 0.4012",
                "competition": SLUG,
                "quiet": False,
            },
        )
    ]
    assert api.seen["submitted_bytes"] == submission.read_bytes()


def test_submit_refuses_an_invalid_file(tmp_path, submission, comp):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(submission, dtype=str)
    frame.loc[0, "categories"] = "1.0 2.0"
    frame.to_csv(bad, index=False)
    api = FakeKaggleApi()
    with pytest.raises(FathomError, match="not submitted.*line 2"):
        kaggle_data.submit(api, bad, comp)
    assert api.calls == []


def test_submit_refuses_a_manifest_of_another_file(submission, comp):
    import hashlib

    manifest = json.loads(submission.with_suffix(".json").read_text())
    manifest["csv_sha256"] = hashlib.sha256(submission.read_bytes()).hexdigest()
    submission.with_suffix(".json").write_text(json.dumps(manifest))
    assert "CV MAP@20 0.4322" in kaggle_data.submit(None, submission, comp, dry_run=True)
    frame = pd.read_csv(submission, dtype=str, keep_default_na=False)
    frame.loc[0, "osd"] = "0.123456"  # still valid, but not the file the manifest scored
    frame.to_csv(submission, index=False)
    api = FakeKaggleApi()
    with pytest.raises(FathomError, match="describes another file"):
        kaggle_data.submit(api, submission, comp)
    assert api.calls == []


def test_submit_without_manifest_says_cv_unknown(tmp_path, submission, comp):
    submission.with_suffix(".json").unlink()
    assert (
        kaggle_data.submit(None, submission, comp, dry_run=True)
        == "prior | CV unknown (no manifest score)"
    )


def test_manifest_cv_forms():
    cv = kaggle_data.manifest_cv
    assert (
        cv({"cv": {"map20": 0.5, "estimated_score": 0.45}}) == "CV MAP@20 0.5000, est. score 0.4500"
    )
    assert cv({"cv": {"map20": 0.5, "estimated_score": None}}) == "CV MAP@20 0.5000"
    assert cv({"cv": 0.25}) == "CV 0.2500"
    assert cv({"cv_score": True}) is None and cv({"name": "x"}) is None


def test_submissions_lists_scores(monkeypatch, capsys):
    api = FakeKaggleApi()
    _connect_to(monkeypatch, api)
    with pytest.raises(SystemExit):
        main(["kaggle", "submissions", "-n", "5"])
    assert api.calls == [("competition_submissions", {"competition": SLUG, "page_size": 5})]
    out = capsys.readouterr().out
    table = pd.read_fwf(io.StringIO(out))
    assert table["file"].tolist() == ["blend.csv", "prior.csv"]
    assert table["status"].tolist() == ["complete", "pending"]
    assert "0.4921" in out


# --- weights dataset -------------------------------------------------------------------------


def fake_run(root: Path, name: str, folds=(0, 1), cv=0.5) -> Path:
    run = root / name
    for k in folds:
        (run / f"fold{k}").mkdir(parents=True)
        (run / f"fold{k}" / "best.pt").write_bytes(b"weights %d" % k)
        (run / f"fold{k}" / "last.pt").write_bytes(b"not uploaded")
        (run / f"fold{k}" / "history.csv").write_text("epoch\n0\n")
    (run / "config.json").write_text(json.dumps({"backbone": "resnet18"}))
    (run / "cv.json").write_text(json.dumps({"map20": cv, "per_fold": {}, "n_images": 10}))
    (run / "oof.npz").write_bytes(b"oof")
    (run / "eval.npz").write_bytes(b"not uploaded: the kernel predicts the eval set itself")
    return run


def dep_wheel_names() -> list[str]:
    """The dependency wheels upload-weights ships: fathom.kaggle.wheels at the versions here."""
    import importlib.metadata
    import re

    from fathom.kaggle.wheels import RUNTIME_WHEELS

    return [
        f"{re.sub(r'[-_.]+', '_', d).lower()}-{importlib.metadata.version(d)}-py3-none-any.whl"
        for d in RUNTIME_WHEELS
    ]


@pytest.fixture(autouse=True)
def dep_wheel_cache(tmp_path_factory, monkeypatch):
    """A wheel cache already holding the dependency wheels: no test downloads one."""
    cache = tmp_path_factory.getbasetemp() / "dep-wheels"
    cache.mkdir(exist_ok=True)
    for name in dep_wheel_names():
        (cache / name).write_bytes(b"a stand-in wheel")
    monkeypatch.setenv("FATHOM_WHEEL_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    """One wheel build for the module (pip takes a few seconds)."""
    out = tmp_path_factory.mktemp("wheel")
    weights_dataset.build_wheel(out)
    return out


def test_upload_weights_creates_then_versions(tmp_path, monkeypatch, capsys, wheel_dir):
    monkeypatch.setattr(weights_dataset, "build_wheel", lambda out: _copy_wheel(wheel_dir, out))
    run = fake_run(tmp_path / "runs", "effb0", cv=0.512)
    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold\n")
    stage_dir = tmp_path / "stage"
    api = FakeKaggleApi(dataset_exists=False)
    _connect_to(monkeypatch, api)
    argv = [
        "kaggle",
        "upload-weights",
        str(run),
        "--dataset",
        "alice/fathom-weights",
        "--out",
        str(stage_dir),
    ]
    tune = tmp_path / "tune-a.json"
    tune.write_text(
        json.dumps(
            {"competition": "/data/x", "experiments": [{"name": "effb0", "path": "runs/effb0"}]}
        )
    )
    config = tmp_path / "effb0.toml"
    config.write_text("model = 'efficientnet_b0'\n")
    with pytest.raises(SystemExit):
        main(argv + ["--folds", str(folds), "--tune", str(tune), "--config", str(config)])
    assert [c[0] for c in api.calls] == ["dataset_status", "dataset_create_new"]
    assert api.calls[1][1] == {"folder": str(stage_dir), "public": False, "dir_mode": "zip"}
    meta = api.seen["dataset_metadata"]
    assert meta["id"] == "alice/fathom-weights" and meta["licenses"] == [{"name": "CC0-1.0"}]
    assert 6 <= len(meta["title"]) <= 50
    files = api.seen["dataset_files"]
    assert files == sorted(
        [
            "dataset-metadata.json",
            "fathom-weights.json",
            "fathom-0.1.0-py3-none-any.whl",
            "folds/folds.csv",
            "runs/effb0/config.json",
            "runs/effb0/cv.json",
            "runs/effb0/fold0/best.pt",
            "runs/effb0/fold1/best.pt",
            "runs/effb0/oof.npz",
            "tune.json",
            "configs/effb0.toml",
            *dep_wheel_names(),
        ]
    )
    manifest = json.loads((stage_dir / "fathom-weights.json").read_text())
    assert manifest["cv_map20"] == {"effb0": 0.512}
    assert (stage_dir / "runs/effb0/fold1/best.pt").read_bytes() == b"weights 1"

    api2 = FakeKaggleApi(dataset_exists=True)
    _connect_to(monkeypatch, api2)
    with pytest.raises(SystemExit):
        main(argv + ["--notes", "second"])
    assert api2.calls[1] == (
        "dataset_create_version",
        {"folder": str(stage_dir), "version_notes": "second", "dir_mode": "zip"},
    )
    assert "folds/folds.csv" not in api2.seen["dataset_files"]  # restaged: only what was asked
    assert "versioned" in capsys.readouterr().out


def _copy_wheel(src: Path, out: Path) -> Path:
    wheel = next(src.glob("fathom-*.whl"))
    target = out / wheel.name
    target.write_bytes(wheel.read_bytes())
    return target


def test_upload_weights_dry_run_and_bad_input(tmp_path, monkeypatch, capsys, wheel_dir):
    monkeypatch.setattr(weights_dataset, "build_wheel", lambda out: _copy_wheel(wheel_dir, out))
    _connect_to(monkeypatch, None)
    run = fake_run(tmp_path / "runs", "r18")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "kaggle",
                "upload-weights",
                str(run),
                "--dataset",
                "alice/fathom-weights",
                "--out",
                str(tmp_path / "s"),
                "--dry-run",
            ]
        )
    assert exit_info.value.code == 0
    assert "dry run: would create or version alice/fathom-weights" in capsys.readouterr().out
    with pytest.raises(FathomError, match="no config.json"):
        weights_dataset.stage([tmp_path], "alice/fathom-weights", tmp_path / "s2", wheel=False)
    with pytest.raises(FathomError, match="OWNER/SLUG"):
        weights_dataset.check_dataset_id("fathom-weights")
    tune = tmp_path / "tune.json"
    tune.write_text(json.dumps({"experiments": [{"name": "other", "path": "runs/other"}]}))
    with pytest.raises(FathomError, match="'other' is not among the uploaded runs"):
        weights_dataset.stage(
            [run], "alice/fathom-weights", tmp_path / "s3", tune=tune, wheel=False
        )


def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_upload_weights_dry_run_into_a_project_folder_deletes_nothing(
    tmp_path, monkeypatch, capsys
):
    # issue 16.1: `--out .` in a project used to rmtree its runs/ and folds/
    monkeypatch.setattr(weights_dataset, "build_wheel", lambda out: pytest.fail("staged"))
    project = tmp_path / "project"
    run = fake_run(project / "runs", "effb0")
    fake_run(project / "runs", "other")  # a run that is not being uploaded
    (project / "folds").mkdir()
    (project / "folds" / "mlskf5.csv").write_text("id,fold\n")
    (project / "configs").mkdir()
    (project / "configs" / "effb0.toml").write_text("model = 'x'\n")
    before = _tree(project)
    monkeypatch.chdir(project)
    argv = ["kaggle", "upload-weights", str(run), "--dataset", "alice/fathom-weights"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", ".", "--dry-run", "--folds", "folds/mlskf5.csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "not a fathom staging folder" in err and len(err.strip().splitlines()) == 1
    assert _tree(project) == before  # not a file lost, not one added
    with pytest.raises(FathomError, match="not a folder"):
        weights_dataset.stage([run], "alice/fathom-weights", project / "folds" / "mlskf5.csv")


def test_restaging_removes_only_what_the_last_staging_wrote(tmp_path):
    run = fake_run(tmp_path / "runs", "effb0")
    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold\n")
    out = tmp_path / "stage"
    out.mkdir()  # an empty folder is fine: it becomes fathom's
    weights_dataset.stage([run], "alice/fathom-weights", out, folds=[folds], wheel=False)
    assert (out / weights_dataset.STAGING_MARKER).is_file()
    (out / "folds" / "notes.txt").write_text("mine")  # the user's file in a staged folder
    weights_dataset.stage([run], "alice/fathom-weights", out, wheel=False)
    assert not (out / "folds" / "mlskf5.csv").exists() and not (out / "folds/folds.csv").exists()
    assert (out / "folds" / "notes.txt").read_text() == "mine"
    assert (out / "runs/effb0/fold0/best.pt").read_bytes() == b"weights 0"
    # a manifest edited to climb out of the folder removes nothing outside it
    manifest = json.loads((out / weights_dataset.MANIFEST).read_text())
    manifest["files"].append({"path": "../runs/effb0/cv.json"})
    (out / weights_dataset.MANIFEST).write_text(json.dumps(manifest))
    weights_dataset.stage([run], "alice/fathom-weights", out, wheel=False)
    assert (run / "cv.json").is_file() and (run / "fold0" / "best.pt").is_file()


def tuning_with_prior(path: Path, runs: list[str], kinds: bool = True) -> Path:
    """A tuning file as `fathom tune --prior` writes it: the runs, then the frequency prior
    (no folder); with `kinds=False` the runs lack `kind`, as in files from before the prior."""
    members = [
        {"name": r, "path": f"/home/me/runs/{r}", **({"kind": "run"} if kinds else {})}
        for r in runs
    ]
    members.append({"name": "frequency prior", "path": None, "kind": "prior"})
    tuning = {
        "competition": "/home/me/data",
        "experiments": members,
        "ensemble": {"method": "weighted", "weights": [0.8 / len(runs)] * len(runs) + [0.2]},
        "thresholds": {},
        "osd": {"scorer": "max_prob"},
    }
    path.write_text(json.dumps(tuning))
    return path


def test_upload_weights_takes_a_tuning_whose_ensemble_has_the_frequency_prior(
    tmp_path, monkeypatch, capsys, wheel_dir
):
    monkeypatch.setattr(weights_dataset, "build_wheel", lambda out: _copy_wheel(wheel_dir, out))
    _connect_to(monkeypatch, None)
    run = fake_run(tmp_path / "runs", "effb0")
    tune = tuning_with_prior(tmp_path / "tune-prior.json", ["effb0"])
    stage_dir = tmp_path / "stage"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "kaggle",
                "upload-weights",
                str(run),
                "--tune",
                str(tune),
                "--dataset",
                "alice/fathom-weights",
                "--out",
                str(stage_dir),
                "--dry-run",
            ]
        )
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert (stage_dir / "tune.json").read_bytes() == tune.read_bytes()
    assert sorted(p.name for p in (stage_dir / "runs").iterdir()) == ["effb0"]
    # a run member still has to be among the uploaded runs
    tuning_with_prior(tune, ["effb0", "r50"], kinds=False)
    with pytest.raises(FathomError, match="'r50' is not among the uploaded runs"):
        weights_dataset.stage(
            [run], "alice/fathom-weights", tmp_path / "s2", tune=tune, wheel=False
        )


def test_upload_weights_ships_the_checkpoints_a_run_has(tmp_path):
    """Some folds, a full fit, an unfinished fold and a stray copy: fold<k>/best.pt and
    full/best.pt are shipped, whichever exist, and nothing else."""
    run = fake_run(tmp_path / "runs", "some", folds=(0, 2, 10))
    (run / "full").mkdir()
    (run / "full" / "best.pt").write_bytes(b"full fit")
    (run / "full" / "eval.npz").write_bytes(b"not uploaded")
    (run / "fold1").mkdir()
    (run / "fold1" / "last.pt").write_bytes(b"unfinished: no best.pt yet")
    (run / "fold0.old").mkdir()
    (run / "fold0.old" / "best.pt").write_bytes(b"a stray copy")
    files = [p.relative_to(run).as_posix() for p in open_run(run).upload_files()]
    assert files == [
        "config.json",
        "cv.json",
        "oof.npz",
        "fold0/best.pt",
        "fold2/best.pt",
        "fold10/best.pt",
        "full/best.pt",
    ]
    only_full = tmp_path / "runs" / "full-only"
    (only_full / "full").mkdir(parents=True)
    (only_full / "full" / "best.pt").write_bytes(b"full fit")
    (only_full / "config.json").write_text("{}")
    manifest = weights_dataset.stage(
        [run, only_full], "alice/fathom-weights", tmp_path / "stage", wheel=False
    )
    staged = sorted(f["path"] for f in manifest["files"] if f["path"].endswith(".pt"))
    assert staged == [
        "runs/full-only/full/best.pt",
        "runs/some/fold0/best.pt",
        "runs/some/fold10/best.pt",
        "runs/some/fold2/best.pt",
        "runs/some/full/best.pt",
    ]
    assert manifest["cv_map20"] == {"some": 0.5}
    (run / "fold0.old" / "best.pt").unlink()
    for k in (0, 2, 10):
        (run / f"fold{k}" / "best.pt").unlink()
    (run / "full" / "best.pt").unlink()
    with pytest.raises(FathomError, match="no fold<k>/best.pt or full/best.pt"):
        open_run(run).upload_files()


def test_wheel_holds_the_package(wheel_dir):
    wheel = next(wheel_dir.glob("fathom-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "fathom/cli.py" in names
        and "fathom/kaggle/kernel_template.py" in names
        and "fathom/engine/train.py" in names
    )
    assert not any("__pycache__" in n for n in names)
    # the floors a kernel compares Kaggle's image against travel in the wheel's metadata
    floors = kernel_template().declared_floors(wheel)
    assert floors["timm"] == "1.0.12" and floors["torch"] == "2.4" and floors["numpy"] == "2.0"


# --- kernels -----------------------------------------------------------------------------------


def test_kernel_build_writes_metadata_and_script(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    argv = [
        "kernel",
        "build",
        "fathom-predict",
        "--run",
        "effb0",
        "--run",
        "r50",
        "--owner",
        "alice",
        "--dataset",
        "alice/fathom-weights",
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit):
        main(argv)
    folder = tmp_path / "fathom-predict"
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta == {
        "id": "alice/fathom-predict",
        "title": "fathom predict",
        "code_file": "fathom-predict.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": ["alice/fathom-weights"],
        "competition_sources": [SLUG],
        "kernel_sources": [],
        "model_sources": [],
        "machine_shape": "NvidiaTeslaT4",
    }
    text = (folder / "fathom-predict.py").read_text()
    compile(text, "kernel", "exec")
    settings = _settings_of(text)
    assert settings["steps"][:2] == [
        [
            "predict",
            "{runs}/effb0",
            "--comp",
            "{comp}",
            "--out",
            "{tmp}/preds/effb0",
            "--overwrite",
        ],
        ["predict", "{runs}/r50", "--comp", "{comp}", "--out", "{tmp}/preds/r50", "--overwrite"],
    ]
    submit = settings["steps"][2]
    assert submit[:2] == ["submit", "{tune}"]
    assert submit[submit.index("--predictions") + 1] == "{tmp}/preds"
    assert settings["keep"]["submission.csv"] == "{tmp}/submissions/kernel.csv"
    assert settings["tuning"] is True and settings["image_splits"] == ["eval"]


def _settings_of(text: str) -> dict:
    namespace: dict = {}
    exec(
        compile(text.replace('if __name__ == "__main__"', "if False"), "kernel", "exec"), namespace
    )
    return namespace["SETTINGS"]


@pytest.mark.parametrize("kinds", [True, False])
def test_kernel_build_skips_the_frequency_prior_of_a_tuning(tmp_path, kinds):
    tune = tuning_with_prior(tmp_path / "tune.json", ["effb0", "r50"], kinds=kinds)
    argv = [
        "kernel",
        "build",
        "fathom-predict",
        "--tune",
        str(tune),
        "--owner",
        "alice",
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    settings = _settings_of((tmp_path / "fathom-predict" / "fathom-predict.py").read_text())
    assert [step[:2] for step in settings["steps"]] == [
        ["predict", "{runs}/effb0"],
        ["predict", "{runs}/r50"],
        ["submit", "{tune}"],
    ]


def test_kernel_build_trains_two_folds_per_kernel_one_per_t4(tmp_path):
    argv = [
        "kernel",
        "build",
        "fathom-train-effb0",
        "--kind",
        "train",
        "--config",
        "effb0.toml",
        "--owner",
        "alice",
        "--folds-file",
        "mlskf5.csv",
        "--n-folds",
        "5",
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit):
        main(argv)
    groups = {"folds0-1": [0, 1], "folds2-3": [2, 3], "fold4": [4]}  # ceil(5/2) kernels
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"fathom-train-effb0-{g}" for g in groups)
    for group, folds in groups.items():
        folder = tmp_path / f"fathom-train-effb0-{group}"
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        assert meta["id"] == f"alice/{folder.name}" and meta["enable_internet"] is False
        assert meta["machine_shape"] == "NvidiaTeslaT4"  # two T4s: one fold each
        settings = _settings_of((folder / f"{folder.name}.py").read_text())
        (step,) = settings["steps"]
        assert step[:5] == [
            "kernel",
            "train-folds",
            "{weights}/configs/effb0.toml",
            "competition={comp}",
            "folds={folds}/mlskf5.csv",
        ]
        assert step[step.index("--folds") + 1] == ",".join(map(str, folds))
        assert all(f"runs/effb0/fold{k}/best.pt" in settings["keep"] for k in folds)
        assert settings["startup"][:2] == ["--config", "{weights}/configs/effb0.toml"]


def test_kernel_build_rejects_bad_specs():
    with pytest.raises(FathomError, match="needs its runs"):
        kernels.build(
            kernels.KernelSpec(name="fathom-predict", owner="a", weights_dataset="a/weights")
        )
    with pytest.raises(FathomError, match="kernel name"):
        kernels.build(
            kernels.KernelSpec(name="Bad Name", owner="a", weights_dataset="a/weights", runs=("x",))
        )


def test_kernel_push_status_output_calls(tmp_path, monkeypatch, capsys):
    spec = kernels.KernelSpec(
        name="fathom-prior", owner="alice", kind="prior", weights_dataset="alice/fathom-weights"
    )
    folder = kernels.build(spec, tmp_path)
    api = FakeKaggleApi()
    _connect_to(monkeypatch, api)
    for argv in (
        ["kernel", "push", "fathom-prior", "--root", str(tmp_path), "--timeout", "3600"],
        ["kernel", "status", "alice/fathom-prior"],
        ["kernel", "output", "alice/fathom-prior", "--out", str(tmp_path / "out")],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert api.calls == [
        ("kernels_push", {"folder": str(folder), "timeout": "3600", "acc": None}),
        ("kernels_status", {"kernel": "alice/fathom-prior"}),
        (
            "kernels_output",
            {"kernel": "alice/fathom-prior", "path": str(tmp_path / "out"), "force": True},
        ),
    ]
    assert api.seen["kernel_metadata"]["id"] == "alice/fathom-prior"
    out = capsys.readouterr().out
    assert "alice/fathom-prior: running" in out and "(version 3)" in out


# --- the generated script runs here, against a folder laid out like /kaggle/input -------------


def fake_kaggle_input(
    tmp_path: Path, comp: Path, wheel_dir: Path, with_images: bool = True
) -> Path:
    """input/<competition slug>/ (the Kaggle files) and input/fathom-weights/ (our dataset)."""
    import shutil

    inp = tmp_path / "input"
    skip = ["hidden"] + ([] if with_images else ["images"])
    shutil.copytree(comp, inp / SLUG, ignore=shutil.ignore_patterns(*skip))
    run = fake_run(tmp_path / "runs", "r18")
    weights_dataset.stage([run], "alice/fathom-weights", inp / "fathom-weights", wheel=False)
    _copy_wheel(wheel_dir, inp / "fathom-weights")
    return inp


def kernel_env(tmp_path: Path, inp: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH"
    }  # fathom must come from the wheel
    env.update(
        FATHOM_KAGGLE_INPUT=str(inp),
        FATHOM_KAGGLE_WORKING=str(tmp_path / "working"),
        FATHOM_KAGGLE_TMP=str(tmp_path / "scratch"),
        OMP_NUM_THREADS="1",
    )
    return env


def test_prior_kernel_runs_here_offline_and_writes_a_valid_submission(tmp_path, comp, wheel_dir):
    inp = fake_kaggle_input(tmp_path, comp, wheel_dir, with_images=False)
    spec = kernels.KernelSpec(
        name="fathom-prior", owner="alice", kind="prior", weights_dataset="alice/fathom-weights"
    )
    folder = kernels.build(spec, tmp_path / "kernels")
    result = subprocess.run(
        [sys.executable, str(folder / "fathom-prior.py")],
        env=kernel_env(tmp_path, inp),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"from {tmp_path / 'scratch' / 'site' / 'fathom'}" in result.stdout
    )  # the wheel, not the checkout
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "fathom",
            "validate",
            str(tmp_path / "working" / "submission.csv"),
            "--eval",
            str(comp / "object_detection" / "eval.json"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout
    assert "valid (12 eval images)" in check.stdout
    assert sorted(p.name for p in (tmp_path / "working").iterdir()) == ["submission.csv"]


def test_paths_resolve_in_kaggles_newer_layout_and_images_from_another_dataset(tmp_path, comp):
    import shutil

    from fathom.data.coco import open_competition, read_split

    tpl = kernel_template()
    inp, env = kaggle_mounts(tmp_path)
    shutil.copytree(
        comp, inp / "competitions" / SLUG, ignore=shutil.ignore_patterns("hidden", "images")
    )
    shutil.copytree(comp / "images" / "eval", inp / "datasets" / "bob" / "fathom-images" / "eval")
    settings = dict(
        tpl.SETTINGS, weights_dataset="alice/fathom-weights", images_dataset="bob/fathom-images"
    )
    paths = tpl.kaggle_paths(settings, env)
    assert paths["comp_source"] == inp / "competitions" / SLUG
    assert paths["weights"] == inp / "datasets" / "alice" / "fathom-weights"
    assert paths["working"] == tmp_path / "w"
    view = tpl.competition_view(
        paths["comp_source"], paths["images_source"], ["eval"], paths["tmp"]
    )
    assert view == tmp_path / "t" / "competition"
    table = read_split(open_competition(view), "eval")  # require_images: every file is there
    assert len(table) == 12
    with pytest.raises(SystemExit, match="fathom-other.*not attached"):
        tpl.kaggle_paths(dict(settings, weights_dataset="alice/fathom-other"), env)


def test_runs_uploaded_as_a_zip_are_unpacked(tmp_path):
    import shutil

    tpl = kernel_template()
    run = fake_run(tmp_path / "src" / "runs", "r18")
    weights = tmp_path / "weights"
    weights.mkdir()
    # What kaggle's dir_mode="zip" uploads: shutil.make_archive of the folder's contents.
    shutil.make_archive(str(weights / "runs"), "zip", str(run.parent))
    runs = tpl.unpacked(weights, "runs", tmp_path / "tmp")
    assert (runs / "r18" / "fold1" / "best.pt").read_bytes() == b"weights 1"
    assert tpl.unpacked(tmp_path / "src", "runs", tmp_path / "tmp2") == tmp_path / "src" / "runs"


def test_tuning_file_is_pointed_at_the_kernels_folders_and_outputs_kept(tmp_path):
    tpl = kernel_template()
    weights = tmp_path / "weights"
    weights.mkdir()
    tuning = {
        "competition": "/home/me/data",
        "experiments": [{"name": "a", "path": "/home/me/runs/a", "weight": 1.0}],
    }
    (weights / "tune.json").write_text(json.dumps(tuning))
    out = tpl.kernel_tuning(weights, tmp_path / "runs", tmp_path / "comp", tmp_path)
    data = json.loads(out.read_text())
    assert data["experiments"] == [
        {"name": "a", "path": str(tmp_path / "runs" / "a"), "weight": 1.0}
    ]
    assert data["competition"] == str(tmp_path / "comp")
    tuning_with_prior(weights / "tune.json", ["a"])  # the prior has no folder to point at
    data = json.loads(tpl.kernel_tuning(weights, tmp_path / "runs", tmp_path, tmp_path).read_text())
    assert [e["path"] for e in data["experiments"]] == [str(tmp_path / "runs" / "a"), None]
    (tmp_path / "made.csv").write_text("x\n")
    subs = {"tmp": str(tmp_path)}
    missing = tpl.keep(
        {"submission.csv": "{tmp}/made.csv", "b.json": "{tmp}/none.json"}, subs, tmp_path / "w"
    )
    assert (tmp_path / "w" / "submission.csv").read_text() == "x\n"
    assert len(missing) == 1 and missing[0].startswith("b.json")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["submission.csv"]


# --- run-time estimates --------------------------------------------------------------------


def _timed_run(root: Path, name: str, seconds: float, speed: float, folds=(0, 1)) -> Path:
    run = fake_run(root, name, folds=folds)
    for k in folds:
        (run / f"fold{k}" / "history.csv").write_text(
            "epoch,stage,train_loss,lr,seconds,images_per_s\n"
            f"1,main,0.5,0.001,{seconds / 2},{speed}\n2,main,0.4,0.001,{seconds / 2},{speed}\n"
        )
    return run


def test_kernel_build_estimates_run_time_from_the_runs_and_warns_over_the_limit(
    tmp_path, monkeypatch, capsys, comp
):
    monkeypatch.chdir(tmp_path)
    run = _timed_run(tmp_path / "runs", "effb0", seconds=5400, speed=2.0)  # 1.5 h a fold
    tune = tmp_path / "tune.json"
    tune.write_text(
        json.dumps({"competition": str(comp), "experiments": [{"name": "effb0", "path": str(run)}]})
    )
    argv = ["kernel", "build", "fathom-predict", "--tune", str(tune), "--owner", "alice"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "k"), "--arg=--tta"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # 12 eval images x 2 checkpoints x 2 (flip TTA) / (2 images/s x 3) = 8 s
    assert "fathom-predict: about 1 min (12 eval images" in out and "WARNING" not in out
    train = ["kernel", "build", "fathom-train-effb0", "--kind", "train", "--owner", "alice"]
    train += ["--config", "effb0.toml", "--folds-file", "f.csv", "--n-folds", "3"]
    with pytest.raises(SystemExit):
        main([*train, "--out", str(tmp_path / "k"), "--time-limit", "1"])
    out = capsys.readouterr().out
    assert "fathom-train-effb0-folds0-1: about 1.5 h" in out  # two folds at once, not 3 h
    assert "over the 1 h limit (--time-limit): Kaggle stops the kernel" in out
    # fold 2 was not trained here: it counts as the mean of those that were
    assert "fathom-train-effb0-fold2: about 1.5 h" in out
    with pytest.raises(SystemExit):
        main([*train, "--out", str(tmp_path / "k"), "--overwrite", "--speed-ratio", "3"])
    assert "fathom-train-effb0-folds0-1: about 30 min" in capsys.readouterr().out


def test_kernel_build_without_measurements_says_there_is_no_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["kernel", "build", "fathom-predict", "--run", "nowhere", "--owner", "alice"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "fathom-predict: no run-time estimate (eval set size unknown)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--overwrite", "--time-limit", "nan"])
    assert exit_info.value.code == 2
