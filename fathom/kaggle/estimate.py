"""How long a kernel will run, from the runs' own measured speed, against Kaggle's time limit.

Kaggle stops a GPU kernel at its session's run-time limit (a code competition's submission
kernel too), with nothing kept. `kernel build` therefore estimates each kernel's run time from
what the runs measured while training (history.csv: seconds and images per second per epoch):

- a training kernel takes about as long as the slowest of its folds took to train here (its
  two folds run at once, one per T4);
- a predict kernel runs every checkpoint of every run over the eval set: images x checkpoints x
  passes (2 with flip TTA, 1 + N*N more with --tiles N) at the run's training speed times
  FORWARD_SPEEDUP (a training step is a forward and a backward pass, about three forwards).

The speeds are this machine's, not a T4's: the estimate says so, and scales by --speed-ratio
when the user knows how the two compare.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DEFAULT_TIME_LIMIT_HOURS = 12.0  # Kaggle's GPU session limit as its notebooks page states it
FORWARD_SPEEDUP = 3.0


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: nothing measured to go on
    basis: str  # what it was computed from, for the user

    def line(self, kernel: str, limit_hours: float) -> str:
        if self.seconds is None:
            return f"{kernel}: no run-time estimate ({self.basis})"
        text = f"{kernel}: about {_hours(self.seconds)} ({self.basis})"
        if self.seconds > limit_hours * 3600:
            text += (
                f"; WARNING: over the {limit_hours:g} h limit (--time-limit): Kaggle stops the "
                "kernel and keeps nothing"
            )
        return text


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, math.ceil(seconds / 60))} min"
    return f"{seconds / 3600:.1f} h"


def _histories(run: Path) -> dict[str, pd.DataFrame]:
    found = {}
    for path in sorted(run.glob("fold*/history.csv")) + sorted(run.glob("full/history.csv")):
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue  # a damaged history: no measurement, not an error in `kernel build`
        if {"seconds", "images_per_s"} <= set(table.columns) and len(table):
            found[path.parent.name] = table
    return found


def fold_seconds(run: Path) -> dict[str, float]:
    """Each fold's measured training time (the sum of its epochs' seconds)."""
    return {name: float(t["seconds"].sum()) for name, t in _histories(run).items()}


def images_per_second(run: Path) -> float | None:
    """The run's median training speed over every epoch of every fold."""
    rows = [t["images_per_s"] for t in _histories(run).values()]
    speeds = pd.concat(rows) if rows else pd.Series(dtype=float)
    speeds = speeds[speeds > 0]
    return float(speeds.median()) if len(speeds) else None


def train_estimate(run: Path | None, folds: tuple[int, ...], speed_ratio: float = 1.0) -> Estimate:
    """A training kernel of `folds` (at once, one per GPU): the slowest fold's measured time;
    a fold not trained here counts as the mean of those that were."""
    if run is None or not run.is_dir():
        return Estimate(None, f"no run {run} here to measure" if run else "no run here")
    measured = fold_seconds(run)
    if not measured:
        return Estimate(None, f"{run} has no history.csv with seconds")
    mean = sum(measured.values()) / len(measured)
    slowest = max(measured.get(f"fold{k}", mean) for k in folds)
    return Estimate(slowest / speed_ratio, f"{run}'s folds as trained here")


def _passes(run: Path, predict_args: tuple[str, ...]) -> int:
    args = list(predict_args)
    tta = "--tta" in args
    if "--tta" not in args and "--no-tta" not in args:
        try:  # the run's own choice, as `fathom predict` makes it
            tta = bool(json.loads((run / "config.json").read_text()).get("tta", False))
        except (OSError, ValueError, AttributeError):
            tta = False
    tiles = 0
    for i, arg in enumerate(args):
        if arg.startswith("--tiles="):
            tiles = int(arg.split("=", 1)[1] or 0)
        elif arg == "--tiles" and i + 1 < len(args):
            tiles = int(args[i + 1])
    return (2 if tta else 1) * (1 + tiles * tiles)


def predict_estimate(
    runs: list[Path], n_images: int | None, predict_args: tuple[str, ...] = (), speed_ratio=1.0
) -> Estimate:
    """A predict kernel over `n_images` eval images with every checkpoint of `runs`."""
    if not n_images:
        return Estimate(None, "eval set size unknown")
    total = 0.0
    for run in runs:
        speed = images_per_second(run) if run.is_dir() else None
        if speed is None:
            return Estimate(None, f"no measured images/s in {run}")
        checkpoints = len(list(run.glob("fold*/best.pt"))) + (run / "full" / "best.pt").is_file()
        passes = n_images * max(checkpoints, 1) * _passes(run, predict_args)
        total += passes / (speed * FORWARD_SPEEDUP)
    basis = f"{n_images} eval images, the runs' training images/s here x {FORWARD_SPEEDUP:g}"
    return Estimate(total / speed_ratio, basis)


def eval_size(competition: str | Path | None) -> int | None:
    """The number of eval images of a competition folder here, or None when unreadable."""
    if not competition:
        return None
    try:
        from fathom.data import open_dataset

        return len(open_dataset(competition).split("eval", require_images=False))
    except Exception:  # any fault: no estimate, never a failed `kernel build`
        return None


def for_kernel(spec, tune: str | Path | None = None, speed_ratio: float = 1.0) -> Estimate:
    """The estimate of a `fathom.kaggle.kernels.KernelSpec`: its runs found here through the
    tuning file's paths (or runs/<name>), a training kernel's through runs/<config name>."""
    if spec.kind == "prior":
        return Estimate(60.0, "the frequency prior: a minute")
    if spec.kind == "train":
        return train_estimate(Path("runs") / Path(spec.config).stem, spec.train_folds, speed_ratio)
    paths, competition = {}, None
    if tune:
        try:
            from fathom.runs import read_tuning, run_members

            tuning = read_tuning(tune, need=("experiments",))
            paths = {e["name"]: Path(e["path"]) for e in run_members(tuning) if e.get("path")}
            competition = tuning.get("competition")
        except Exception:  # the tuning was checked when the spec was made; no estimate then
            return Estimate(None, f"{tune} unreadable")
    runs = [paths.get(name, Path("runs") / name) for name in spec.runs]
    return predict_estimate(runs, eval_size(competition), spec.predict_args, speed_ratio)
