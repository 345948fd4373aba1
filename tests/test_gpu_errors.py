# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Issue 18.6-18.8 and 22: what a GPU cannot run, CUDA's own failures and a diverging run are
one line each, saying what to change, never "a bug in fathom". The GPU is stood in for by
patching torch.cuda's questions; the divergence runs for real on the CPU."""

import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

import fathom.engine.train as train_module
from fathom.data import read_data
from fathom.data.loader import fold_rows, train_batches
from fathom.engine import distributed, precision
from fathom.engine.train import train_fold
from fathom.errors import FathomError

CUDA = torch.device("cuda", 0)


@pytest.fixture
def gpu(monkeypatch):
    """A stand-in GPU whose name and compute capability a test sets."""
    card = {"name": "Tesla T4", "capability": (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: card["capability"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: card["name"])
    return card


@pytest.mark.parametrize(
    "name, capability, amp, compile_, refused",
    [
        ("Tesla P100-PCIE-16GB", (6, 0), "auto", True, r"compile = true: Tesla P100.*6\.0"),
        ("Tesla T4", (7, 5), "bf16", False, r"amp = bf16: Tesla T4 \(compute capability 7\.5\)"),
        ("Tesla T4", (7, 5), "auto", True, None),  # fp16 and compile: both run on a T4
        ("Tesla V100", (7, 0), "fp16", True, None),
        ("NVIDIA A100", (8, 0), "bf16", True, None),
    ],
)
def test_what_the_gpu_cannot_run_is_refused_in_one_line(
    gpu, name, capability, amp, compile_, refused
):
    gpu.update(name=name, capability=capability)
    if refused is None:
        precision.check_gpu(amp, compile_, CUDA)
        return
    with pytest.raises(FathomError, match=refused) as err:
        precision.check_gpu(amp, compile_, CUDA)
    assert "\n" not in str(err.value)


def test_a_cpu_is_never_asked_for_a_capability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: 1 / 0)
    precision.check_gpu("bf16", True, torch.device("cpu"))


def test_device_cuda_without_a_gpu_is_one_line(monkeypatch, tiny_comp, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = tiny_config(tiny_comp, tmp_path, device="cuda")
    with pytest.raises(FathomError, match=r"device = cuda: PyTorch sees no CUDA GPU"):
        train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_gpu_number_beyond_the_visible_ones_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(FathomError, match=r"cuda:3: PyTorch sees 2 GPU\(s\) here .*VISIBLE"):
        distributed.pick_device("cuda:3", distributed.Dist())


@pytest.mark.parametrize(
    "error, said",
    [
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            r"fold0: the GPU ran out of memory \(cpu\): lower batch_size \(now 8\), set "
            r"data_on_device = no .* smaller cache_size",
        ),
        (
            RuntimeError("CUDA error: no kernel image is available for execution on the device"),
            r"fold0: this PyTorch build .* has no CUDA kernels for cpu: install a torch build",
        ),
    ],
    ids=["oom", "no-kernel-image"],
)
def test_cuda_failures_in_a_step_are_one_line_saying_what_to_change(
    tiny_comp, tmp_path, monkeypatch, error, said
):
    def step(*args, **kwargs):
        raise error

    monkeypatch.setattr(train_module, "train_one_epoch", step)
    cfg = tiny_config(tiny_comp, tmp_path)
    with pytest.raises(FathomError, match=said):
        train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)


def test_other_errors_of_a_step_pass_through(tiny_comp, tmp_path, monkeypatch):
    def step(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(train_module, "train_one_epoch", step)
    cfg = tiny_config(tiny_comp, tmp_path)
    with pytest.raises(RuntimeError, match="something else"):
        train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)


def _nan_after(monkeypatch, steps_ok: int):
    """Models whose logits turn NaN after `steps_ok` training forwards."""
    real = train_module.build_model
    calls = {"n": 0}

    def build(*args, **kwargs):
        model = real(*args, **kwargs)

        def hook(module, inputs, out):
            if module.training:
                calls["n"] += 1
                if calls["n"] > steps_ok:
                    out["logits"] = out["logits"] * float("nan")
            return out

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_module, "build_model", build)


def test_a_run_whose_loss_stays_nan_stops_naming_epoch_and_step(tiny_comp, tmp_path, monkeypatch):
    # two steps an epoch (23 training rows in batches of 8); NaN from epoch 2's second step on,
    # so the third NaN step in a row is epoch 3's second
    monkeypatch.setattr(train_module, "NONFINITE_STEPS", 3)
    _nan_after(monkeypatch, 3)
    cfg = tiny_config(tiny_comp, tmp_path, epochs=5)
    data = read_data(cfg)
    assert len(train_batches(len(fold_rows(data, 0)[0]), cfg.batch_size, cfg.seed, 0)) == 2
    with pytest.raises(
        FathomError, match=r"fold0 epoch 2, step 2: the loss was not finite for 3 steps in a row"
    ):
        train_fold(cfg, data, tmp_path / "runs", 0, progress=False)
    last = torch.load(tmp_path / "runs" / "fold0" / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 2  # the epoch it was found in is not saved
    assert not (tmp_path / "runs" / "fold0" / "eval.npz").exists()


def test_one_nan_step_does_not_stop_a_run(tiny_comp, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "NONFINITE_STEPS", 2)
    real = train_module.batch_loss
    calls = {"n": 0}

    def one_bad(*args):
        calls["n"] += 1
        loss, category = real(*args)
        return (loss * float("nan"), category) if calls["n"] == 2 else (loss, category)

    monkeypatch.setattr(train_module, "batch_loss", one_bad)
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1, amp="fp16")  # the scaler skips that step
    train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    assert (tmp_path / "runs" / "fold0" / "eval.npz").exists()


def test_fp16_whose_every_step_overflows_stops(tiny_comp, tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "NONFINITE_STEPS", 2)
    real = train_module.build_model

    def build(*args, **kwargs):  # a finite loss whose gradients overflow fp16 at every step
        model = real(*args, **kwargs)
        for p in model.parameters():
            p.register_hook(lambda g: g * float("inf"))
        return model

    monkeypatch.setattr(train_module, "build_model", build)
    cfg = tiny_config(tiny_comp, tmp_path, epochs=2, amp="fp16")
    with pytest.raises(FathomError, match=r"fold0 epoch 1: fp16 gradients overflowed at every"):
        train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)


def test_cudnn_benchmark_and_tf32_are_set_for_a_gpu_only(monkeypatch):
    """Issue 18.11: the engine sets them (scripts/bench_train.py calls the same function)."""
    calls = []
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    precision.configure_cuda(torch.device("cpu"))
    assert calls == [] and torch.backends.cudnn.benchmark is False  # a CPU run is unchanged
    precision.configure_cuda(CUDA)
    assert calls == ["high"] and torch.backends.cudnn.benchmark is True


def test_train_fold_configures_its_device(tiny_comp, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(precision, "configure_cuda", seen.append)
    monkeypatch.setattr(train_module, "train_one_epoch", lambda *a: 1 / 0)
    cfg = tiny_config(tiny_comp, tmp_path)
    with pytest.raises(ZeroDivisionError):
        train_fold(cfg, read_data(cfg), tmp_path / "runs", 0, progress=False)
    assert seen == [torch.device("cpu")]


def test_fathom_predict_out_of_memory_is_one_line(run_cli, monkeypatch, tmp_path):
    import fathom.engine.predict as predict_module

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(predict_module, "predict_run", oom)
    code, out, err = run_cli("predict", tmp_path / "runs" / "r", "--comp", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "the GPU ran out of memory" in err and "lower --batch-size" in err
    assert "bug in fathom" not in err
