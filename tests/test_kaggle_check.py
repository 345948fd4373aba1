"""`make kaggle-check`'s own logic (fast), and the check itself (slow: it needs .kaggle-venv/,
which `make kaggle-check` builds once; skipped without it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "kaggle_check", ROOT / "scripts" / "kaggle_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kaggle_like_environment_pins_the_declared_floors_and_lacks_iterstrat(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\ndependencies = ["torch>=2.4", "timm>=1.0.12", "iterative-stratification>=0.1.7",'
        ' "kaggle", "numpy>=2.0"]\n'
    )
    assert _script().floor_pins(pyproject) == [
        "torch==2.4.*", "timm==1.0.12", "kaggle", "numpy==2.0.*",
    ]  # fmt: skip
    pins = _script().floor_pins()  # the real pyproject: every binary library has a floor
    for name in ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "pillow"):
        assert any(p.startswith(f"{name}==") for p in pins), name
    assert not any(p.startswith("iterative") for p in pins)


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / ".kaggle-venv" / ".fathom-floors").is_file(),
    reason="needs .kaggle-venv/ (run `make kaggle-check` once to build it)",
)
def test_kaggle_check_passes():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kaggle_check.py"), "--venv", ".kaggle-venv"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "byte-identical" in result.stdout and "kaggle-check: passed" in result.stdout
