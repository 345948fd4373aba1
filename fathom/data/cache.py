"""The image cache: every image of a table resized once to SIZE x SIZE, in one uint8 `.npy`.

Why: decoding a 1920x1080 frame costs ~40 ms on one core (a PNG far more), which starves a GPU
that trains on thousands of images a second. A uint8 array of small images is read at memory
speed, can be memory-mapped by loader workers, or held whole on the GPU.

Files, under the cache folder, for a table of images (keyed by a hash of its ids, paths and
each file's size and modification time, so that an image replaced after caching is noticed):

    <label>-<size>px-<hash>.npy        (N, size, size, 3) uint8, rows in the table's order
    <label>-<size>px-<hash>.ids.txt    the N ids, one a line; written last: marks the cache done
    <label>-<size>px-<hash>.done.npy   while building: which rows are written (for resuming)
    <label>-<size>px-<hash>.lock       locked while a process builds it (the others wait)

Images are squashed to a square (not cropped): organisms near the frame's edges keep their
labels. JPEGs decode through PIL's draft mode, which decodes at a reduced scale directly.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import shutil
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fathom import fileio
from fathom.errors import FathomError

CHUNK = 256  # rows between two saves of the done mask: at most this much work is redone


def cache_path(
    table: pd.DataFrame, cache_dir: str | Path, size: int, label: str = "images"
) -> Path:
    """The cache file of `table` at `size`: named by a hash of its ids and image paths, the
    paths taken relative to the folder that holds them all (the dataset's image folder), so
    a competition folder moved or mounted elsewhere keeps its cache; and of each file's size
    and modification time, so a replaced image is cached anew."""
    paths = [os.path.abspath(p) for p in table["path"]]
    root = os.path.commonpath(paths) if paths else ""
    if len(paths) == 1:  # the common path of one file is the file itself
        root = os.path.dirname(root)
    digest = hashlib.sha1()
    for uid, path in zip(table["id"], paths, strict=True):
        rel = Path(os.path.relpath(path, root)).as_posix()
        digest.update(f"{uid}\t{rel}{_stamp(path)}\n".encode())
    return Path(cache_dir) / f"{label}-{size}px-{digest.hexdigest()[:12]}.npy"


def _stamp(path: str) -> str:
    """Size and modification time of an image file: part of the cache key, so that a file
    replaced after caching gets a new cache instead of the old pixels ("" while missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"\t{st.st_size}\t{st.st_mtime_ns}"


def to_rgb(img: Image.Image) -> Image.Image:
    """An image as 8-bit RGB. 16-bit grayscale (PNG "I;16", or "I") is scaled to 8 bit:
    PIL's convert would clip every value above 255, leaving the image mostly white."""
    if img.mode.startswith("I;16") or img.mode == "I":
        wide = np.asarray(img, dtype=np.float64)
        gray = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return img.convert("RGB")


def load_image(path: str, size: int, crop: tuple[float, ...] | None = None) -> np.ndarray:
    """One image as a (size, size, 3) uint8 array; with `crop` (left, top, right, bottom as
    fractions of the frame), that region of the full-resolution image, cropped then resized."""
    try:
        with Image.open(path) as img:
            if crop is not None:
                return _load_region(img, size, crop)
            img.draft("RGB", (size, size))  # JPEG: decode at the smallest scale >= size
            img = to_rgb(img)
            # reducing_gap: shrink by an integer factor first (fast), then resample
            return np.asarray(img.resize((size, size), Image.BILINEAR, reducing_gap=3.0))
    except FileNotFoundError:
        raise FathomError(f"{path}: image missing") from None
    except Image.DecompressionBombError:
        # a header that claims, say, 20000x20000 pixels: decoding it would take gigabytes
        raise FathomError(
            f"{path}: image too large to decode safely (its header claims more than "
            f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels; corrupt or not a photo?)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's types for a broken file
        raise FathomError(f"{path}: cannot read image ({exc})") from None


def _load_region(img: Image.Image, size: int, crop: tuple[float, ...]) -> np.ndarray:
    """The `crop` region of an open image at (size, size). In fractions, so that boxes given in
    the COCO frame still fit an image file stored at another resolution."""
    left, top, right, bottom = crop
    # JPEG: decode at the smallest scale at which the region still has >= size pixels a side
    img.draft(
        "RGB",
        (math.ceil(size / max(right - left, 1e-6)), math.ceil(size / max(bottom - top, 1e-6))),
    )
    img = to_rgb(img)
    region = img.crop(region_pixels(crop, *img.size))
    return np.asarray(region.resize((size, size), Image.BILINEAR, reducing_gap=3.0))


def region_pixels(crop: tuple[float, ...], width: int, height: int) -> tuple[int, int, int, int]:
    """A region in fractions as the pixel box (left, top, right, bottom) of a width x height
    image: rounded to the nearest pixel edge, at least one pixel wide and high."""
    left, top, right, bottom = crop
    x0, y0 = min(round(left * width), width - 1), min(round(top * height), height - 1)
    return x0, y0, max(round(right * width), x0 + 1), max(round(bottom * height), y0 + 1)


def _load_indexed(job: tuple) -> tuple[int, np.ndarray]:
    i, path, size, *crop = job
    return i, load_image(path, size, *crop)


def crop_cache_path(
    table: pd.DataFrame, cache_dir: str | Path, size: int, label: str = "crops"
) -> Path:
    """The cache file of a table of regions (a `crop` column, as load_image takes them): the
    images' own key (cache_path) and every region, so other margins or tiles get another file."""
    digest = hashlib.sha1(cache_path(table, cache_dir, size, label).name.encode())
    for region in table["crop"]:
        digest.update((",".join(f"{v:.6f}" for v in region) + "\n").encode())
    return Path(cache_dir) / f"{label}-{size}px-{digest.hexdigest()[:12]}.npy"


def is_cached(path: Path) -> bool:
    return path.with_suffix(".ids.txt").is_file() and path.is_file()


def build_cache(
    table: pd.DataFrame,
    cache_dir: str | Path,
    size: int,
    label: str = "images",
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write (or finish) the cache of `table` at `size`; return its `.npy` path. Skips what is done.

    One process at a time builds a given cache (a lock on its sibling `.lock` file): `--gpus`
    children, DDP ranks and two commands at once all call this on the same file; the others
    wait, then find it done."""
    # a table with a `crop` column caches those regions of its images (fathom/data/crops.py)
    crops = "crop" in table.columns
    path = (crop_cache_path if crops else cache_path)(table, cache_dir, size, label)
    if is_cached(path):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fileio.os_error(exc, path.parent) from None
    with _build_lock(path, progress):
        if is_cached(path):  # another process finished it while this one waited
            return path
        _build_locked(table, path, size, label, crops, workers, progress)
    return path


@contextlib.contextmanager
def _build_lock(path: Path, progress: bool):
    """Hold an exclusive lock on `path`'s `.lock` file while building it. The lock dies with its
    process, so a killed builder never leaves a stale one; the file itself stays."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock, no guard
        yield
        return
    lock_path = path.with_suffix(".lock")
    fd = _open_lock(lock_path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say_waiting(path, progress)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_lock(lock_path: Path) -> int:
    """The lock file, opened without following a symlink: one planted there must not make
    fathom create or touch the file it points to (it is replaced by a plain file)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(2):
        try:
            return os.open(lock_path, flags, 0o666)
        except OSError as exc:
            if exc.errno != errno.ELOOP or not lock_path.is_symlink():
                raise fileio.os_error(exc, lock_path) from None
            lock_path.unlink()
    raise FathomError(f"{lock_path}: keeps being replaced by a symlink; remove it")


def _say_waiting(path: Path, progress: bool) -> None:
    if progress:
        print(f"{path}: another process is building this cache; waiting for it", flush=True)


def _open_to_resume(path: Path, done_path: Path, shape: tuple[int, ...]):
    """(images opened r+, done mask) of an interrupted build of this shape, else (None, None).

    A symlink is never resumed: it may be planted to point at a file elsewhere, which writing
    through it would overwrite; a fresh file replaces the link instead."""
    if path.is_symlink() or not (path.is_file() and done_path.is_file()):
        return None, None
    try:
        images = np.lib.format.open_memmap(path, mode="r+")
        done = np.load(done_path)
    except (OSError, ValueError):  # a damaged header or mask: start over
        return None, None
    if images.shape != shape or images.dtype != np.uint8 or done.shape != shape[:1]:
        return None, None
    return images, done.astype(bool)


def _create(path: Path, done_path: Path, shape: tuple[int, ...]):
    """A new zero-filled cache file and an all-false done mask, made beside `path` and renamed
    onto it (never `w+` on `path` itself: that truncates a file another process may have
    mapped, zeroing rows it already wrote). The empty mask goes first, so no older mask can
    vouch for rows of the new file."""
    need = int(np.prod(shape))
    free = shutil.disk_usage(path.parent).free
    # a memory-mapped write into a full disk dies with SIGBUS, not an error: check first
    if free < need:
        raise FathomError(
            f"{path}: the cache needs {need / 1e9:.2f} GB but the disk has {free / 1e9:.2f} GB "
            "free (free some space, or choose another --cache-dir / cache_dir)"
        )
    done = np.zeros(shape[0], dtype=bool)
    # a name of this process's own (under the lock no other builder runs; a killed one may
    # have left its temp file, which this one does not reuse), created with open()'s mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _save_done(done_path, done)
        os.replace(tmp, path)  # replaces a symlink itself, never the file it points to
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise fileio.os_error(exc, path) from None
        raise
    return images, done


def _save_done(done_path: Path, done: np.ndarray) -> None:
    with fileio.atomic_path(done_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, done)


def _build_locked(
    table: pd.DataFrame,
    path: Path,
    size: int,
    label: str,
    crops: bool,
    workers: int | None,
    progress: bool,
) -> None:
    n = len(table)
    shape = (n, size, size, 3)
    done_path = path.with_suffix(".done.npy")
    images, done = _open_to_resume(path, done_path, shape)
    if images is None:
        images, done = _create(path, done_path, shape)
    todo = np.flatnonzero(~done)
    paths = table["path"].tolist()
    regions = table["crop"].tolist() if crops else None
    jobs = [(int(i), paths[i], size) + ((tuple(regions[i]),) if crops else ()) for i in todo]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) // 16 + 1))
    bar = tqdm(
        total=n,
        initial=n - len(jobs),
        desc=f"cache {label} {size}px",
        unit="img",
        disable=not progress,
    )
    since_save = 0
    pool = None

    def save_progress():
        # the rows reach the file before the mask that says they are written
        images.flush()
        _save_done(done_path, done)

    try:
        if workers == 1:
            results = map(_load_indexed, jobs)
        else:
            pool = get_context("fork" if os.name == "posix" else "spawn").Pool(workers)
            results = pool.imap_unordered(_load_indexed, jobs, chunksize=8)
        for i, pixels in results:
            images[i] = pixels
            done[i] = True
            since_save += 1
            bar.update(1)
            if since_save >= CHUNK:
                save_progress()
                since_save = 0
        if pool is not None:
            pool.close()
            pool.join()
    except BaseException:
        if pool is not None:
            pool.terminate()
        save_progress()
        raise
    finally:
        bar.close()
    images.flush()
    fileio.write_text(path.with_suffix(".ids.txt"), "\n".join(map(str, table["id"])) + "\n")
    done_path.unlink(missing_ok=True)


def open_cache(path: Path, table: pd.DataFrame) -> np.ndarray:
    """The cached images of `table` (memory-mapped, read-only), checked against its ids."""
    ids = path.with_suffix(".ids.txt").read_text(encoding="utf-8").split("\n")[:-1]
    if ids != [str(i) for i in table["id"]]:
        raise FathomError(
            f"{path}: cached ids differ from the table's (delete the file to rebuild)"
        )
    return np.load(path, mmap_mode="r")


def cached_images(
    table: pd.DataFrame,
    cache_dir: str | Path,
    size: int,
    label: str = "images",
    workers: int | None = None,
) -> np.ndarray:
    """Build the cache if needed, then open it: (N, size, size, 3) uint8 in the table's order."""
    return open_cache(build_cache(table, cache_dir, size, label, workers), table)


def cache_dataset(data_dir, size: int, cache_dir="cache", workers: int | None = None) -> dict:
    """`fathom cache`: both splits of a dataset of either kind, under the names the training
    engine looks for (`<dataset>-train`, `<dataset>-eval`); returns {split: (n images, path)}."""
    from fathom.data import open_dataset

    if size < 8:
        raise FathomError(f"--size {size}: too small (at least 8)")
    ds = open_dataset(data_dir)
    cats = ds.categories()
    fileio.check_writable(cache_dir, "cache folder")
    out = {}
    # both tables read (and checked) before any image is decoded: a bad eval.json fails fast
    tables = {split: ds.split(split, categories=cats) for split in ("train", "eval")}
    for split, table in tables.items():
        if table.empty:
            continue
        out[split] = (
            len(table),
            build_cache(table, cache_dir, size, f"{ds.name}-{split}", workers),
        )
    return out
