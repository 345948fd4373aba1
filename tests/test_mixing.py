"""Mixup, CutMix, colour jitter and the TrivialAugment policy (issue 12): mixed targets are the
mixed labels, the colour ops are torchvision's formulas per image, and keys left off draw
nothing from the augmentation generator."""

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from fathom.config import TrainConfig
from fathom.data.augment import (
    POLICY_HUE,
    POLICY_OPS,
    Preprocess,
    adjust_contrast,
    adjust_saturation,
    adjust_sharpness,
    posterize,
    random_affine,
    shift_hue,
    trivial_augment,
)
from fathom.errors import FathomError

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
STILL = dict(
    hflip=0.0, vflip=0.0, rotate=0.0, shift=0.0, zoom=(1.0, 1.0), shear=0.0, brightness=(1.0, 1.0)
)
SIZE = 32


def _prep(**changes):
    return Preprocess(TrainConfig(**{**STILL, **changes}), SIZE, MEAN, STD, torch.device("cpu"))


def _black_and_white():
    """Image 0 all black, image 1 all white: a pixel's raw value is image 1's share in it."""
    images = torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8)
    images[1] = 255
    return images


def _raw(x):
    return x * STD[0] + MEAN[0]  # undo the normalisation


def _swapping_draw(prep, n=2):
    """The parameters of the first seed whose batch of two mixes each image with the other."""
    for seed in range(100):
        params = prep.draw([n], torch.Generator().manual_seed(seed))
        if params.partner.tolist() == [1, 0]:
            return params
    raise AssertionError("no seed in 100 swaps the two images")


@pytest.mark.parametrize("key", ["mixup", "cutmix"])
def test_mixed_targets_are_the_mixed_labels(key):
    prep = _prep(**{key: 1.0})
    params = _swapping_draw(prep)
    x = prep.train(_black_and_white(), params)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    mixed, targets = prep.mix(x, y, params, 4)
    white = _raw(mixed).mean(dim=(1, 2, 3))  # image 1's share of each mixed image
    assert 0.01 < white[0] < 0.99 and 0.01 < white[1] < 0.99  # both really mixed
    expected = white.view(2, 1) * y[1] + (1 - white.view(2, 1)) * y[0]
    torch.testing.assert_close(targets, expected, atol=1e-5, rtol=0)
    # the label both images hold stays 1, the label neither holds stays 0
    assert targets[:, 2].tolist() == [1.0, 1.0] and targets[:, 3].tolist() == [0.0, 0.0]
    pixels = _raw(mixed)
    if key == "cutmix":  # pasted, not blended: every pixel is one image's or the other's
        assert ((pixels.abs() < 1e-5) | ((pixels - 1).abs() < 1e-5)).all()
        box = pixels[0, 0] > 0.5  # image 1's patch in image 0 is one rectangle
        rows, cols = box.any(dim=1), box.any(dim=0)
        assert box.sum() == rows.sum() * cols.sum()
    else:  # blended: every pixel of an image holds the same share
        assert (pixels[0] - white[0]).abs().max() < 1e-5


def test_singlelabel_targets_mix_as_one_hot_vectors():
    prep = _prep(mixup=0.4)
    params = _swapping_draw(prep)
    mixed, targets = prep.mix(
        prep.train(_black_and_white(), params), torch.tensor([0, 2]), params, 3
    )
    white = _raw(mixed).mean(dim=(1, 2, 3))
    expected = torch.stack([1 - white, torch.zeros(2), white], dim=1)
    torch.testing.assert_close(targets, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(2))


def test_mix_prob_zero_mixes_nothing_and_both_keys_split_the_batches():
    images = torch.randint(0, 256, (8, SIZE, SIZE, 3), dtype=torch.uint8)
    y = (torch.rand(8, 5) < 0.5).float()
    prep = _prep(mixup=1.0, mix_prob=0.0)
    params = prep.draw([8], torch.Generator().manual_seed(0))
    x = prep.train(images, params)
    mixed, targets = prep.mix(x, y, params, 5)
    torch.testing.assert_close(mixed, x, rtol=0, atol=0)
    torch.testing.assert_close(targets, y, rtol=0, atol=0)

    prep = _prep(mixup=1.0, cutmix=1.0, mix_prob=0.5)
    params = prep.draw([8] * 400, torch.Generator().manual_seed(0))
    blended = (params.blend < 1).view(400, 8).any(dim=1)
    cut = (params.box[:, 1] > params.box[:, 0]).view(400, 8).any(dim=1)
    assert not (blended & cut).any()  # one kind per batch
    assert 75 < blended.sum() < 125 and 75 < cut.sum() < 125  # ~ a quarter each
    assert 170 < (~blended & ~cut).sum() < 230  # ~ half unmixed


def test_keys_left_off_draw_nothing_extra():
    """The default's numbers do not move: the generator ends where the affine and brightness
    alone leave it, and the new parameters are absent."""
    cfg = TrainConfig()
    gen, ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    params = Preprocess(cfg, SIZE, MEAN, STD, torch.device("cpu")).draw([4, 3], gen)
    for n in (4, 3):
        theta = random_affine(n, cfg, ref)
        torch.rand(n, generator=ref)  # brightness
    assert torch.equal(gen.get_state(), ref.get_state())
    torch.testing.assert_close(params.theta[4:], theta, rtol=0, atol=0)
    fields = ("contrast", "saturation", "hue", "op", "magnitude", "partner", "blend", "box")
    assert all(getattr(params, name) is None for name in fields)
    assert not Preprocess(cfg, SIZE, MEAN, STD, torch.device("cpu")).mixing


def test_every_new_key_draws_repeatably_and_each_image_its_own():
    prep = _prep(
        mixup=0.4, cutmix=1.0, hue=0.05, saturation=0.3, contrast=0.3, auto_augment="trivial"
    )
    a = prep.draw([16, 16], torch.Generator().manual_seed(1))
    b = prep.draw([16, 16], torch.Generator().manual_seed(1))
    for name in ("contrast", "saturation", "hue", "op", "magnitude", "partner", "blend", "box"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    assert 0.7 <= a.contrast.min() and a.contrast.max() <= 1.3 and a.contrast.std() > 0.05
    assert a.hue.abs().max() <= 0.05 and a.hue.std() > 0.01
    assert set(a.op.tolist()) <= set(range(len(POLICY_OPS))) and len(set(a.op.tolist())) > 4
    # partners index within their own batch of 16
    assert sorted(a.partner[:16].tolist()) == list(range(16))
    assert sorted(a.partner[16:].tolist()) == list(range(16))


def test_config_checks_the_new_keys():
    for bad in (dict(mixup=-1.0), dict(mix_prob=1.5), dict(hue=0.6), dict(auto_augment="rand")):
        with pytest.raises(FathomError):
            TrainConfig(**bad).check()
    TrainConfig(mixup=0.2, cutmix=1.0, hue=0.5, auto_augment="trivial", layer_decay=0.75).check()


def _colourful(n=3, seed=0):
    return torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (adjust_contrast, TF.adjust_contrast),
        (adjust_saturation, TF.adjust_saturation),
        (adjust_sharpness, TF.adjust_sharpness),
    ],
)
def test_colour_ops_are_torchvisions_with_one_factor_per_image(ours, theirs):
    x, factors = _colourful(), [0.3, 1.0, 1.7]
    out = ours(x, torch.tensor(factors).view(3, 1, 1, 1))
    for i, factor in enumerate(factors):
        torch.testing.assert_close(out[i], theirs(x[i], factor), atol=1e-5, rtol=0)


def test_hue_shift_is_torchvisions_per_image():
    x, shifts = _colourful(), [-0.3, 0.0, 0.12]
    out = shift_hue(x, torch.tensor(shifts).view(3, 1, 1, 1))
    for i, shift in enumerate(shifts):
        torch.testing.assert_close(out[i], TF.adjust_hue(x[i], shift), atol=1e-5, rtol=0)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    green = shift_hue(red, torch.tensor(1 / 3).view(1, 1, 1, 1))
    torch.testing.assert_close(green.flatten(), torch.tensor([0.0, 1.0, 0.0]))


def test_trivial_augment_applies_the_op_each_image_picked():
    n = len(POLICY_OPS)
    x = _colourful(1).expand(n, -1, -1, -1).contiguous()
    op = torch.arange(n).view(n, 1, 1, 1)
    m = 0.5
    out = trivial_augment(x, op, torch.full((n, 1, 1, 1), m))
    one = x[:1]
    expected = {
        "identity": one,
        "brightness": TF.adjust_brightness(one, 1 + 0.99 * m),
        "saturation": TF.adjust_saturation(one, 1 + 0.99 * m),
        "contrast": TF.adjust_contrast(one, 1 + 0.99 * m),
        "sharpness": TF.adjust_sharpness(one, 1 + 0.99 * m),
        "hue": TF.adjust_hue(one, POLICY_HUE * m),
        "posterize": posterize(one, torch.tensor(5.0)),  # 8 - round(6 * 0.5) bits
        "solarize": TF.solarize(one, 1 - m),
        "autocontrast": TF.autocontrast(one),
    }
    for i, name in enumerate(POLICY_OPS):
        torch.testing.assert_close(out[i : i + 1], expected[name], atol=1e-5, rtol=0)
    levels = posterize(one, torch.tensor(3.0)).unique()
    assert len(levels) <= 8  # 3 bits


def test_colour_keys_change_the_training_batch_per_image():
    images = (_colourful(1) * 255).to(torch.uint8).permute(0, 2, 3, 1).expand(6, -1, -1, -1)
    plain = _prep().train(images, torch.Generator().manual_seed(0))
    for key, value in (
        ("hue", 0.2),
        ("saturation", 0.5),
        ("contrast", 0.5),
        ("auto_augment", "trivial"),
    ):
        out = _prep(**{key: value}).train(images, torch.Generator().manual_seed(0))
        assert not torch.allclose(out, plain), key
        # each image its own draw: the six copies come out differently
        assert len({round(float(o.sum()), 3) for o in out}) > 2, key


@pytest.mark.parametrize(
    "task, loss",
    [("multilabel", n) for n in ("bce", "bce_balanced", "asl", "focal")]
    + [("singlelabel", n) for n in ("ce", "ce_balanced", "focal")],
)
def test_every_loss_takes_mixed_targets(task, loss):
    """One-hot targets give the loss of the labels themselves; a mixed target is fitted best
    by logits that follow the mix."""
    from fathom.engine.losses import build_loss

    fit_on = (
        torch.tensor([[1.0, 0, 0], [0, 1, 1]]).numpy()
        if task == "multilabel"
        else torch.tensor([0, 1, 2]).numpy()
    )
    fn = build_loss(TrainConfig(task=task, loss=loss), fit_on, 3)
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 1.2, -2.0]])
    if task == "singlelabel":
        labels = torch.tensor([0, 2])
        onehot = torch.nn.functional.one_hot(labels, 3).float()
        torch.testing.assert_close(fn(logits, onehot), fn(logits, labels))
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.7, 0.3, 0.0]])
    follows = torch.tensor([[3.0, 1.0, -6.0]]) if task == "singlelabel" else None
    if follows is None:  # multi-label: the logits whose sigmoids are the mixed targets
        follows = torch.logit(torch.tensor([[0.7, 0.3, 1e-3]]))
    against = follows.flip(1)
    good, bad = fn(follows.expand(2, -1), soft), fn(against.expand(2, -1), soft)
    assert torch.isfinite(good) and good < bad
