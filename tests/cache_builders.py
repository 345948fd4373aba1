"""Cache builders run in spawned processes by tests/test_cache_concurrency.py: a module of
their own, which imports no torch, so that each process starts in a second, not ten."""

import os
import signal

import numpy as np

from fathom.data import cache as cache_module
from fathom.data.cache import build_cache, load_image
from fathom.data.coco import open_competition, read_split

SIZE = 16
GUARD_S = 120  # only against a hang if the code under test deadlocks; never reached otherwise


def table(comp_dir):
    return read_split(open_competition(comp_dir), "train").head(24)


def expected(table_):
    return np.stack([load_image(p, SIZE) for p in table_["path"]])


def first_builder(comp_dir, cache_dir, started, second_went):
    """Builds the cache; after 5 rows (before any done-mask save) it lets the second process
    in and waits until that one has either truncated the file (the old code) or is waiting
    for the lock (the fixed code), then finishes."""
    real = cache_module._load_indexed

    def load(job):
        if job[0] == 5:
            started.set()
            assert second_went.wait(GUARD_S)
        return real(job)

    cache_module._load_indexed = load
    build_cache(table(comp_dir), cache_dir, SIZE, "t", workers=1, progress=False)


def second_builder(comp_dir, cache_dir, started, second_went):
    """A duplicate `fathom cache` stopped (kill -9) as soon as it would decode an image."""
    assert started.wait(GUARD_S)

    def waiting(path, progress):  # the fixed code: waiting for the first one's lock
        second_went.set()

    def killed(job):
        second_went.set()
        os.kill(os.getpid(), signal.SIGKILL)

    cache_module._say_waiting = waiting
    cache_module._load_indexed = killed
    build_cache(table(comp_dir), cache_dir, SIZE, "t", workers=1, progress=False)


def killed_builder(comp_dir, cache_dir, at_row):
    cache_module.CHUNK = 4  # the done mask saved every 4 rows
    real = cache_module._load_indexed

    def load(job):
        if job[0] == at_row:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job)

    cache_module._load_indexed = load
    build_cache(table(comp_dir), cache_dir, SIZE, "t", workers=1, progress=False)
