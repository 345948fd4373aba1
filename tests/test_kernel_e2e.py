"""The generated kernels, run here end to end on the synthetic competition.

A tiny run is trained (`fathom train`, `oof`, `tune`), staged as the weights dataset exactly as
`fathom kaggle upload-weights` stages it (wheel included), laid out with the competition files
in a folder shaped like /kaggle/input; the generated script then installs fathom from the
wheel, predicts, submits, and its /kaggle/working/submission.csv must validate. A training
kernel for one fold runs the same way and must leave that fold's run files in /kaggle/working.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fathom.cli import COMMANDS
from fathom.kaggle import kernels
from fathom.kaggle import weights as weights_dataset
from fathom.kaggle.api import COMPETITION

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("train", "oof", "predict", "tune", "submit")
MISSING = [c for c in NEEDED if c not in COMMANDS]

# About 2 minutes on our shared 2-core machine (a tiny 5-fold training run, then each kernel's
# wheel, offline install and fathom processes), so these sit with the slow tests: `pytest -m slow`.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=(
            f"needs `fathom {' / '.join(MISSING)}` (the engine and tune branches); "
            "this branch does not have them yet"
        ),
    ),
]


def fathom(*argv, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fathom", *map(str, argv)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"fathom {argv[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def kernel_env(tmp_path: Path, inp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # fathom comes from the wheel
    env.update(
        FATHOM_KAGGLE_INPUT=str(inp),
        FATHOM_KAGGLE_WORKING=str(tmp_path / "working"),
        FATHOM_KAGGLE_TMP=str(tmp_path / "scratch"),
        OMP_NUM_THREADS="1",
    )
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from fathom import fileio
    from fathom.data.coco import open_competition, read_split
    from fathom.data.folds import assign_folds
    from fathom.synth.fathomnet import SynthConfig, generate

    work = tmp_path_factory.mktemp("e2e")
    comp = work / "comp"
    generate(comp, SynthConfig(n_train=60, n_eval=16, width=32, height=32), progress=False)
    folds = work / "folds" / "mlskf5.csv"
    fileio.write_csv(folds, assign_folds(read_split(open_competition(comp), "train"), 5, 0))
    runs = work / "runs"
    fathom(
        "train",
        "default",
        f"competition={comp}",
        f"folds={folds}",
        f"cache_dir={work / 'cache'}",
        "device=cpu",
        "epochs=1",
        "img_size=32",
        "--name",
        "tiny",
        "--runs",
        runs,
        "--no-progress",
        cwd=work,
    )
    fathom("oof", runs / "tiny", cwd=work)
    fathom(
        "tune",
        runs / "tiny",
        "--comp",
        comp,
        "--osd",
        "max_prob",
        "--out",
        runs / "tune.json",
        cwd=work,
    )
    fathom(
        "tune",
        runs / "tiny",
        "--prior",
        "--comp",
        comp,
        "--osd",
        "max_prob",
        "--out",
        runs / "tune-prior.json",
        cwd=work,
    )
    return work, comp, runs


def test_inference_kernel_runs_here_and_its_submission_validates(trained, tmp_path):
    work, comp, runs = trained
    inp = tmp_path / "input"
    shutil.copytree(comp, inp / COMPETITION, ignore=shutil.ignore_patterns("hidden"))
    weights_dataset.stage(
        [runs / "tiny"], "alice/fathom-weights", inp / "fathom-weights", tune=runs / "tune.json"
    )
    spec = kernels.KernelSpec(
        name="fathom-predict",
        owner="alice",
        kind="predict",
        weights_dataset="alice/fathom-weights",
        runs=("tiny",),
    )
    folder = kernels.build(spec, tmp_path / "kernels")
    result = subprocess.run(
        [sys.executable, str(folder / "fathom-predict.py")],
        env=kernel_env(tmp_path, inp),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"from {tmp_path / 'scratch' / 'site' / 'fathom'}" in result.stdout
    submission = tmp_path / "working" / "submission.csv"
    out = fathom(
        "validate", submission, "--eval", comp / "object_detection" / "eval.json", cwd=work
    )
    assert "valid (16 eval images)" in out
    assert (tmp_path / "working" / "submission-manifest.json").is_file()
    # Nothing was written into the read-only input.
    assert not (inp / "fathom-weights" / "runs" / "tiny" / "eval.npz").exists()


def test_inference_kernel_with_the_frequency_prior_in_the_ensemble(trained, tmp_path):
    import json

    work, comp, runs = trained
    inp = tmp_path / "input"
    shutil.copytree(comp, inp / COMPETITION, ignore=shutil.ignore_patterns("hidden"))
    tune = runs / "tune-prior.json"
    assert [e["kind"] for e in json.loads(tune.read_text())["experiments"]] == ["run", "prior"]
    weights_dataset.stage(
        [runs / "tiny"], "alice/fathom-weights", inp / "fathom-weights", tune=tune
    )
    (spec,) = kernels.specs("fathom-predict", owner="alice", tune=tune)  # `kernel build --tune`
    assert spec.runs == ("tiny",)
    folder = kernels.build(spec, tmp_path / "kernels")
    result = subprocess.run(
        [sys.executable, str(folder / "fathom-predict.py")],
        env=kernel_env(tmp_path, inp),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    submission = tmp_path / "working" / "submission.csv"
    out = fathom(
        "validate", submission, "--eval", comp / "object_detection" / "eval.json", cwd=work
    )
    assert "valid (16 eval images)" in out
    manifest = json.loads((tmp_path / "working" / "submission-manifest.json").read_text())
    prior = manifest["experiments"][-1]
    assert prior["kind"] == "prior" and prior["path"] is None


def test_inference_kernel_with_only_some_folds_and_a_full_fit(trained, tmp_path):
    import json

    work, comp, runs = trained
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(runs / "tiny", run)
    for k in (0, 2):  # folds never uploaded (or not finished)
        shutil.rmtree(run / f"fold{k}")
    fathom(
        "train",
        "default",
        f"competition={comp}",
        f"folds={work / 'folds' / 'mlskf5.csv'}",
        f"cache_dir={work / 'cache'}",
        "device=cpu",
        "epochs=1",
        "img_size=32",
        "--full-fit",
        "--name",
        "tiny",
        "--runs",
        tmp_path / "runs",
        "--no-progress",
        cwd=work,
    )
    inp = tmp_path / "input"
    shutil.copytree(comp, inp / COMPETITION, ignore=shutil.ignore_patterns("hidden"))
    manifest = weights_dataset.stage(
        [run], "alice/fathom-weights", inp / "fathom-weights", tune=runs / "tune.json"
    )
    shipped = sorted(f["path"] for f in manifest["files"] if f["path"].endswith(".pt"))
    assert shipped == [f"runs/tiny/{d}/best.pt" for d in ("fold1", "fold3", "fold4", "full")]
    (spec,) = kernels.specs("fathom-predict", owner="alice", tune=runs / "tune.json")
    folder = kernels.build(spec, tmp_path / "kernels")
    result = subprocess.run(
        [sys.executable, str(folder / "fathom-predict.py")],
        env=kernel_env(tmp_path, inp),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("fold1", "fold3", "fold4", "full"):
        assert f"{name}: predicted 16 images" in result.stdout
    out = fathom(
        "validate",
        tmp_path / "working" / "submission.csv",
        "--eval",
        comp / "object_detection" / "eval.json",
        cwd=work,
    )
    assert "valid (16 eval images)" in out
    used = json.loads((tmp_path / "working" / "submission-manifest.json").read_text())
    assert len(used["experiments"][0]["checkpoints"]) == 4


def test_training_kernel_for_one_fold_runs_here_with_images_from_another_dataset(
    trained, tmp_path, monkeypatch
):
    """...and from ImageNet weights with no internet: the dataset's pretrained/ folder
    (`fathom weights fetch`, here from a stand-in hub) is the kernel's HF cache."""
    import timm
    from hub_server import HubServer
    from safetensors.torch import save

    from fathom.engine.pretrained import export

    work, comp, _ = trained
    config = tmp_path / "r10.toml"
    config.write_text('model = "resnet10t"\npretrained = true\n')
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    weights = save(timm.create_model("resnet10t").state_dict())
    with HubServer({("timm/resnet10t.c3_in1k", "model.safetensors"): weights}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        export([str(config)], tmp_path / "pretrained")
    # the kernel has no internet and an empty cache of its own
    monkeypatch.setenv("HF_HOME", str(tmp_path / "kernel-hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    inp = tmp_path / "input"
    # Kaggle's newer mount layout, the archive without images, the images in a dataset of their own.
    shutil.copytree(
        comp, inp / "competitions" / COMPETITION, ignore=shutil.ignore_patterns("hidden", "images")
    )
    shutil.copytree(comp / "images", inp / "datasets" / "bob" / "fathom-images")
    weights_dataset.stage(
        [],
        "alice/fathom-weights",
        inp / "datasets" / "alice" / "fathom-weights",
        folds=[work / "folds" / "mlskf5.csv"],
        configs=[config],
        pretrained=tmp_path / "pretrained",
    )
    spec = kernels.KernelSpec(
        name="fathom-train",
        owner="alice",
        kind="train",
        weights_dataset="alice/fathom-weights",
        images_dataset="bob/fathom-images",
        config="r10.toml",
        fold=1,
        folds_file="mlskf5.csv",
        extra_args=("epochs=1", "img_size=32", "device=cpu"),
    )
    folder = kernels.build(spec, tmp_path / "kernels")
    result = subprocess.run(
        [sys.executable, str(folder / "fathom-train.py")],
        env=kernel_env(tmp_path, inp),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fathom kernel: pretrained weights from" in result.stdout
    fold = tmp_path / "working" / "runs" / "r10" / "fold1"
    assert sorted(p.name for p in fold.iterdir()) == [
        "bank.npz",  # the fold's kNN bank travels back with its weights
        "best.pt",
        "eval.npz",
        "history.csv",
        "oof.npz",
    ]
    assert len((fold / "history.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch
    assert (tmp_path / "working" / "runs" / "r10" / "config.json").is_file()
