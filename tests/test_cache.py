# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
import numpy as np
import pytest
from engine_fixtures import one_thread, tiny_comp  # noqa: F401

from fathom.cli import main
from fathom.data.cache import build_cache, cache_path, cached_images, load_image
from fathom.data.coco import open_competition, read_split
from fathom.errors import FathomError


def _train(tiny_comp):  # noqa: F811
    return read_split(open_competition(tiny_comp[0]), "train")


def test_cache_holds_each_image_resized_in_table_order(tiny_comp, tmp_path):  # noqa: F811
    table = _train(tiny_comp).head(10)
    images = cached_images(table, tmp_path, 24, "t", workers=2)
    assert images.shape == (10, 24, 24, 3) and images.dtype == np.uint8
    for i in (0, 7):
        np.testing.assert_array_equal(images[i], load_image(table["path"][i], 24))
    assert images[0].std() > 0  # a real picture, not zeros


def test_a_finished_cache_is_skipped_and_an_interrupted_one_finishes(tiny_comp, tmp_path):  # noqa: F811
    table = _train(tiny_comp).head(12)
    path = build_cache(table, tmp_path, 16, "t", workers=1)
    stamp = path.stat().st_mtime_ns
    assert (
        build_cache(table, tmp_path, 16, "t", workers=1) == path
        and path.stat().st_mtime_ns == stamp
    )
    expected = np.load(path).copy()
    # simulate a kill after 5 rows: rows 5.. are zero, the done mask says so, no ids file
    arr = np.lib.format.open_memmap(path, mode="r+")
    arr[5:] = 0
    arr.flush()
    done = np.zeros(12, dtype=bool)
    done[:5] = True
    np.save(path.with_suffix(".done.npy"), done)
    path.with_suffix(".ids.txt").unlink()
    build_cache(table, tmp_path, 16, "t", workers=1, progress=False)
    np.testing.assert_array_equal(np.load(path), expected)
    assert not path.with_suffix(".done.npy").exists()


def test_a_missing_image_is_a_one_line_error(tiny_comp, tmp_path):  # noqa: F811
    table = _train(tiny_comp).head(3).copy()
    table.loc[1, "path"] = str(tmp_path / "nope.png")
    with pytest.raises(FathomError, match="nope.png: image missing"):
        build_cache(table, tmp_path, 16, "t", workers=1, progress=False)
    assert not cache_path(table, tmp_path, 16, "t").with_suffix(".ids.txt").exists()


def test_cache_command_writes_train_and_eval(tiny_comp, tmp_path, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "cache",
                str(tiny_comp[0]),
                "--size",
                "20",
                "--cache-dir",
                str(tmp_path),
                "--workers",
                "1",
            ]
        )
    assert exit_.value.code == 0
    files = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert (
        len(files) == 2
        and files[0].startswith("comp-eval-20px")
        and files[1].startswith("comp-train-20px")
    )


def test_a_moved_competition_keeps_its_cache(tiny_comp, tmp_path):  # noqa: F811
    import shutil

    before = tmp_path / "before"
    shutil.copytree(tiny_comp[0], before)
    table = read_split(open_competition(before), "train").head(6)
    path = build_cache(table, tmp_path / "cache", 16, "t", workers=1, progress=False)
    stamp = path.stat().st_mtime_ns
    after = tmp_path / "elsewhere" / "after"
    shutil.move(before, after)
    moved = read_split(open_competition(after), "train").head(6)
    assert moved["path"][0] != table["path"][0]
    assert cache_path(moved, tmp_path / "cache", 16, "t") == path
    assert build_cache(moved, tmp_path / "cache", 16, "t", workers=1, progress=False) == path
    assert path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    # other images (another file name) are another cache
    renamed = moved.copy()
    renamed.loc[0, "path"] = renamed["path"][0].replace(".png", "-x.png")
    assert cache_path(renamed, tmp_path / "cache", 16, "t") != path
