"""Multi-GPU through torchrun (DDP): the process group from torchrun's environment variables.

`torchrun --nproc_per_node N -m fathom train ...` starts N copies of the same command; each
reads RANK, LOCAL_RANK and WORLD_SIZE, trains on its slice of every batch, and rank 0 alone
writes files. Without torchrun, world size is 1 and nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from fathom.errors import FathomError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Dist:
    return Dist(
        rank=int(os.environ.get("RANK", 0)),
        world=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def pick_device(preference: str, ctx: Dist) -> torch.device:
    """The device a config's `device` names (auto: the GPU when there is one); a GPU that is
    not there is a one-line FathomError, not a crash in the first step."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(preference)
    except RuntimeError:
        raise FathomError(
            f"device = {preference}: not a device (auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise FathomError(
                f"device = {preference}: PyTorch sees no CUDA GPU here (no GPU or driver, "
                "CUDA_VISIBLE_DEVICES empty, or a CPU-only torch build); set device = auto or cpu"
            )
        if device.index >= count:
            raise FathomError(
                f"device = {preference}: PyTorch sees {count} GPU(s) here (cuda:0 to "
                f"cuda:{count - 1}{', after CUDA_VISIBLE_DEVICES' if _masked() else ''})"
            )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _masked() -> bool:
    return os.environ.get("CUDA_VISIBLE_DEVICES") is not None


def init(ctx: Dist, device: torch.device) -> None:
    """Join torchrun's process group (nccl on GPU, gloo on CPU), once per process."""
    if ctx.active and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def barrier(ctx: Dist) -> None:
    if ctx.active and dist.is_initialized():
        dist.barrier()


def gather_rows(ctx: Dist, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate every rank's rows in rank order (each rank holds a contiguous shard)."""
    if not ctx.active:
        return arrays
    parts: list = [None] * ctx.world
    dist.all_gather_object(parts, arrays)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(arrays)))


def all_agree(ctx: Dist, value: float) -> float:
    """Rank 0's value on every rank (so every rank makes the same early-stopping decision)."""
    if not ctx.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Leave the process group (torchrun warns about one left open)."""
    if dist.is_initialized():
        dist.destroy_process_group()
