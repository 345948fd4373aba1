"""A kernel's first step: say what it runs with, and stop in one line when the GPU cannot work.

Kaggle's default image ships a torch built without Pascal (sm_60) kernels: on a P100,
`torch.cuda.is_available()` is True and the first CUDA operation fails with "no kernel image is
available" (kaggle-cli issue 1151, docker-python issue 1546), an hour into a kernel rather than
at its start. torch.compile's GPU backend (Triton) needs compute capability 7.0 or more.
So the kernel script runs `python -m fathom.kaggle.startup [--config FILE key=value ...]` once
fathom is installed: it prints Python, torch (and its CUDA arch list), timm, fathom and the GPUs
it sees, then refuses a GPU whose architecture torch has no kernels for, and `compile=true`
below sm_70.
"""

from __future__ import annotations

import platform
import sys
from types import ModuleType

from fathom.errors import FathomError

COMPILE_MIN_CAPABILITY = (7, 0)  # Triton's floor


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a GPU of `capability` runs a torch built for `arch_list` (e.g. ['sm_75',
    'sm_80', 'compute_90']): a cubin for the same major version and a lower or equal minor, or
    PTX (`compute_XY`) for a capability at or below the GPU's, which the driver compiles."""
    major, minor = capability
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit() or len(number) < 2:
            continue  # e.g. sm_90a: architecture-specific, no help to another GPU
        built = (int(number[:-1]), int(number[-1]))
        if kind == "sm" and built[0] == major and built[1] <= minor:
            return True
        if kind == "compute" and built <= (major, minor):
            return True
    return False


def gpus(torch: ModuleType) -> list[tuple[int, str, tuple[int, int]]]:
    """(index, name, compute capability) of each GPU torch sees."""
    if not torch.cuda.is_available():
        return []
    return [
        (i, torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
        for i in range(torch.cuda.device_count())
    ]


def report(torch: ModuleType, compile_model: bool = False) -> list[str]:
    """The lines a kernel prints at start; FathomError (one line) when a GPU cannot run."""
    import timm

    import fathom

    arch_list = list(torch.cuda.get_arch_list()) if torch.cuda.is_available() else []
    cuda = getattr(torch.version, "cuda", None) or "none"
    lines = [
        f"Python {platform.python_version()}",
        f"torch {torch.__version__} (CUDA {cuda}; arch list {' '.join(arch_list) or 'none'})",
        f"timm {timm.__version__}",
        f"fathom {fathom.__version__} from {fathom.__file__.rsplit('/', 1)[0]}",
    ]
    seen = gpus(torch)
    lines += [f"GPU {i}: {name} (sm_{cap[0]}{cap[1]})" for i, name, cap in seen] or ["GPU: none"]
    for i, name, cap in seen:
        if arch_list and not arch_supported(cap, arch_list):
            raise FathomError(
                f"GPU {i} {name} is sm_{cap[0]}{cap[1]}, and this torch {torch.__version__} has "
                f"kernels only for {' '.join(arch_list)}: choose --machine-shape NvidiaTeslaT4, "
                "or a torch build for this GPU (kernel build --torch-build)"
            )
        if compile_model and cap < COMPILE_MIN_CAPABILITY:
            raise FathomError(
                f"compile=true needs a GPU of compute capability 7.0 or more (Triton); GPU {i} "
                f"{name} is sm_{cap[0]}{cap[1]}: set compile=false"
            )
    return lines


def wants_compile(argv: list[str]) -> bool:
    """compile= of `--config FILE key=value ...` (a training kernel's config), else False."""
    if not argv:
        return False
    if argv[0] != "--config" or len(argv) < 2:
        raise FathomError("usage: python -m fathom.kaggle.startup [--config FILE key=value ...]")
    from fathom.config import load_config

    return bool(load_config(argv[1], argv[2:]).compile)


def main(argv: list[str] | None = None) -> int:
    """`[--gpus-file FILE] [--config FILE key=value ...]`: the report; FILE gets the number of
    GPUs seen (the kernel script, which imports no torch, spreads its steps over them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    gpus_file = None
    if argv[:1] == ["--gpus-file"] and len(argv) > 1:
        gpus_file, argv = argv[1], argv[2:]
    try:
        import torch

        for line in report(torch, wants_compile(argv)):
            print(f"fathom kernel: {line}", flush=True)
        if gpus_file:
            with open(gpus_file, "w", encoding="utf-8") as out:
                out.write(f"{len(gpus(torch))}\n")
    except FathomError as exc:
        print(f"fathom kernel: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
