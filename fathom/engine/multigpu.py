"""Folds on several GPUs at once: `fathom train CONFIG --gpus 0,1,2,3`.

One process per GPU (`python -m fathom train CONFIG --fold K device=cuda` with
CUDA_VISIBLE_DEVICES set to that GPU alone), each taking the next fold when its last one ends.
A GPU number counts the GPUs this process sees, as `cuda:N` would: under an existing
CUDA_VISIBLE_DEVICES=4,5, `--gpus 1` is GPU 5. Every child is the ordinary
command, so each fold is resumable on its own and a rerun skips finished folds. A child's
output goes to runs/<exp>/logs/fold<k>.log; its epoch lines, tagged with the GPU, are the
progress shown here. Independent folds scale with no communication at all; torchrun (DDP)
remains the way to spread one large fold over several GPUs.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from fathom.errors import FathomError

# what CUDA_VISIBLE_DEVICES accepts: a device number, a GPU's UUID (`nvidia-smi -L`), or a MIG
# instance's (MIG-<uuid>, or the older MIG-GPU-<uuid>/<gi>/<ci>)
_GPU_ID = re.compile(r"\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+")


def parse_gpus(text: str) -> list[str]:
    """'0,1,3' -> ['0', '1', '3']; FathomError on anything but distinct GPU numbers or ids."""
    gpus = [g.strip() for g in str(text).split(",") if g.strip()]
    if not gpus or not all(_GPU_ID.fullmatch(g) for g in gpus) or len(set(gpus)) != len(gpus):
        raise FathomError(
            f"--gpus {text!r}: want distinct GPU numbers (or GPU-/MIG- ids, as nvidia-smi -L "
            "shows them) separated by commas, e.g. 0,1"
        )
    return gpus


def visible_gpus(gpus: list[str], environ: dict[str, str], count: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each child: a number is a position among the GPUs
    this process sees (so under an existing CUDA_VISIBLE_DEVICES=4,5, `--gpus 0` is GPU 4, as
    `cuda:0` would be), a GPU- or MIG- id is passed as it is. FathomError when CUDA sees no
    GPU here or a number is not among the `count` it sees."""
    mask = environ.get("CUDA_VISIBLE_DEVICES")
    seen = f" (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else ""
    if count < 1:
        raise FathomError(
            f"--gpus {','.join(gpus)}: PyTorch sees no CUDA GPU here{seen} (no GPU or driver, or "
            "a CPU-only torch build); drop --gpus to train on the CPU"
        )
    entries = [e.strip() for e in mask.split(",")] if mask is not None else None
    out = []
    for g in gpus:
        if not g.isdigit():
            out.append(g)
            continue
        if int(g) >= count:
            raise FathomError(
                f"--gpus {','.join(gpus)}: there is no GPU {g}; PyTorch sees {count} "
                f"(0 to {count - 1}){seen}"
            )
        out.append(entries[int(g)] if entries is not None else g)
    return out


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _popen(argv: list[str], env: dict[str, str]):
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )


def train_on_gpus(
    fold_argv: Callable[[int], list[str]],
    folds: list[int],
    gpus: list[str],
    log_dir: Path,
    launch: Callable = _popen,
    say: Callable[[str], None] = print,
) -> None:
    """Run `fold_argv(k)` for every fold, at most one per GPU at a time; FathomError naming the
    folds whose process failed (the others still run to the end)."""
    todo: queue.Queue[int] = queue.Queue()
    for k in folds:
        todo.put(k)
    failed: dict[int, int] = {}
    lock = threading.Lock()

    def tell(line: str) -> None:
        with lock:
            say(line)

    def worker(gpu: str) -> None:
        while True:
            try:
                k = todo.get_nowait()
            except queue.Empty:
                return
            log = log_dir / f"fold{k}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "PYTHONUNBUFFERED": "1"}
            tell(f"[gpu {gpu}] fold{k}: started (log {log})")
            with open(log, "a", encoding="utf-8") as out:
                proc = launch(fold_argv(k), env)
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    # one line per epoch and per finished fold: the fold's progress
                    if line.startswith(f"fold{k} epoch") or "best epoch" in line:
                        tell(f"[gpu {gpu}] {line.rstrip()}")
                code = proc.wait()
            if code != 0:
                with lock:
                    failed[k] = code
                tell(f"[gpu {gpu}] fold{k}: failed (exit {code}); see {log}")

    threads = [threading.Thread(target=worker, args=(g,), daemon=True) for g in gpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        named = ", ".join(f"fold{k} (exit {c})" for k, c in sorted(failed.items()))
        raise FathomError(f"{named} failed; logs in {log_dir}; the same command resumes them")


def train_config_on_gpus(
    config: str,
    overrides: list[str],
    name: str,
    runs_dir: str | Path,
    folds: list[int],
    gpus: str,
    launch: Callable = _popen,
    say: Callable[[str], None] = print,
    device: str = "auto",
    count: Callable[[], int] = _cuda_count,
) -> Path:
    """`fathom train config overrides --fold k` for each fold, spread over `gpus`. Each child
    sees its one GPU as cuda:0, so it is told `device=cuda` (a config's `cuda:N`, or `auto`
    that would fall back to the CPU, would not mean that GPU there)."""
    run_dir = Path(runs_dir) / name
    if None in folds:
        raise FathomError("--gpus trains folds; a full fit (--full-fit) runs on one GPU")
    if not device.startswith(("cuda", "auto")):
        raise FathomError(f"--gpus with device = {device}: drop --gpus, or set device = cuda")
    masks = visible_gpus(parse_gpus(gpus), dict(os.environ), count())
    overrides = [*overrides, "device=cuda"]

    def fold_argv(k: int) -> list[str]:
        return [sys.executable, "-m", "fathom", "train", config, *overrides]+[
            "--fold", str(k), "--name", name, "--runs", str(runs_dir), "--no-progress"
        ]  # fmt: skip

    train_on_gpus(fold_argv, folds, masks, run_dir / "logs", launch, say)
    return run_dir
