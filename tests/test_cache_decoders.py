"""The cache's PNG decoder: libvips (pyvips) where it imports, PIL where it does not; which
one built a cache is recorded, and one cache never mixes the rows of both."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fathom.data import cache
from fathom.errors import FathomError

REPO = Path(__file__).resolve().parents[1]


def _pil_reference(path, size):
    """The old path, written out: PIL decodes, to_rgb, then the bilinear squash."""
    with Image.open(path) as img:
        img = cache.to_rgb(img)
        return np.asarray(img.resize((size, size), Image.BILINEAR, reducing_gap=3.0))


def _scene(h=90, w=160, seed=0):
    """A smooth picture with a little noise, like a shrunken frame (not pure noise, on which
    any two resamplers disagree)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 255 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def vips_spy(monkeypatch):
    """Counts the PNGs that went through libvips."""
    calls = []
    real = cache._load_png_vips

    def spy(vips, path, size, crop):
        calls.append(path)
        return real(vips, path, size, crop)

    monkeypatch.setattr(cache, "_load_png_vips", spy)
    return calls


@pytest.fixture
def no_pyvips(monkeypatch):
    """pyvips cannot be imported, as on Kaggle's image."""
    monkeypatch.setitem(sys.modules, "pyvips", None)
    monkeypatch.setattr(cache, "_vips", None)


def _close_to_pil(pixels, path, size, mean=1.5):
    ref = _pil_reference(path, size)
    assert pixels.shape == ref.shape == (size, size, 3) and pixels.dtype == np.uint8
    diff = np.abs(pixels.astype(int) - ref)
    assert diff.mean() < mean, diff.mean()
    return diff


def test_a_png_decodes_through_libvips_at_the_cache_geometry(tmp_path, vips_spy):
    path = str(tmp_path / "frame.png")
    Image.fromarray(_scene()).save(path)
    for size in (64, 37):  # the squash to a square, whatever the side
        diff = _close_to_pil(cache.load_image(path, size), path, size)
        assert diff.max() <= 24  # the same picture: no shift, no colour swap
    assert vips_spy == [path, path]
    assert cache.png_decoder() == "pyvips"
    # one libvips thread per process (the cache runs a process per core), no operation cache
    assert cache._vips.concurrency_get() == 1 and cache._vips.cache_get_max() == 0


def _modes(rgb):
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 0  # half transparent: PIL drops alpha, keeps the colour
    gray = rgb[..., 0]
    palette = Image.fromarray(rgb).quantize(32)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 0
    return {
        "RGBA": Image.fromarray(np.dstack([rgb, alpha])),
        "L": Image.fromarray(gray),
        "LA": Image.fromarray(np.dstack([gray, alpha]), "LA"),
        "P": palette,
        "P-transparent": palette_t,
        "1": Image.fromarray(gray > 128),
        "I;16": Image.fromarray(gray.astype(np.uint16) * 257),
    }


@pytest.mark.parametrize("mode", ["RGBA", "L", "LA", "P", "P-transparent", "1", "I;16"])
def test_every_kind_of_png_comes_out_as_the_pil_path_gives_it(tmp_path, vips_spy, mode):
    path = str(tmp_path / f"{mode}.png")
    _modes(_scene())[mode].save(path)
    pixels = cache.load_image(path, 48)
    _close_to_pil(pixels, path, 48, mean=2.5 if mode == "1" else 1.5)
    if mode in ("RGBA", "LA"):  # the transparent half keeps its colour, as in PIL's path
        assert pixels[:, :20].mean() > 40
    # an image smaller than the cache is enlarged by PIL: exactly the old pixels
    np.testing.assert_array_equal(cache.load_image(path, 200), _pil_reference(path, 200))
    assert len(vips_spy) == 2


def test_a_16bit_colour_png_is_scaled_to_8bit(tmp_path):
    import pyvips

    wide = _scene().astype(np.uint16) * 257
    path = str(tmp_path / "rgb16.png")
    pyvips.Image.new_from_array(wide).cast("ushort").copy(interpretation="rgb16").pngsave(path)
    assert pyvips.Image.new_from_file(path).format == "ushort"
    _close_to_pil(cache.load_image(path, 48), path, 48)


def test_a_png_is_known_by_its_bytes_not_its_name(tmp_path, vips_spy):
    png_named_jpg, jpg_named_png = str(tmp_path / "a.jpg"), str(tmp_path / "b.png")
    Image.fromarray(_scene()).save(png_named_jpg, format="PNG")
    Image.fromarray(_scene()).save(jpg_named_png, format="JPEG", quality=95)
    _close_to_pil(cache.load_image(png_named_jpg, 32), png_named_jpg, 32)
    assert vips_spy == [png_named_jpg]
    cache.load_image(jpg_named_png, 32)
    assert vips_spy == [png_named_jpg]  # the JPEG went through PIL's draft path


def test_a_crop_of_a_png_is_cut_before_the_squash(tmp_path):
    pixels = np.zeros((80, 80, 3), np.uint8)
    pixels[:40, :40] = (255, 0, 0)
    pixels[40:, 40:] = (0, 0, 255)
    path = str(tmp_path / "a.png")
    Image.fromarray(pixels).save(path)
    assert (cache.load_image(path, 8, (0.0, 0.0, 0.5, 0.5)) == (255, 0, 0)).all()
    assert (cache.load_image(path, 8, (0.5, 0.5, 1.0, 1.0)) == (0, 0, 255)).all()
    np.testing.assert_array_equal(
        cache.load_image(path, 8, (0, 0, 1, 1)), cache.load_image(path, 8)
    )


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_broken_png_is_one_line_without_libvips_noise(tmp_path, capfd, damage):
    good = tmp_path / "good.png"
    Image.fromarray(_scene()).save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:8] + b"junk" * 50)
    with pytest.raises(FathomError, match=r"bad\.png: cannot read image \(libvips: ") as err:
        cache.load_image(str(bad), 32)
    assert "\n" not in str(err.value)
    table = pd.DataFrame({"id": ["g", "b"], "path": [str(good), str(bad)]})
    with pytest.raises(FathomError, match=r"bad\.png: cannot read image"):
        cache.build_cache(table, tmp_path / "c", 16, "t", workers=1, progress=False)
    out, errors = capfd.readouterr()
    assert "VIPS" not in out + errors and "vips" not in errors


def test_without_pyvips_pil_decodes_pngs_and_the_meta_says_so(tmp_path, no_pyvips, vips_spy):
    path = str(tmp_path / "frame.png")
    Image.fromarray(_scene()).save(path)
    assert cache.png_decoder() == "pil"
    np.testing.assert_array_equal(cache.load_image(path, 40), _pil_reference(path, 40))
    assert vips_spy == []
    table = pd.DataFrame({"id": ["a"], "path": [path]})
    built = cache.build_cache(table, tmp_path / "c", 40, "t", workers=1, progress=False)
    meta = json.loads(cache.meta_path(built).read_text())
    assert meta["png_decoder"] == "pil" and "libvips" not in meta


def test_the_meta_records_libvips_and_its_version(tmp_path):
    import pyvips

    path = str(tmp_path / "frame.png")
    Image.fromarray(_scene()).save(path)
    table = pd.DataFrame({"id": ["a"], "path": [path]})
    built = cache.build_cache(table, tmp_path / "c", 40, "t", workers=1, progress=False)
    meta = json.loads(cache.meta_path(built).read_text())
    assert meta["png_decoder"] == "pyvips" == cache.built_by(built)
    assert meta["libvips"] == f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def _noisy_table(folder: Path, n: int) -> pd.DataFrame:
    paths = []
    for i in range(n):
        paths.append(folder / f"{i}.png")
        Image.fromarray(_scene(60, 80, seed=i)).save(paths[-1])
    return pd.DataFrame({"id": [f"i{i}" for i in range(n)], "path": [str(p) for p in paths]})


def _interrupt(path: Path, after: int, n: int) -> None:
    """Make a finished cache look killed after `after` rows (as test_cache.py does)."""
    arr = np.lib.format.open_memmap(path, mode="r+")
    arr[after:] = 0
    arr.flush()
    done = np.zeros(n, dtype=bool)
    done[:after] = True
    np.save(path.with_suffix(".done.npy"), done)
    path.with_suffix(".ids.txt").unlink()


def test_a_build_begun_by_pil_is_started_over_by_libvips(tmp_path, monkeypatch, capsys):
    table = _noisy_table(tmp_path, 6)
    with monkeypatch.context() as m:  # the first build, on a machine without pyvips
        m.setitem(sys.modules, "pyvips", None)
        m.setattr(cache, "_vips", None)
        path = cache.build_cache(table, tmp_path / "c", 24, "t", workers=1, progress=False)
        by_pil = np.load(path).copy()
    _interrupt(path, 3, 6)
    assert cache.png_decoder() == "pyvips"
    cache.build_cache(table, tmp_path / "c", 24, "t", workers=1)
    assert "begun by the pil decoder" in capsys.readouterr().out
    rows = np.load(path)
    expected = np.stack([cache.load_image(p, 24) for p in table["path"]])
    np.testing.assert_array_equal(rows, expected)  # rows 0-2 too: decoded again
    assert not np.array_equal(rows[:3], by_pil[:3])  # (which differs from what PIL wrote)
    assert cache.built_by(path) == "pyvips"


def test_a_finished_cache_of_the_other_decoder_is_used_as_it_is(tmp_path, monkeypatch):
    table = _noisy_table(tmp_path, 3)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pyvips", None)
        m.setattr(cache, "_vips", None)
        path = cache.build_cache(table, tmp_path / "c", 24, "t", workers=1, progress=False)
    stamp = path.stat().st_mtime_ns
    assert cache.build_cache(table, tmp_path / "c", 24, "t", workers=1, progress=False) == path
    assert path.stat().st_mtime_ns == stamp and cache.built_by(path) == "pil"


def test_a_cache_without_meta_was_built_by_pil(tmp_path):
    # what fathom wrote before the meta file: PIL decoded everything
    assert cache.built_by(tmp_path / "old-16px-abc.npy") == "pil"


def test_workers_are_not_forked_from_a_process_where_libvips_ran(tmp_path):
    """libvips' idle threads do not survive a fork: a forked worker that calls it waits on
    them forever. A small build decodes in-process (workers=1), a large one then forks. The
    forkserver preloads the cache module, so that each later pool's workers start ready
    instead of importing fathom anew (~1 s a pool)."""
    script = tmp_path / "two_builds.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import multiprocessing.context
            import sys
            import pandas as pd
            sys.path.insert(0, {str(REPO / "tests")!r})
            from test_cache_decoders import _noisy_table
            from fathom.data import cache

            preloaded = []
            set_preload = multiprocessing.context.BaseContext.set_forkserver_preload

            def spy(self, names):
                preloaded.extend(names)
                set_preload(self, names)

            multiprocessing.context.BaseContext.set_forkserver_preload = spy

            if __name__ == "__main__":
                from pathlib import Path
                table = _noisy_table(Path({str(tmp_path)!r}), 40)
                cache.build_cache(table.head(2), {str(tmp_path / "c")!r}, 16, "a", workers=1,
                                  progress=False)
                assert cache._vips_ran_here and cache._pool_context() == "forkserver"
                path = cache.build_cache(table, {str(tmp_path / "c")!r}, 16, "b", workers=2,
                                         progress=False)
                print(cache.built_by(path), cache.open_cache(path, table).shape, *preloaded)
            """
        )
    )
    # the timeout only guards against the hang under test; it is never reached otherwise
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["pyvips", "(40,", "16,", "16,", "3)", "fathom.data.cache"]


def test_a_png_larger_than_pils_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = str(tmp_path / "huge.png")
    Image.fromarray(_scene()).save(path)  # 160 x 90 = 14,400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # the PIL path's limit: 2x this
    with pytest.raises(FathomError, match=r"huge\.png: image too large to decode safely"):
        cache.load_image(path, 32)


def test_fathom_png_decoder_pil_builds_the_pil_path_s_pixels(tmp_path, monkeypatch):
    # what `make kaggle-check` sets on the laptop side: a kernel's image has no pyvips
    path = str(tmp_path / "frame.png")
    Image.fromarray(_scene()).save(path)
    vips = cache.load_image(path, 32)
    monkeypatch.setenv("FATHOM_PNG_DECODER", "pil")
    assert cache.png_decoder() == "pil" and cache.decoder_meta()["png_decoder"] == "pil"
    pil = cache.load_image(path, 32)
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB").resize((32, 32), Image.BILINEAR, reducing_gap=3.0))
    np.testing.assert_array_equal(pil, expected)
    assert not np.array_equal(vips, pil)  # libvips was the decoder without it
    monkeypatch.setenv("FATHOM_PNG_DECODER", "pyvips")
    assert cache.png_decoder() == "pyvips"


def test_a_bad_or_unmet_fathom_png_decoder_is_one_line(monkeypatch):
    monkeypatch.setenv("FATHOM_PNG_DECODER", "opencv")
    with pytest.raises(
        FathomError, match=r"FATHOM_PNG_DECODER='opencv': choose auto, pil or pyvips"
    ):
        cache.png_decoder()
    monkeypatch.setenv("FATHOM_PNG_DECODER", "pyvips")
    monkeypatch.setattr(cache, "_vips", False)  # as where the import failed
    with pytest.raises(FathomError, match=r"FATHOM_PNG_DECODER=pyvips, but pyvips cannot be"):
        cache.png_decoder()
