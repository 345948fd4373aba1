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

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
NATIVE_BF16 = (8, 0)  # Ampere


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
