import torch

from fathom.config import TrainConfig
from fathom.data.augment import Preprocess, random_affine

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
STILL = dict(
    hflip=0.0, vflip=0.0, rotate=0.0, shift=0.0, zoom=(1.0, 1.0), shear=0.0, brightness=(1.0, 1.0)
)


def _images(n=4, size=32, seed=0):
    return torch.randint(
        0, 256, (n, size, size, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def _prep(**changes):
    return Preprocess(TrainConfig(**{**STILL, **changes}), 32, MEAN, STD, torch.device("cpu"))


def test_without_augmentation_train_equals_eval():
    images = _images()
    prep = _prep()
    out = prep.train(images, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(out, prep.eval(images), atol=1e-5, rtol=0)
    # eval normalises with the model's mean and std
    torch.testing.assert_close(
        prep.eval(images)[0, :, 0, 0], (images[0, 0, 0].float() / 255 - 0.5) / 0.25
    )


def test_hflip_mirrors_every_image_and_eval_resizes():
    images = _images()
    out = _prep(hflip=1.0).train(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, _prep().eval(images, hflip=True), atol=1e-5, rtol=0)
    assert _prep().eval(_images(size=48)).shape == (4, 3, 32, 32)


def test_zoom_magnifies_around_the_centre():
    images = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    images[:, 12:20, 12:20] = 255  # an 8x8 white square in the middle
    out = _prep(zoom=(2.0, 2.0)).train(images, torch.Generator().manual_seed(0))
    white = (out[0, 0] > 0).sum().item()
    assert 220 <= white <= 290  # ~16x16 after a 2x zoom


def test_each_image_gets_its_own_random_transform_repeatably():
    cfg = TrainConfig()
    a = random_affine(8, cfg, torch.Generator().manual_seed(1))
    b = random_affine(8, cfg, torch.Generator().manual_seed(1))
    c = random_affine(8, cfg, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert len({tuple(m.flatten().tolist()) for m in a}) == 8
    # shifts stay within +-shift of the side (2 units per side in affine_grid coordinates)
    assert a[:, :, 2].abs().max() <= 2 * cfg.shift + 1e-6


def test_brightness_scales_pixels_within_its_range():
    images = torch.full((16, 32, 32, 3), 100, dtype=torch.uint8)
    prep = _prep(brightness=(0.8, 1.2))
    out = prep.train(images, torch.Generator().manual_seed(0))
    raw = out[:, 0, 5, 5] * 0.25 + 0.5  # undo normalisation
    gain = raw / (100 / 255)
    assert gain.min() >= 0.8 - 1e-4 and gain.max() <= 1.2 + 1e-4 and gain.std() > 0.05
