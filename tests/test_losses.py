import numpy as np
import pytest
import torch

from fathom.config import TrainConfig
from fathom.engine.losses import balanced_class_weight, balanced_pos_weight, build_loss


def test_balanced_weights_follow_frequencies():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(
        balanced_pos_weight(targets).numpy(), [1.0, 3.0, 1.0]
    )  # 1/3 clipped up to 1
    np.testing.assert_allclose(
        balanced_class_weight(np.array([0, 0, 0, 1]), 3).numpy(), [4 / 6, 4 / 2, 1.0]
    )


@pytest.mark.parametrize(
    "task, loss",
    [("multilabel", n) for n in ("bce", "bce_balanced", "asl", "focal")]
    + [("singlelabel", n) for n in ("ce", "ce_balanced", "focal")],
)
def test_every_loss_prefers_right_answers_and_has_gradients(task, loss):
    cfg = TrainConfig(task=task, loss=loss)
    if task == "multilabel":
        y = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
        right, wrong = (y * 8 - 4), (4 - y * 8)
        fit_on = y.numpy()
    else:
        y = torch.tensor([2, 0])
        right = torch.nn.functional.one_hot(y, 4).float() * 8 - 4
        wrong = -right
        fit_on = np.array([2, 0, 0, 1])
    fn = build_loss(cfg, fit_on, 4)
    logits = wrong.clone().requires_grad_(True)
    bad = fn(logits, y)
    bad.backward()
    assert bad.ndim == 0 and torch.isfinite(bad) and logits.grad.abs().sum() > 0
    assert fn(right, y) < bad
