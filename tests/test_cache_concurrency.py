# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Issue 18.1 / 16.2-16.3: a cache built by two processes at once, a builder killed mid-way,
and a cache file planted as a symlink. The other processes are real (spawned), so the file
locking and memory maps are the operating system's, not stand-ins."""

import multiprocessing
import os
import signal

import numpy as np
from cache_builders import (
    GUARD_S,
    SIZE,
    first_builder,
    killed_builder,
    second_builder,
)
from cache_builders import expected as _expected
from cache_builders import table as _table
from engine_fixtures import one_thread, tiny_comp  # noqa: F401

from fathom.data import cache as cache_module
from fathom.data.cache import build_cache, cache_path


def test_a_duplicate_builder_stopped_midway_loses_no_rows_of_the_first(tiny_comp, tmp_path):
    comp_dir = tiny_comp[0]
    ctx = multiprocessing.get_context("spawn")
    started, second_went = ctx.Event(), ctx.Event()
    args = (comp_dir, tmp_path, started, second_went)
    first = ctx.Process(target=first_builder, args=args)
    second = ctx.Process(target=second_builder, args=args)
    first.start()
    second.start()
    first.join(GUARD_S)
    second.join(GUARD_S)
    table = _table(comp_dir)
    path = cache_path(table, tmp_path, SIZE, "t")
    assert first.exitcode == 0
    np.testing.assert_array_equal(np.load(path), _expected(table))
    assert second.exitcode == 0  # it waited for the lock, then found the cache done


def test_a_killed_builder_marks_done_only_written_rows_and_the_next_one_finishes(
    tiny_comp, tmp_path
):
    comp_dir = tiny_comp[0]
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=killed_builder, args=(comp_dir, tmp_path, 10))
    proc.start()
    proc.join(GUARD_S)
    assert proc.exitcode == -signal.SIGKILL
    table = _table(comp_dir)
    path = cache_path(table, tmp_path, SIZE, "t")
    done = np.load(path.with_suffix(".done.npy"))
    expected = _expected(table)
    assert done.sum() == 8  # two saves of 4 rows before the kill at row 10
    np.testing.assert_array_equal(np.load(path)[done], expected[done])
    build_cache(table, tmp_path, SIZE, "t", workers=1, progress=False)
    np.testing.assert_array_equal(np.load(path), expected)


def test_a_cache_file_planted_as_a_symlink_is_replaced_not_written_through(tiny_comp, tmp_path):
    table = _table(tiny_comp[0])
    path = cache_path(table, tmp_path / "cache", SIZE, "t")
    path.parent.mkdir()
    victim = tmp_path / "precious.npy"
    # a victim of exactly the cache's shape, with a done mask: the resumable case
    np.save(victim, np.full((len(table), SIZE, SIZE, 3), 7, np.uint8))
    path.symlink_to(victim)
    np.save(path.with_suffix(".done.npy"), np.zeros(len(table), bool))
    build_cache(table, tmp_path / "cache", SIZE, "t", workers=1, progress=False)
    assert (np.load(victim) == 7).all()
    assert not path.is_symlink()
    np.testing.assert_array_equal(np.load(path), _expected(table))


def test_a_build_that_finds_the_lock_taken_waits_then_reuses_the_finished_cache(
    tiny_comp, tmp_path, monkeypatch
):
    import fcntl

    table = _table(tiny_comp[0])
    path = cache_path(table, tmp_path, SIZE, "t")
    # "another process": its own open file description holds the lock
    other = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    waited = []

    def other_finishes_then_lets_go(path_, progress):
        waited.append(path_)
        np.save(path, _expected(table))
        path.with_suffix(".ids.txt").write_text("\n".join(map(str, table["id"])) + "\n")
        os.close(other)  # releases its lock

    monkeypatch.setattr(cache_module, "_say_waiting", other_finishes_then_lets_go)
    monkeypatch.setattr(cache_module, "_load_indexed", lambda job: 1 / 0)  # must not decode
    assert build_cache(table, tmp_path, SIZE, "t", workers=1, progress=False) == path
    assert waited == [path]
    assert not path.with_suffix(".done.npy").exists()


def test_a_lock_file_planted_as_a_symlink_touches_nothing_outside(tiny_comp, tmp_path):
    table = _table(tiny_comp[0])
    path = cache_path(table, tmp_path / "cache", SIZE, "t")
    path.parent.mkdir()
    target = tmp_path / "elsewhere" / "not-created"
    target.parent.mkdir()
    path.with_suffix(".lock").symlink_to(target)
    build_cache(table, tmp_path / "cache", SIZE, "t", workers=1, progress=False)
    assert not target.exists() and not path.with_suffix(".lock").is_symlink()
    np.testing.assert_array_equal(np.load(path), _expected(table))
