# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Tiled prediction (issue 12, part 2): the grid covers the frame with the asked overlap, the
blend is (1 - blend) * whole frame + blend * max over tiles, and kernels pass --tiles on."""

import numpy as np
import pandas as pd
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401
from PIL import Image

from fathom.config import TrainConfig, from_dict
from fathom.data import read_data
from fathom.data.augment import Preprocess
from fathom.data.cache import build_cache, load_image, region_pixels
from fathom.data.crops import tile_regions, tile_table
from fathom.data.loader import ImageSource
from fathom.engine.predict import blend_tiles, open_tiles, predict_probs, probabilities
from fathom.engine.train import train_run
from fathom.errors import FathomError
from fathom.kaggle import kernels
from fathom.runs import read_predictions


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_the_tile_grid_covers_the_frame_with_the_asked_overlap(n, overlap):
    regions = np.array(tile_regions(n, overlap))
    assert len(regions) == n * n
    side = 1 / (n - (n - 1) * overlap)
    np.testing.assert_allclose(regions[:, 2] - regions[:, 0], side)  # all tiles one size
    np.testing.assert_allclose(regions[:, 3] - regions[:, 1], side)
    xs = sorted(set(map(tuple, regions[:, [0, 2]].round(9))))  # the column spans
    assert xs[0][0] == 0 and xs[-1][1] == 1
    for (_, a1), (b0, _) in zip(xs, xs[1:], strict=False):  # neighbours share overlap * side
        assert a1 - b0 == pytest.approx(overlap * side)
    # in pixels, as the loader cuts them: together they are the whole frame, nothing left out
    for width, height in ((37, 23), (1920, 1080)):
        seen = np.zeros((height, width), dtype=int)
        for region in regions:
            x0, y0, x1, y1 = region_pixels(tuple(region), width, height)
            seen[y0:y1, x0:x1] += 1
        assert (seen >= 1).all()
        if overlap == 0:
            assert (seen == 1).all()


def test_tiles_are_listed_image_by_image():
    table = pd.DataFrame({"id": ["a", "b"], "path": ["a.png", "b.png"]})
    tiles = tile_table(table, 2, 0.25)
    assert tiles["id"].tolist() == [f"{i}/tile{t}" for i in "ab" for t in range(4)]
    assert tiles["crop"][5] == tile_regions(2, 0.25)[1]
    with pytest.raises(FathomError, match=r"tiles = 9 must be in \[0, 8\]"):
        from_dict({"tiles": 9})
    with pytest.raises(FathomError, match="tile_overlap"):
        from_dict({"tile_overlap": 1.0})


def test_blend_is_the_weighted_whole_frame_and_max_over_tiles():
    probs = np.array([[0.2, 0.9], [0.5, 0.1]], np.float32)
    tiles = np.array([[0.1, 0.3], [0.7, 0.2], [0.4, 0.8], [0.6, 0.05]], np.float32)
    out = blend_tiles(probs, tiles, 2, 0.25)
    np.testing.assert_allclose(out, 0.75 * probs + 0.25 * np.array([[0.7, 0.3], [0.6, 0.8]]))
    np.testing.assert_allclose(blend_tiles(probs, tiles, 2, 0.0), probs)


class MeanColour(torch.nn.Module):
    """A fake model: each image's logits and features are 4x its mean colour."""

    def forward(self, x):
        mean = x.mean(dim=(2, 3))
        return {"logits": 4 * mean, "features": mean}


def test_tiled_prediction_on_a_fake_model_blends_what_each_tile_shows(tmp_path):
    rows = []
    for k, (x, y) in enumerate([(4, 4), (50, 30)]):
        pixels = np.full((40, 60, 3), 10, np.uint8)
        pixels[y : y + 6, x : x + 6] = (255, 40, 0)  # a small organism in one corner
        Image.fromarray(pixels).save(tmp_path / f"{k}.png")
        rows.append({"id": f"img{k}", "path": str(tmp_path / f"{k}.png")})
    table = pd.DataFrame(rows)
    cfg = TrainConfig(cache_dir=str(tmp_path / "cache"), tiles=3, tile_blend=0.4, num_workers=0)
    cpu = torch.device("cpu")
    prep = Preprocess(cfg, 16, (0, 0, 0), (1, 1, 1), cpu)
    whole = ImageSource(build_cache(table, cfg.cache_dir, 16, "t", progress=False), cpu, False)
    tiles = open_tiles(table, "t", cfg, 16, cpu)
    model = MeanColour()
    probs, logits, feats = predict_probs(
        model, whole, np.arange(2), prep, 4, None, cfg, None, tiles
    )

    def run(images):
        return model(prep.eval(torch.from_numpy(np.stack(images))))["logits"].numpy()

    regions = tile_regions(3, cfg.tile_overlap)
    for i, path in enumerate(table["path"]):
        frame = run([load_image(path, 16)])[0]
        each = probabilities(run([load_image(path, 16, r) for r in regions]), "multilabel")
        expected = 0.6 * probabilities(frame[None], "multilabel")[0] + 0.4 * each.max(axis=0)
        np.testing.assert_allclose(probs[i], expected, atol=1e-5)
        np.testing.assert_allclose(logits[i], frame, atol=1e-5)  # logits stay the whole frame's
        # the organism's tile sees it larger than the frame does: red goes up
        assert probs[i][0] > probabilities(frame[None], "multilabel")[0][0] + 0.01
    plain = predict_probs(model, whole, np.arange(2), prep, 4, None, cfg, None, None)
    np.testing.assert_allclose(plain[1], logits)
    np.testing.assert_allclose(plain[2], feats)


def test_a_predict_kernel_passes_its_predict_options_to_every_predict_step():
    (spec,) = kernels.specs(
        "fathom-predict",
        owner="me",
        runs=("cnn", "r50"),
        extra_args=("--tiles=3", "--tile-blend", "0.4", "--keep"),
    )
    steps = kernels.settings(spec)["steps"]
    for step in steps[:2]:
        assert step[0] == "predict" and step[-3:] == ["--tiles=3", "--tile-blend", "0.4"]
    assert steps[2][0] == "submit" and steps[2][-1] == "--keep" and "--tiles=3" not in steps[2]
    with pytest.raises(FathomError, match="needs its value"):
        kernels.specs("fathom-predict", owner="me", runs=("cnn",), extra_args=("--tiles",))


def test_a_run_with_tiles_trains_the_same_weights_and_tiles_its_oof_and_eval(tiny_comp, tmp_path):
    files = {}
    for tiles in (0, 2):
        cfg = tiny_config(tiny_comp, tmp_path, epochs=1, tiles=tiles, name=f"t{tiles}")
        run_dir = train_run(cfg, read_data(cfg), tmp_path / "runs", [0], progress=False)
        files[tiles] = {n: read_predictions(run_dir / "fold0" / n) for n in ("oof.npz", "eval.npz")}
    for name in ("oof.npz", "eval.npz"):
        plain, tiled = files[0][name], files[2][name]
        np.testing.assert_array_equal(tiled["logits"], plain["logits"])
        np.testing.assert_allclose(plain["probs"], probabilities(plain["logits"], "multilabel"))
        assert np.abs(tiled["probs"] - plain["probs"]).max() > 1e-6
