"""Losses by name: BCE, class-balanced BCE, timm's asymmetric loss and focal loss (multi-label);
cross-entropy, class-balanced cross-entropy and focal (single-label)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from timm.loss import AsymmetricLossMultiLabel
from torch import nn
from torchvision.ops import sigmoid_focal_loss

MAX_POS_WEIGHT = 50.0  # a category seen once in 5,000 images would otherwise weigh 5,000


def balanced_pos_weight(targets: np.ndarray) -> torch.Tensor:
    """Per-category positive weight n_negative / n_positive (1 where a category has no positive),
    clipped to MAX_POS_WEIGHT."""
    pos = targets.sum(axis=0)
    neg = len(targets) - pos
    weight = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(weight, 1.0, MAX_POS_WEIGHT), dtype=torch.float32)


def balanced_class_weight(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """scikit-learn's 'balanced' weights n / (k * count), over the k classes present (1 for absent ones)."""
    from fathom.data.imagefolder import (
        balanced_class_weights,  # the one compute_class_weight wrapper
    )

    return torch.from_numpy(balanced_class_weights(labels, n_classes))


class SigmoidFocalLoss(nn.Module):
    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # alpha=-1: no fixed positive/negative weighting; the focusing term does the work
        return sigmoid_focal_loss(
            logits.float(), targets.float(), alpha=-1, gamma=self.gamma, reduction="mean"
        )


class SoftmaxFocalLoss(nn.Module):
    """Focal loss over a softmax: cross-entropy scaled by (1 - p_true) ** gamma (no library has it)."""

    def __init__(self, gamma: float, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """`labels`: (N,) class indices, or (N, C) class probabilities (Mixup's, CutMix's
        soft targets), where each class's term weighs by its probability."""
        logp_all = F.log_softmax(logits.float(), dim=1)
        if labels.dim() == 2:
            probs = labels.float()
            terms = -((1 - logp_all.exp()) ** self.gamma) * logp_all * probs
            if self.weight is not None:
                terms = terms * self.weight
            return terms.sum(dim=1).mean()
        logp = logp_all.gather(1, labels.view(-1, 1)).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.weight is not None:
            loss = loss * self.weight[labels]
        return loss.mean()


class FloatBCE(nn.BCEWithLogitsLoss):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.float(), targets.float())


class FloatCE(nn.CrossEntropyLoss):
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.float(), labels)


class BatchMeanASL(nn.Module):
    """timm's ASL from before its `reduction=` argument, which returns the batch's sum and
    computes in the logits' dtype: here in float32, divided by the batch (`batchmean`)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.inner(logits.float(), targets.float()) / logits.shape[0]


def asymmetric_loss(gamma_neg: float, gamma_pos: float, clip: float) -> nn.Module:
    """timm's AsymmetricLossMultiLabel averaged over the batch, on timm releases with and
    without `reduction=` (Kaggle's image may hold an older timm than fathom's own)."""
    import inspect

    kwargs = dict(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)
    if "reduction" in inspect.signature(AsymmetricLossMultiLabel.__init__).parameters:
        return AsymmetricLossMultiLabel(**kwargs, reduction="batchmean")
    return BatchMeanASL(AsymmetricLossMultiLabel(**kwargs))


def build_loss(cfg, targets: np.ndarray, n_classes: int) -> nn.Module:
    """The loss `cfg.loss` names. `targets`: the training rows' (N, C) 0/1 matrix (multilabel)
    or (N,) class indices (singlelabel), for the balanced weights. Losses compute in float32."""
    name = cfg.loss
    if name == "bce":
        return FloatBCE()
    if name == "bce_balanced":
        return FloatBCE(pos_weight=balanced_pos_weight(targets))
    if name == "asl":
        return asymmetric_loss(cfg.asl_gamma_neg, cfg.asl_gamma_pos, cfg.asl_clip)
    if name == "focal" and cfg.task == "multilabel":
        return SigmoidFocalLoss(cfg.focal_gamma)
    if name == "focal":
        return SoftmaxFocalLoss(cfg.focal_gamma)
    if name == "ce":
        return FloatCE(label_smoothing=cfg.label_smoothing)
    if name == "ce_balanced":
        return FloatCE(
            weight=balanced_class_weight(targets, n_classes), label_smoothing=cfg.label_smoothing
        )
    raise ValueError(f"unknown loss {name!r}")  # TrainConfig.check() rules this out


def supercat_loss(super_logits: torch.Tensor, super_targets: torch.Tensor) -> torch.Tensor:
    """The auxiliary supercategory term: plain BCE over the supercategory outputs (in float32).

    Plain, whatever the main loss: 20 supercategories have many positives each, so the term
    needs no rebalancing, and it stays comparable across main losses."""
    return F.binary_cross_entropy_with_logits(super_logits.float(), super_targets.float())


def weighted_rows_loss(
    loss_fn: nn.Module, logits: torch.Tensor, targets: torch.Tensor, n_first: int, weight: float
) -> torch.Tensor:
    """`loss_fn` over a batch whose first `n_first` rows weigh 1 and the rest `weight`
    (pseudo-labelled rows come last in their batch).

    Every loss here is a mean over rows (times columns), so the two parts' losses scaled by
    their row counts give (sum of labelled rows' losses + weight x pseudo rows') / rows, the
    plain loss when weight = 1, without touching the loss classes."""
    n = len(targets)
    if n_first == n:
        return loss_fn(logits, targets)
    rest = loss_fn(logits[n_first:], targets[n_first:]) * (weight * (n - n_first))
    if n_first == 0:
        return rest / n
    return (loss_fn(logits[:n_first], targets[:n_first]) * n_first + rest) / n
