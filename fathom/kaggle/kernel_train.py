"""A training kernel's folds: one per GPU at once on Kaggle's T4 x2, in turn on one GPU or none.

`machine_shape: NvidiaTeslaT4` is two T4s (Kaggle does not offer one alone), so a training
kernel is built for two folds and runs `fathom kernel train-folds CONFIG ... --folds 0,1`:
with two GPUs that is fathom.engine.multigpu's `fathom train --gpus 0,1` (one ordinary,
resumable `fathom train --fold K` process per GPU); with one GPU or none, the folds train in
turn in this process, as `fathom train --fold K` would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fathom.errors import FathomError


def parse_folds(text: str) -> list[int]:
    """'0,1' -> [0, 1]; FathomError on anything but distinct fold numbers."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise FathomError(f"--folds {text!r}: want distinct fold numbers separated by commas")
    return [int(p) for p in parts]


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def train_folds(
    config: str,
    overrides: list[str],
    name: str,
    runs_dir: str | Path,
    folds: list[int],
    n_gpus: int | None = None,
    launch: Callable | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Train `folds` of `config`: at once, one per GPU, when there are two GPUs or more."""
    from fathom.config import load_config
    from fathom.engine import multigpu

    cfg = load_config(config, overrides, name=name)  # a bad config fails here, before any fold
    n_gpus = visible_gpus() if n_gpus is None else n_gpus
    if n_gpus >= 2 and len(folds) >= 2:
        gpus = ",".join(str(i) for i in range(min(n_gpus, len(folds))))
        say(f"fathom kernel: folds {', '.join(map(str, folds))} at once on GPUs {gpus}")
        extra = {"launch": launch} if launch is not None else {}
        return multigpu.train_config_on_gpus(
            config, overrides, name, runs_dir, folds, gpus, say=say, count=lambda: n_gpus, **extra
        )  # the GPUs counted above: the same count multigpu checks the numbers against
    from fathom.data import read_data
    from fathom.engine.train import train_run

    where = "one GPU" if n_gpus == 1 else "the CPU (no GPU)"
    say(f"fathom kernel: folds {', '.join(map(str, folds))} in turn on {where}")
    return train_run(cfg, read_data(cfg), runs_dir, folds, progress=False)
