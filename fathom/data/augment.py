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
would) and uploads them in one copy, so no step waits on a host-to-device transfer. A key that
is off draws nothing: a run that leaves the colour and mixing keys off repeats, number for
number, the runs made before they existed.

Colour (`contrast`, `saturation`, `hue`) and the automatic policy (`auto_augment = "trivial"`,
TrivialAugmentWide's colour half: one op with a random signed magnitude per image; the geometric
ops are the affine's) run per image in the same batched way, by hand for the same reason:
torchvision's v2 `ColorJitter` and `TrivialAugmentWide` draw one parameter set per call (and
from the global RNG). The policy computes each op for the whole batch and keeps it where an image
picked it (`torch.where`), so a GPU step never syncs on which images picked what.

Mixup and CutMix (`Preprocess.mix`) mix each image with a partner from its own batch after the
augmentation, and mix the targets alike: multi-label targets as lam * y + (1 - lam) * y_partner,
single-label ones as one-hot vectors the same way (lam: Mixup's blend weight, CutMix's kept area
share). By hand, although timm's `Mixup` mixes dense multi-label targets too (`multi_label=True`):
it draws from NumPy's global RNG, outside the epoch's generator that makes a resumed run repeat;
its per-image mode loops over the batch in Python, one small op per image; and an image's
partner is always its mirror in the reversed batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The automatic policy's ops (TrivialAugmentWide's colour ops, plus a small hue shift), by the
# index AugParams.op holds. Each takes a signed magnitude m in [-1, 1]: brightness, saturation,
# contrast and sharpness scale by 1 + 0.99 m (TrivialAugmentWide's widest), hue shifts by
# POLICY_HUE m of the circle, posterize keeps 8 - round(6 |m|) bits, solarize inverts pixels
# above 1 - |m|, autocontrast stretches each channel to [0, 1].
POLICY_OPS = (
    "identity",
    "brightness",
    "saturation",
    "contrast",
    "sharpness",
    "hue",
    "posterize",
    "solarize",
    "autocontrast",
)
# hue is not one of TrivialAugment's ops: a small shift, for the water's colour cast, never one
# that turns a red organism green
POLICY_HUE = 0.1


@dataclass(frozen=True)
class AugParams:
    """Random augmentation of N images, one row per image: affine matrices (N, 2, 3), then one
    tensor per augmentation that is on (None when it is off). The mixing rows index partners
    within their own batch, so slices of an epoch's parameters are cut at batch boundaries."""

    theta: torch.Tensor
    gain: torch.Tensor | None = None  # brightness factors (N,)
    contrast: torch.Tensor | None = None  # factors (N,)
    saturation: torch.Tensor | None = None  # factors (N,)
    hue: torch.Tensor | None = None  # shifts, fractions of the hue circle (N,)
    op: torch.Tensor | None = None  # auto_augment: index into POLICY_OPS (N,)
    magnitude: torch.Tensor | None = None  # auto_augment: signed magnitude in [-1, 1] (N,)
    partner: torch.Tensor | None = None  # mixing: the image's partner in its batch (N,)
    blend: torch.Tensor | None = None  # mixing: Mixup's weight of the image itself (N,); 1 = none
    box: torch.Tensor | None = None  # mixing: CutMix's pasted box y0, y1, x0, x1 in pixels (N, 4)

    def _map(self, fn) -> AugParams:
        return AugParams(
            **{
                f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                for f in dataclasses.fields(self)
            }
        )

    def __getitem__(self, part: slice) -> AugParams:
        return self._map(lambda t: t[part])

    def to(self, device: torch.device) -> AugParams:
        from fathom.data.loader import to_device

        return self._map(lambda t: to_device(t, device))


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
        parts = [self._draw_batch(n, generator) for n in sizes]
        if not parts:
            return AugParams(torch.zeros(0, 2, 3))
        return AugParams(**{key: torch.cat([p[key] for p in parts]) for key in parts[0]})

    def _draw_batch(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch's parameters, in a fixed order; a key that is off draws nothing, so the
        numbers of the keys before it stay those of a run without it."""
        cfg = self.cfg

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=generator)

        out = {"theta": random_affine(n, cfg, generator)}
        if self._brightness:
            out["gain"] = uniform(*cfg.brightness)
        if cfg.contrast > 0:
            out["contrast"] = uniform(1 - cfg.contrast, 1 + cfg.contrast)
        if cfg.saturation > 0:
            out["saturation"] = uniform(1 - cfg.saturation, 1 + cfg.saturation)
        if cfg.hue > 0:
            out["hue"] = uniform(-cfg.hue, cfg.hue)
        if cfg.auto_augment == "trivial":
            out["op"] = torch.randint(len(POLICY_OPS), (n,), generator=generator)
            out["magnitude"] = uniform(-1.0, 1.0)
        if self.mixing:
            out |= self._draw_mix(n, generator)
        return out

    @property
    def _brightness(self) -> bool:
        lo, hi = self.cfg.brightness
        return hi > lo or lo != 1.0

    @property
    def mixing(self) -> bool:
        """Whether `mix` has work: Mixup or CutMix is on (targets then come out as floats)."""
        return self.cfg.mixup > 0 or self.cfg.cutmix > 0

    def _draw_mix(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Partners, Mixup weights and CutMix boxes of one batch: whether it mixes (mix_prob),
        which of the two (50/50 when both are on), a permutation, then per image lam ~
        Beta(alpha, alpha) by its inverse CDF (torch has no Beta sampler that takes a
        generator) and, for CutMix, the box's centre."""
        from scipy.special import betaincinv

        cfg, side = self.cfg, self.size
        mixed = float(torch.rand(1, generator=generator)) < cfg.mix_prob
        cutmix = cfg.cutmix > 0 and (
            cfg.mixup == 0 or float(torch.rand(1, generator=generator)) < 0.5
        )
        partner = torch.randperm(n, generator=generator)
        alpha = cfg.cutmix if cutmix else cfg.mixup
        u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
        lam = torch.from_numpy(betaincinv(alpha, alpha, u)).float()
        blend, box = torch.ones(n), torch.zeros(n, 4, dtype=torch.long)
        if cutmix:
            # a box of (1 - lam) of the area around a uniform centre, clipped to the frame
            # (timm's rand_bbox); `mix` counts the kept share from the clipped box
            cut = (torch.sqrt(1 - lam) * side).long()
            centre = (torch.rand(n, 2, generator=generator) * side).long()
            start = centre - cut.view(n, 1) // 2
            lo, hi = start.clamp(0, side), (start + cut.view(n, 1)).clamp(0, side)
            box = torch.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], dim=1)
        else:
            blend = lam
        if not mixed:  # drawn all the same: the draws that follow do not depend on the coin
            partner, blend, box = (
                torch.arange(n),
                torch.ones(n),
                torch.zeros(n, 4, dtype=torch.long),
            )
        return {"partner": partner, "blend": blend, "box": box}

    def train(self, images: torch.Tensor, params: AugParams | torch.Generator) -> torch.Tensor:
        """Augmented batch: with `params` for its images (a slice of an epoch's `draw`, best
        already on the device), or drawn here from a generator."""
        x = self._to_float(images)
        n = x.shape[0]
        if isinstance(params, torch.Generator):
            params = self.draw([n], params)
        theta = _on(params.theta, x)
        grid = F.affine_grid(theta, [n, 3, self.size, self.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if params.gain is not None:
            gain = _on(params.gain, x)
            x = (x * gain.view(n, 1, 1, 1)).clamp_(0.0, 1.0)
        if params.contrast is not None:
            x = adjust_contrast(x, _per_image(params.contrast, x))
        if params.saturation is not None:
            x = adjust_saturation(x, _per_image(params.saturation, x))
        if params.hue is not None:
            x = shift_hue(x, _per_image(params.hue, x))
        if params.op is not None:
            x = trivial_augment(x, _per_image(params.op, x), _per_image(params.magnitude, x))
        return self._finish(x)

    def mix(
        self, x: torch.Tensor, y: torch.Tensor, params: AugParams, n_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup / CutMix of an augmented batch `x` (B, 3, S, S) with its `params` (the slice
        `train` used) and its targets: (B, C) 0/1 (multi-label) or (B,) class indices, which
        come back as (B, C) floats: lam * y + (1 - lam) * y_partner, lam being the share of the
        image that is its own (Mixup's blend weight, CutMix's kept area)."""
        if y.dim() == 1:
            y = F.one_hot(y.long(), n_classes)
        y = y.float()
        partner = _on(params.partner, x)
        blend = _per_image(params.blend, x)
        box = _on(params.box, x)
        pixels = torch.arange(self.size, device=x.device)
        rows = (pixels >= box[:, 0:1]) & (pixels < box[:, 1:2])  # (B, S)
        cols = (pixels >= box[:, 2:3]) & (pixels < box[:, 3:4])
        inside = rows[:, None, :, None] & cols[:, None, None, :]  # (B, 1, S, S)
        other = x[partner]
        x = torch.where(inside, other, blend * x + (1 - blend) * other)
        kept = 1 - (rows.sum(1) * cols.sum(1)).float() / self.size**2
        lam = (blend.view(-1) * kept).view(-1, 1)
        y = lam * y + (1 - lam) * y[partner]
        return x.contiguous(memory_format=self.memory_format), y


def _on(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`t` on x's device. The training loop uploads an epoch's parameters at once, so in a
    step this is no call at all; a copy here would be a host-to-device copy per step."""
    return t if t.device == x.device else t.to(x.device, non_blocking=True)


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) values as (B, 1, 1, 1) on x's device, to broadcast over each image."""
    return _on(values, x).view(-1, 1, 1, 1)


# Colour ops on float (B, 3, H, W) batches in [0, 1], each with per-image (B, 1, 1, 1) factors;
# the formulas of torchvision's functional ones, which take one factor per call.


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).to(x.dtype)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor 1 keeps x, 0 gives `other`, above 1 pushes away from it."""
    return (factor * x + (1 - factor) * other).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grey(x).mean(dim=(-2, -1), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _grey(x), factor)


def adjust_sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with a 3x3 smoothed copy (the border stays as it is, as in PIL and torchvision)."""
    b, c, h, w = x.shape
    # made on the device (a fill, not a copy of host numbers that the step would wait for):
    # 1 everywhere, 5 in the centre, over 13
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    smooth = F.conv2d(x.reshape(b * c, 1, h, w), (kernel / 13).view(1, 1, 3, 3))
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth.view(b, c, h - 2, w - 2)
    return _blend(x, degenerate, factor)


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by `shift` (fractions of the circle) through HSV and back."""
    top, _ = x.max(dim=1, keepdim=True)
    chroma = top - x.min(dim=1, keepdim=True)[0]
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        top == r, (g - b) / safe, torch.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = (hue / 6 + shift) % 1.0
    # HSV -> RGB: channel n (5, 3, 1 for r, g, b) = V - V S clamp(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6
    n = torch.arange(5.0, 0.0, -2.0, device=x.device)  # 5, 3, 1, made on the device
    k = (n.view(1, 3, 1, 1) + 6 * hue) % 6
    return top - chroma * torch.minimum(k, 4 - k).clamp(0.0, 1.0)


def trivial_augment(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """One POLICY_OPS op per image (`op`, `magnitude`: (B, 1, 1, 1)); every op is computed for
    the whole batch and kept where an image picked it, so nothing waits on which did."""
    factor = 1 + 0.99 * magnitude
    strength = magnitude.abs()
    ops = {
        "brightness": lambda: (x * factor).clamp(0.0, 1.0),
        "saturation": lambda: adjust_saturation(x, factor),
        "contrast": lambda: adjust_contrast(x, factor),
        "sharpness": lambda: adjust_sharpness(x, factor),
        "hue": lambda: shift_hue(x, POLICY_HUE * magnitude),
        "posterize": lambda: posterize(x, 8 - torch.round(6 * strength)),
        "solarize": lambda: torch.where(x >= 1 - strength, 1 - x, x),
        "autocontrast": lambda: autocontrast(x),
    }
    out = x
    for index, name in enumerate(POLICY_OPS):
        if name != "identity":
            out = torch.where(op == index, ops[name](), out)
    return out


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top `bits` bits of each 8-bit value."""
    step = 2.0 ** (8 - bits)
    return torch.floor(torch.floor(x * 255) / step) * step / 255


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to [0, 1] (a flat channel stays as it is)."""
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 1 / torch.where(flat, 1, hi - lo))
    return ((x - torch.where(flat, 0, lo)) * scale).clamp(0.0, 1.0)


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
