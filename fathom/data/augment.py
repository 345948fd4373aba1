"""Batched image preprocessing and augmentation as tensor ops, on whatever device the batch is on.

Why by hand: torchvision's v2 transforms draw one set of random parameters per call, so
per-sample augmentation of a batch means one Python call per image, which on a GPU costs more
than the training step. Here one `affine_grid` + `grid_sample` applies a different random
affine (rotation, shear, zoom, shift, flips) to every image of the batch at once, so the
whole cache can live on the GPU and the loader leaves the critical path. On CPU the same
code runs unchanged.

Random parameters are drawn on the CPU from an explicit `torch.Generator`, so an epoch's
augmentation is the same on any device and a resumed run repeats it. The training loop draws a
whole epoch's at once (`Preprocess.draw`, batch by batch in the same order as one call per batch
would) and uploads them in one copy, so no step waits on a host-to-device transfer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugParams:
    """Random augmentation of N images: affine matrices (N, 2, 3) and brightness gains (N,)."""

    theta: torch.Tensor
    gain: torch.Tensor | None

    def __getitem__(self, part: slice) -> AugParams:
        return AugParams(self.theta[part], None if self.gain is None else self.gain[part])

    def to(self, device: torch.device) -> AugParams:
        from fathom.data.loader import to_device

        return AugParams(
            to_device(self.theta, device),
            None if self.gain is None else to_device(self.gain, device),
        )


class Preprocess:
    """uint8 (B, H, W, 3) batches -> normalised float (B, 3, S, S), with or without augmentation."""

    def __init__(
        self, cfg, size: int, mean, std, device: torch.device, channels_last: bool = False
    ):
        self.cfg = cfg
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def _to_float(self, images: torch.Tensor) -> torch.Tensor:
        # NHWC uint8 -> NCHW float in [0, 1]; the permute is free (a view, channels_last strides)
        return images.permute(0, 3, 1, 2).float().div_(255.0)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def eval(self, images: torch.Tensor, hflip: bool = False) -> torch.Tensor:
        x = self._to_float(images)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        if hflip:
            x = x.flip(-1)
        return self._finish(x)

    def draw(self, sizes: list[int], generator: torch.Generator) -> AugParams:
        """The random parameters of batches of `sizes` images, concatenated (on the CPU):
        the same numbers as drawing batch by batch, since they are drawn in that order."""
        thetas, gains = [], []
        for n in sizes:
            thetas.append(random_affine(n, self.cfg, generator))
            if self._brightness:
                lo, hi = self.cfg.brightness
                gains.append(lo + (hi - lo) * torch.rand(n, generator=generator))
        theta = torch.cat(thetas) if thetas else torch.zeros(0, 2, 3)
        return AugParams(theta, torch.cat(gains) if gains else None)

    @property
    def _brightness(self) -> bool:
        lo, hi = self.cfg.brightness
        return hi > lo or lo != 1.0

    def train(self, images: torch.Tensor, params: AugParams | torch.Generator) -> torch.Tensor:
        """Augmented batch: with `params` for its images (a slice of an epoch's `draw`, best
        already on the device), or drawn here from a generator."""
        x = self._to_float(images)
        n = x.shape[0]
        if isinstance(params, torch.Generator):
            params = self.draw([n], params)
        theta = params.theta.to(x.device, non_blocking=True)  # no copy when already there
        grid = F.affine_grid(theta, [n, 3, self.size, self.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if params.gain is not None:
            gain = params.gain.to(x.device, non_blocking=True)
            x = (x * gain.view(n, 1, 1, 1)).clamp_(0.0, 1.0)
        return self._finish(x)


def random_affine(n: int, cfg, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) matrices mapping output to input coordinates (affine_grid's convention).

    Per sample: rotation in [-rotate, rotate] degrees, shear in [-shear, shear] degrees, zoom
    in cfg.zoom (> 1 magnifies), shift in [-shift, shift] of the side, flips with their
    probabilities.
    """

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180
    shear = uniform(-cfg.shear, cfg.shear) * math.pi / 180
    zoom = uniform(*cfg.zoom)
    # normalised coordinates span 2 per side, so a shift of s sides is 2 s units
    tx, ty = uniform(-2 * cfg.shift, 2 * cfg.shift), uniform(-2 * cfg.shift, 2 * cfg.shift)
    fx = torch.where(torch.rand(n, generator=generator) < cfg.hflip, -1.0, 1.0).double()
    fy = torch.where(torch.rand(n, generator=generator) < cfg.vflip, -1.0, 1.0).double()
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # A = R(angle) @ Shear @ diag(fx, fy) / zoom
    a00, a01 = cos * fx, (cos * tan - sin) * fy
    a10, a11 = sin * fx, (sin * tan + cos) * fy
    theta = torch.stack(
        [torch.stack([a00, a01, tx], dim=1), torch.stack([a10, a11, ty], dim=1)], dim=1
    )
    theta[:, :, :2] /= zoom.view(n, 1, 1)
    return theta.float()
