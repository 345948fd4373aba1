"""The machine a kernel asks for and what it does on it: NvidiaTeslaT4 (two T4s) by default and
always written, a P100 refused unless the user brings a torch for it, the start-up report and
its one-line stops, and a training kernel's two folds at once (one per GPU)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import timm  # noqa: F401  (imported with the real torch: some tests fake torch later)

from fathom.cli import main
from fathom.errors import FathomError
from fathom.kaggle import kernel_train, kernels, startup


def _build(tmp_path, *extra) -> tuple[int, dict]:
    argv = ["kernel", "build", "fathom-predict", "--run", "effb0", "--owner", "alice"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path), "--overwrite", *extra])
    meta = tmp_path / "fathom-predict" / "kernel-metadata.json"
    return exit_info.value.code, json.loads(meta.read_text()) if meta.is_file() else {}


def test_t4_is_the_default_and_always_written(tmp_path):
    code, meta = _build(tmp_path)
    assert code == 0 and meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True
    spec = kernels.KernelSpec(
        name="fathom-predict", owner="a", weights_dataset="a/fathom-weights", runs=("x",),
        machine_shape=None,
    )  # fmt: skip
    # a metadata file without machine_shape has been given a P100: never write one
    assert kernels.metadata(spec)["machine_shape"] == "NvidiaTeslaT4"
    code, meta = _build(tmp_path, "--cpu")
    assert code == 0 and meta["enable_gpu"] is False and "machine_shape" not in meta


def test_p100_is_refused_with_the_reason_unless_a_torch_build_is_named(tmp_path, capsys):
    code, _ = _build(tmp_path, "--machine-shape", "NvidiaTeslaP100")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "without Pascal (sm_60) kernels" in err and "NvidiaTeslaT4" in err
    assert not (tmp_path / "fathom-predict").exists()
    wheel = "torch-2.4.1+cu118-cp312-cp312-linux_x86_64.whl"
    code, meta = _build(tmp_path, "--machine-shape", "NvidiaTeslaP100", "--torch-build", wheel)
    assert code == 0 and meta["machine_shape"] == "NvidiaTeslaP100"
    script = (tmp_path / "fathom-predict" / "fathom-predict.py").read_text()
    assert f"'torch_build': {wheel!r}" in script
    with pytest.raises(FathomError, match="torch wheel's file name"):
        kernels.KernelSpec(
            name="fathom-p", owner="a", weights_dataset="a/fathom-weights", runs=("x",),
            machine_shape="NvidiaTeslaP100", torch_build="mytorch.zip",
        ).check()  # fmt: skip


class FakeCuda:
    """torch.cuda as a machine with these GPUs and this torch build reports it."""

    def __init__(self, gpus, arch_list):
        self._gpus, self._arch = gpus, arch_list

    def is_available(self):
        return bool(self._gpus)

    def device_count(self):
        return len(self._gpus)

    def get_device_name(self, i):
        return self._gpus[i][0]

    def get_device_capability(self, i):
        return self._gpus[i][1]

    def get_arch_list(self):
        return self._arch


KAGGLE_ARCHS = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


def _torch(gpus, arch=KAGGLE_ARCHS):
    return SimpleNamespace(
        __version__="2.10.0+cu128", version=SimpleNamespace(cuda="12.8"), cuda=FakeCuda(gpus, arch)
    )


def test_startup_reports_versions_and_both_t4s():
    t4 = ("Tesla T4", (7, 5))
    lines = startup.report(_torch([t4, t4]), compile_model=True)
    assert lines[0].startswith("Python ")
    assert lines[1] == f"torch 2.10.0+cu128 (CUDA 12.8; arch list {' '.join(KAGGLE_ARCHS)})"
    assert lines[2].startswith("timm ") and lines[3].startswith("fathom 0.1.0 from ")
    assert lines[4:] == ["GPU 0: Tesla T4 (sm_75)", "GPU 1: Tesla T4 (sm_75)"]
    assert startup.report(_torch([]))[4:] == ["GPU: none"]


def test_startup_stops_on_a_gpu_this_torch_has_no_kernels_for():
    with pytest.raises(FathomError, match=r"GPU 0 Tesla P100-PCIE-16GB is sm_60, and this torch"):
        startup.report(_torch([("Tesla P100-PCIE-16GB", (6, 0))]))
    # a torch with sm_60 kernels runs it, and PTX runs newer GPUs than it was built for
    assert startup.report(_torch([("Tesla P100", (6, 0))], ["sm_60", "sm_70"]))
    assert startup.arch_supported((8, 9), ["sm_80"]) and startup.arch_supported(
        (9, 0), ["compute_80"]
    )
    assert not startup.arch_supported((7, 5), ["sm_80", "sm_90a"])


def test_startup_stops_when_compile_meets_a_gpu_below_sm70():
    old = _torch([("Tesla P100", (6, 0))], ["sm_60", "sm_70"])
    with pytest.raises(FathomError, match="compile=true needs a GPU of compute capability 7.0"):
        startup.report(old, compile_model=True)
    assert startup.report(old, compile_model=False)


def test_startup_reads_compile_from_the_training_config(tmp_path, monkeypatch, capsys):
    config = tmp_path / "r10.toml"
    config.write_text("model = 'resnet10t'\n")
    assert startup.wants_compile(["--config", str(config), "compile=true"]) is True
    assert startup.wants_compile(["--config", str(config)]) is False
    assert startup.wants_compile([]) is False
    monkeypatch.setitem(sys.modules, "torch", _torch([("Tesla P100", (6, 0))]))
    assert startup.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fathom kernel: GPU 0 Tesla P100 is sm_60")


class FakeProc:
    def __init__(self, lines, code=0):
        self.stdout = io.StringIO("".join(lines))
        self._code = code

    def wait(self):
        return self._code


def test_a_training_kernel_trains_its_two_folds_at_once_one_per_gpu(tmp_path):
    import threading

    started = []
    # both folds must be running at the same time: each launch waits for the other
    both_running = threading.Barrier(2, timeout=60)

    def launch(argv, env):
        fold = argv[argv.index("--fold") + 1]
        started.append((fold, env["CUDA_VISIBLE_DEVICES"], argv))
        both_running.wait()
        return FakeProc([f"fold{fold} epoch 1 loss 0.5\n", "best epoch 1\n"])

    said = []
    config = tmp_path / "configs" / "effb0.toml"
    config.parent.mkdir()
    config.write_text("model = 'efficientnet_b0'\n")
    run_dir = kernel_train.train_folds(
        str(config), ["folds=/in/folds/a.csv"], "effb0", tmp_path / "runs", [2, 3],
        n_gpus=2, launch=launch, say=said.append,
    )  # fmt: skip
    assert run_dir == tmp_path / "runs" / "effb0"
    assert sorted((fold, gpu) for fold, gpu, _ in started) == [("2", "0"), ("3", "1")]
    argv = started[0][2]
    assert argv[1:5] == ["-m", "fathom", "train", str(config)]
    assert "folds=/in/folds/a.csv" in argv and argv[argv.index("--name") + 1] == "effb0"
    assert said[0] == "fathom kernel: folds 2, 3 at once on GPUs 0,1"


@pytest.mark.parametrize("n_gpus", [0, 1])
def test_a_training_kernel_with_one_gpu_or_none_trains_its_folds_in_turn(
    tmp_path, monkeypatch, n_gpus
):
    import fathom.data
    import fathom.engine.train

    calls = []
    monkeypatch.setattr(fathom.data, "read_data", lambda cfg: "data")
    monkeypatch.setattr(
        fathom.engine.train,
        "train_run",
        lambda cfg, data, runs, folds, progress: calls.append((cfg.name, folds)) or Path(runs),
    )

    def no_launch(argv, env):
        raise AssertionError("one GPU or none: no process per GPU")

    config = tmp_path / "effb0.toml"
    config.write_text("epochs = 1\n")
    said = []
    kernel_train.train_folds(
        str(config), [], "effb0", tmp_path / "runs", [0, 1], n_gpus=n_gpus, launch=no_launch,
        say=said.append,
    )  # fmt: skip
    assert calls == [("effb0", [0, 1])]
    assert "in turn on" in said[0]


def test_a_bad_config_stops_a_training_kernel_before_any_fold(tmp_path):
    def no_launch(argv, env):
        raise AssertionError("no fold may start")

    (tmp_path / "bad.toml").write_text("epochs = 'many'\n")
    with pytest.raises(FathomError, match="bad.toml"):
        kernel_train.train_folds(
            str(tmp_path / "bad.toml"), [], "bad", tmp_path, [0, 1], n_gpus=2, launch=no_launch
        )


def test_train_folds_refuses_bad_fold_lists():
    assert kernel_train.parse_folds("0,1") == [0, 1]
    for bad in ("", "0,0", "a", "-1"):
        with pytest.raises(FathomError, match="--folds"):
            kernel_train.parse_folds(bad)
