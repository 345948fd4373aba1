"""Wheels of the pure-Python packages a kernel may lack, or find too old, on Kaggle's image.

A kernel runs on Kaggle's Python image with its internet off, and installs fathom's own wheel
with `--no-deps`: whatever fathom imports must already be there, at a version fathom works
with. From fathom's import graph, the packages a kernel's commands (predict, submit, train,
prior) reach are:

- torch, torchvision, numpy, pandas, scikit-learn (and its threadpoolctl), pillow, matplotlib,
  tqdm, PyYAML and safetensors: on the image, and binary (compiled for one Python and
  platform) except tqdm and threadpoolctl.
  A kernel never replaces them: a second torch or numpy beside the image's breaks every
  package built against the image's, and safetensors is a Rust extension, not `py3-none-any`.
- timm and huggingface_hub: pure Python, on the image, at whatever version the image's month
  brings (fathom needs timm's `AsymmetricLossMultiLabel`, `resolve_model_data_config`, and the
  hub's cache layout);
- iterative-stratification: pure Python and absent from the image (only `fathom folds` imports
  it, so a kernel does not need it; it ships so that a kernel can make folds all the same).
- pyvips + pyvips-binary (the cache's PNG decoder): not shipped. pyvips 3.x is only an sdist on
  PyPI (its last wheel is 2.1.0, years older than pyvips-binary), and pyvips-binary
  is a platform wheel (cp37-abi3-manylinux_2_28_x86_64), so neither fits the `py3-none-any`
  download below; a kernel's cache decodes PNGs with PIL instead (fathom.data.cache falls back).

So `upload-weights` ships those three as `py3-none-any` wheels, at the versions installed here
(the versions fathom is tested with), fetched once into a cache by `pip download
--only-binary=:all: --no-deps --python-version 3.12 --platform any`. The kernel installs one
only where the image lacks the package or holds it below fathom's declared floor
(fathom.kaggle.kernel_template.install_fathom), into its own site folder ahead of the image's.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from fathom.errors import FathomError

RUNTIME_WHEELS = ("iterative-stratification", "timm", "huggingface_hub")
# the image's own, never shipped nor installed by a kernel (the kernel template refuses them too)
NEVER_SHIPPED = frozenset(
    {"torch", "torchvision", "numpy", "pandas", "scikit-learn", "pillow", "safetensors"}
)
KAGGLE_PYTHON = "3.12"  # Kaggle's image (/work/shared/KAGGLE.md): what the wheels must fit


def canonical(dist: str) -> str:
    """A distribution name as pip compares them (PEP 503): `Huggingface_Hub` -> huggingface-hub."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def cache_dir() -> Path:
    """Where downloaded wheels are kept: FATHOM_WHEEL_CACHE, else ~/.cache/fathom/wheels."""
    env = os.environ.get("FATHOM_WHEEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fathom" / "wheels"


def _cached(dist: str, version: str, cache: Path) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    for path in sorted(cache.glob("*.whl")):
        name, _, rest = path.name.partition("-")
        if (
            name.lower() == stem
            and rest.startswith(f"{version}-")
            and rest.endswith("-none-any.whl")
        ):
            return path
    return None


def pip_download(dist: str, version: str, dest: Path) -> None:
    """One `py3-none-any` wheel of dist==version from the package index into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps", "-q"]
    cmd += ["--only-binary=:all:", "--python-version", KAGGLE_PYTHON, "--platform", "any"]
    result = subprocess.run(cmd + ["-d", str(dest)], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FathomError(
            f"downloading the {dist} {version} wheel for kernels failed ({last[0]}); "
            f"put {dist}-{version}-py3-none-any.whl in {dest} (FATHOM_WHEEL_CACHE)"
        )


def runtime_wheels(cache: Path | None = None, download=pip_download) -> list[Path]:
    """The RUNTIME_WHEELS at the versions installed here, from the cache, downloaded into it
    when missing; FathomError, one line, when one cannot be had or is not pure Python."""
    cache = cache or cache_dir()
    wheels = []
    for dist in RUNTIME_WHEELS:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise FathomError(
                f"{dist} is not installed here; kernels get it at the version fathom runs "
                f"with (pip install {dist})"
            ) from None
        found = _cached(dist, version, cache)
        if found is None:
            cache.mkdir(parents=True, exist_ok=True)
            download(dist, version, cache)
            found = _cached(dist, version, cache)
        if found is None:
            raise FathomError(
                f"no pure-Python (py3-none-any) wheel of {dist} {version} in {cache}; "
                "a kernel cannot install a binary one into Kaggle's image"
            )
        wheels.append(found)
    return wheels
