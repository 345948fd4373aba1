# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
import pytest
import timm
import torch
from engine_fixtures import one_thread  # noqa: F401

from fathom.config import TrainConfig
from fathom.engine.models import (
    FathomCNN,
    backbone_stages,
    build_model,
    create_backbone,
    data_config,
    set_trainable,
)


def test_fathom_cnn_is_a_timm_model_with_the_baseline_architecture():
    model = timm.create_model("fathom_cnn", num_classes=5)
    assert isinstance(model, FathomCNN)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 4
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [
        512,
        256,
        5,
    ]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize("name", ["fathom_cnn", "resnet10t", "densenet121", "efficientnet_b0"])
def test_backbones_give_features_and_logits_and_freeze_by_stage(name):
    model = build_model(TrainConfig(model=name, drop_rate=0.1, drop_path_rate=0.0), 7).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out["logits"].shape == (2, 7)
    assert out["features"].shape == (2, model.backbone.num_features)
    cfg = data_config(model)
    assert len(cfg["mean"]) == 3 and len(cfg["input_size"]) == 3
    total = sum(p.numel() for p in model.parameters())
    head = set_trainable(model, stage=1)
    assert head == 7 * model.backbone.num_features + 7  # only the linear head trains
    stages = backbone_stages(model)
    assert len(stages) >= 4
    last = set_trainable(model, stage=2, unfreeze_stages=1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(stages[-1]) <= trainable and not set(stages[0]) & trainable and head < last < total
    assert set_trainable(model, stage=2, unfreeze_stages=-1) == total


def test_pretrained_weights_load_from_a_file(tmp_path, capsys):
    source = timm.create_model("resnet10t", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "r10t.pth")
    loaded = create_backbone("resnet10t", 7, str(tmp_path / "r10t.pth"))
    torch.testing.assert_close(loaded.conv1[0].weight, source.conv1[0].weight)
    assert loaded.fc.out_features == 7
    assert "warning" not in capsys.readouterr().err
    # missing weights, offline, download: tests/test_pretrained.py


def test_an_unknown_model_name_is_a_fathom_error():
    from fathom.errors import FathomError

    with pytest.raises(FathomError, match="not a timm model name"):
        build_model(TrainConfig(model="resnet_unknown_99"), 3)


def test_prior_bias_starts_the_head_at_the_class_frequencies():
    import numpy as np

    from fathom.engine.models import init_head_bias

    model = build_model(TrainConfig(model="resnet10t"), 3)
    init_head_bias(model, np.array([0.5, 0.1, 0.0]), "multilabel")
    torch.testing.assert_close(
        torch.sigmoid(model.backbone.fc.bias), torch.tensor([0.5, 0.1, 1e-4])
    )
    init_head_bias(model, np.array([0.7, 0.2, 0.1]), "singlelabel")
    torch.testing.assert_close(
        torch.softmax(model.backbone.fc.bias, 0), torch.tensor([0.7, 0.2, 0.1])
    )


def test_a_weights_file_loads_under_a_new_head_whatever_its_head(tmp_path):
    """A file pretrained on another task (290 classes) or saved head-less loads its backbone;
    the head is always new, also when n_classes equals timm's default 1000."""
    source = timm.create_model("resnet10t", num_classes=290)
    weights = source.state_dict()
    torch.save(weights, tmp_path / "290.pth")
    torch.save(
        {k: v for k, v in weights.items() if not k.startswith("fc.")}, tmp_path / "nohead.pth"
    )
    for name in ("290.pth", "nohead.pth"):
        for n_classes in (7, 1000):
            loaded = create_backbone("resnet10t", n_classes, str(tmp_path / name))
            torch.testing.assert_close(loaded.layer4[0].conv2.weight, source.layer4[0].conv2.weight)
            assert loaded.fc.out_features == n_classes
