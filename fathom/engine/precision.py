"""Mixed precision for every GPU: which autocast dtype a config's `amp` means on a device, and
the gradient scaler fp16 needs.

`amp = auto` picks bf16 on GPUs that run it natively (compute capability 8.0 and up: A100,
H100, L4, RTX 30xx+) and fp16 elsewhere (T4, P100, V100: Kaggle's GPUs), where bf16 is
emulated and slow. fp16's narrow range needs loss scaling (`torch.amp.GradScaler`); bf16 has
float32's range and needs none. On a CPU `auto` is float32, so CPU runs (the demo, the tests)
keep their results; `bf16` and `fp16` are taken as asked on any device.
"""

from __future__ import annotations

import contextlib

import torch

from fathom.errors import FathomError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
NATIVE_BF16 = (8, 0)  # Ampere
COMPILE_MIN = (7, 0)  # Volta: the oldest GPU torch.compile's Triton kernels run on


def autocast_dtype(
    amp: str, device: torch.device, capability: tuple[int, int] | None = None
) -> torch.dtype | None:
    """The autocast dtype of `amp` on `device` (None: float32). `capability` stands in for the
    GPU's compute capability (tests; default: asked of the device)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp != "auto":
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    if device.type != "cuda":
        return None
    capability = capability or torch.cuda.get_device_capability(device)
    return torch.bfloat16 if tuple(capability) >= NATIVE_BF16 else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on `device`; a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that scales only under fp16 (disabled, its calls pass straight through)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "float32")


def configure_cuda(device: torch.device) -> None:
    """The GPU settings a training run (and scripts/bench_train.py, which must measure what
    training runs) uses: cuDNN's benchmark mode, which times the convolution algorithms once
    per input shape and keeps the fastest (a training step's shapes are fixed: incomplete
    batches are dropped), and TF32 matmuls (float32 range, 10-bit mantissa: what the float32
    parts of a step lose to it is noise next to bf16/fp16 autocast). A CPU is left alone."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    # the legacy API, on purpose: torch refuses a mix of the two, and torch.compile and timm
    # read this one
    torch.set_float32_matmul_precision("high")


def check_gpu(amp: str, compile_: bool, device: torch.device) -> None:
    """Refuse, before the first step, what this GPU cannot run: torch.compile below sm_70
    (Triton fails deep inside the first step) and bf16 below sm_80 (emulated: slow, and not
    what `auto` would pick). Each in one line naming the GPU and its compute capability."""
    if device.type != "cuda":
        return
    capability = tuple(torch.cuda.get_device_capability(device))
    gpu = (
        f"{torch.cuda.get_device_name(device)} (compute capability {capability[0]}.{capability[1]})"
    )
    if compile_ and capability < COMPILE_MIN:
        raise FathomError(
            f"compile = true: {gpu} is below the 7.0 that torch.compile needs; set compile = false"
        )
    if amp == "bf16" and capability < NATIVE_BF16:
        raise FathomError(
            f"amp = bf16: {gpu} has no native bfloat16 (8.0 and up: A100, L4, H100); "
            "set amp = auto (fp16 on this GPU) or amp = off"
        )


@contextlib.contextmanager
def gpu_errors(where: str, device: torch.device | str, batch: str | int):
    """CUDA's out-of-memory and "no kernel image" errors as one line saying what to change;
    other errors pass through. `batch`: the batch size (training), or the option that sets it."""
    try:
        yield
    except torch.OutOfMemoryError:
        lower = f"batch_size (now {batch})" if isinstance(batch, int) else batch
        raise FathomError(
            f"{where}: the GPU ran out of memory ({_gpu_name(device)}): lower {lower}, set "
            "data_on_device = no (the image cache then stays in host memory) or a smaller "
            "cache_size / img_size"
        ) from None
    except RuntimeError as exc:
        if "no kernel image" not in str(exc):
            raise
        raise FathomError(
            f"{where}: this PyTorch build ({torch.__version__}) has no CUDA kernels for "
            f"{_gpu_name(device)}: install a torch build that supports this GPU, or set "
            "device = cpu"
        ) from None


def _gpu_name(device: torch.device | str) -> str:
    try:
        device = torch.device("cuda" if device == "auto" else device)
        if device.type != "cuda":
            return str(device)
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    except Exception:  # the error being reported may have left CUDA unable to answer
        return str(device)
