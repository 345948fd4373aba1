"""How a CPU run spends its cores, and where its time goes.

`run_folds` trains several folds (of one run or of several) at once on a CPU: one process per
core, each with one torch thread. Why not one process with a thread per core: the small
models a CPU run trains (the demo's CNN at 32-48 px, batch 16) have convolutions too small
to split between threads. On this project's 2-core machine a second intra-op thread did not
shorten a training step's best time at all, and while anything else ran its two threads
waited for each other: a step's median time went from 94 ms to 440 ms. Two folds side by
side keep both cores busy with useful work whatever else runs.

`StageClock` times the stages of a long command (the demo) in wall seconds and CPU seconds
(this process's user+sys, plus that of its finished child processes: fold workers, cache
workers). On a machine shared with other work the wall time says little; the CPU time is
what a stage costs, and CPU/wall says how many cores it kept busy.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS, Windows


def _cpu_seconds() -> float:
    """User+sys CPU seconds of this process and of its waited-for children."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


@dataclass
class StageClock:
    """Wall and CPU seconds per named stage, in the order the stages ran."""

    rows: list[dict] = field(default_factory=list)
    _open: tuple[str, float, float] | None = None

    def begin(self, name: str) -> None:
        """Start stage `name`, ending the one in progress."""
        self.end()
        self._open = (name, time.perf_counter(), _cpu_seconds())

    def end(self) -> None:
        if self._open is None:
            return
        name, wall, cpu = self._open
        self._open = None
        self.rows.append(
            {"stage": name, "wall_s": time.perf_counter() - wall, "cpu_s": _cpu_seconds() - cpu}
        )

    @contextlib.contextmanager
    def stage(self, name: str):
        self.begin(name)
        try:
            yield
        finally:
            self.end()

    def total(self) -> dict:
        return {
            "stage": "total",
            "wall_s": sum(r["wall_s"] for r in self.rows),
            "cpu_s": sum(r["cpu_s"] for r in self.rows),
        }

    def table(self) -> str:
        """A fixed-width table: stage, wall s, CPU s, and CPU/wall (cores kept busy)."""
        width = max([len(r["stage"]) for r in self.rows] + [5])
        lines = [f"{'stage':<{width}} {'wall s':>7} {'CPU s':>7} {'cores':>5}"]
        for r in [*self.rows, self.total()]:
            cores = r["cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else 0.0
            lines.append(
                f"{r['stage']:<{width}} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} {cores:>5.2f}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class FoldJob:
    """`fathom train CONFIG OVERRIDES... --name NAME --runs RUNS --fold FOLD`, its output to
    `log`; `cost` orders the jobs (longest first, so the last to start are the short ones)."""

    config: str
    overrides: tuple[str, ...]
    name: str
    runs: str
    fold: int | None
    log: str
    cost: float = 1.0


def train_job(job: FoldJob) -> dict:
    """Train one fold in this process, its printed output appended to job.log; returns its
    wall and CPU seconds."""
    from fathom.config import load_config
    from fathom.data import read_data
    from fathom.engine.train import train_run

    wall, cpu = time.perf_counter(), time.process_time()
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(job.log, "a", buffering=1) as out,  # line by line: `tail -f` follows it
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        cfg = load_config(job.config, list(job.overrides), name=job.name)
        train_run(cfg, read_data(cfg), job.runs, [job.fold], progress=False)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_folds(
    jobs: Sequence[FoldJob],
    workers: int | None = None,
    done: Callable[[FoldJob, dict], None] | None = None,
) -> list[dict]:
    """Train `jobs` on `workers` processes (default: one per core), one torch thread each,
    longest first; `done(job, seconds)` is called in this process as each one ends. Returns
    each job's seconds, in the order of `jobs`. A job's error is raised here once the jobs
    already running have ended (a FathomError stays one line)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    workers = max(1, min(workers or cpu_count(), len(jobs)))
    results: list[dict] = [{} for _ in jobs]
    # spawn, not fork: a forked child of a process whose OpenMP pool already ran can hang
    with ProcessPoolExecutor(workers, get_context("spawn"), initializer=_one_thread) as pool:
        futures = {pool.submit(train_job, jobs[i]): i for i in order}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if done is not None:
                    done(jobs[i], results[i])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # nothing new starts after an error
            raise
    return results
