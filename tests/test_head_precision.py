"""Issue 18.3: the heads run in float32 under autocast, and what is stored (logits, features,
the kNN bank) is float32: bf16 logits round low scores to equal values, which then tie in a
top-20 ranking. Autocast on a CPU with bfloat16 is the same code path as on a GPU."""

import numpy as np
import pytest
import torch

from fathom.config import TrainConfig
from fathom.engine.models import build_model
from fathom.knn import write_bank


@pytest.mark.parametrize("model_name", ["fathom_cnn", "resnet10t"])
def test_heads_return_float32_under_bf16_autocast(model_name):
    cfg = TrainConfig(model=model_name, pretrained=False, supercat_weight=1.0)
    torch.manual_seed(0)
    model = build_model(cfg, 290, supercat_of=[i % 20 for i in range(290)], n_super=20).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        # the backbone itself still runs in bf16 (the speed of mixed precision is kept)
        inner = model.backbone.forward_features(x)
    assert inner.dtype == torch.bfloat16
    assert {k: v.dtype for k, v in out.items()} == {
        "features": torch.float32,
        "logits": torch.float32,
        "super_logits": torch.float32,
    }
    # the logits are the float32 head of the features, not a rounded copy
    head = model.backbone.get_classifier()
    with torch.no_grad():
        torch.testing.assert_close(out["logits"], head(out["features"]), rtol=0, atol=0)
    # and 290 float32 logits do not tie the way bf16 ones do
    ranks = out["logits"].numpy()
    assert all(len(np.unique(row)) == 290 for row in ranks)


def test_a_knn_bank_keeps_float32_features(tmp_path):
    feats = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32) * 1e-3 + 1.0
    path = write_bank(tmp_path / "bank.npz", list("abcde"), feats, np.eye(5, 3), [1, 2, 3])
    with np.load(path) as bank:
        assert bank["features"].dtype == np.float32
        np.testing.assert_array_equal(bank["features"], feats)
