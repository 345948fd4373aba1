"""Issue 18.2: every trainable parameter is in exactly one optimizer group, whatever the model
kind and the options (layer decay, supercategory head, frozen stages); a parameter left out
of every group gets gradients but is never stepped."""

import pytest
import torch

import fathom.engine.train as train_module
from fathom.config import TrainConfig
from fathom.engine.models import build_model, set_trainable

MODELS = ["fathom_cnn", "resnet10t", "mobilenetv3_small_050", "efficientnet_b0", "densenet121"]


def _check_groups(opt, model):
    grouped = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    names = {id(p): n for n, p in model.named_parameters()}
    twice = {names[i] for i in grouped if grouped.count(i) > 1}
    assert not twice, f"in two groups: {sorted(twice)[:3]}"
    missing = {names[i] for i in trainable - set(grouped)}
    assert not missing, f"in no group: {sorted(missing)[:3]}"
    assert set(grouped) == trainable  # and no frozen parameter


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("unfreeze", [-1, 1])
def test_every_trainable_parameter_is_in_exactly_one_group_with_layer_decay(model_name, unfreeze):
    cfg = TrainConfig(
        model=model_name, pretrained=False, layer_decay=0.7, supercat_weight=0.5,
        unfreeze_stages=unfreeze, scheduler="cosine", warmup_epochs=0, lr=1e-2, epochs=3,
        stage1_epochs=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg, 7, supercat_of=[0, 0, 1, 1, 2, 2, -1], n_super=3)
    for stage in (1, 2):
        set_trainable(model, stage, unfreeze)
        for sched in ("cosine", "none"):
            opt, _ = train_module.make_optimizer(cfg.replace(scheduler=sched), model, stage, 10)
            _check_groups(opt, model)
    # the supercategory head trains at the head's full lr (it is a head, not a layer below)
    opt, sched = train_module.make_optimizer(cfg.replace(scheduler="none"), model, 2, 10)
    head = {id(p) for p in model.super_head.parameters()}
    assert {g["lr"] for g in opt.param_groups if head & {id(p) for p in g["params"]}} == {1e-2}


def test_the_supercategory_head_is_stepped_under_layer_decay():
    cfg = TrainConfig(model="fathom_cnn", pretrained=False, layer_decay=0.5, supercat_weight=1.0,
                      scheduler="none")  # fmt: skip
    model = build_model(cfg, 4, supercat_of=[0, 0, 1, 1], n_super=2)
    set_trainable(model, 2, -1)
    opt, _ = train_module.make_optimizer(cfg, model, 2, 10)
    before = model.super_head.weight.detach().clone()
    model.train()
    out = model(torch.randn(4, 3, 32, 32))
    (out["logits"].sum() + out["super_logits"].square().sum()).backward()
    opt.step()
    assert not torch.equal(model.super_head.weight, before)
