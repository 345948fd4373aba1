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
    <label>-<size>px-<hash>.meta.json  which decoder wrote the rows (written before the first)

Images are squashed to a square (not cropped): organisms near the frame's edges keep their
labels. JPEGs decode through PIL's draft mode, which decodes at a reduced scale directly.

PNGs (known by their first bytes, not their name) decode through libvips (pyvips, with the
libvips of the pyvips-binary wheel) where it can be imported, on one thread per process, then
a linear shrink to the square: 1.3-1.4x less CPU than PIL on 1080p frames, FathomNet's format
(scripts/bench_cache.py). Its pixels are not PIL's bit for bit: a mean absolute difference of
~0.4/255 at 256 px and ~0.25/255 at 64 px on 1080p frames, nothing a network trained on
augmented images can tell apart. Where pyvips is missing (Kaggle's image, unless the kernel's
dataset ships it) PIL decodes PNGs as before.

So one cache could hold rows of two decoders; `.meta.json` says which built it. A finished
cache is used whichever decoder built it (the difference is below one grey level; rebuilding
thousands of frames for it would cost minutes for nothing), but an interrupted build is only
resumed by the same decoder, else started over: the rows of one file come from one decoder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_vips = None  # the pyvips module once loaded; False where it cannot be (PIL decodes PNGs)
_vips_ran_here = False  # libvips has started its threads in this process (see _pool_context)


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


PNG_DECODER_ENV = "FATHOM_PNG_DECODER"


def _pyvips():
    """pyvips, loaded on first use, or None where it cannot be (no wheel, or no libvips) or
    where FATHOM_PNG_DECODER=pil asks for PIL: to build the same pixels as a Kaggle kernel,
    whose image has no pyvips (`make kaggle-check` compares a laptop's submission with a
    kernel's byte for byte)."""
    global _vips
    asked = os.environ.get(PNG_DECODER_ENV, "auto").strip().lower() or "auto"
    if asked not in ("auto", "pil", "pyvips"):
        raise FathomError(f"{PNG_DECODER_ENV}={asked!r}: choose auto, pil or pyvips")
    if asked == "pil":
        return None
    if _vips is None:
        # the cache runs one process per core: one libvips thread each (read when it loads)
        os.environ.setdefault("VIPS_CONCURRENCY", "1")
        try:
            import pyvips
        except (ImportError, OSError):  # OSError: pyvips found no libvips to load
            _vips = False
        else:
            pyvips.concurrency_set(1)  # also where pyvips was loaded before, or the user set more
            # each file is decoded once: libvips' operation cache would only hold memory
            pyvips.cache_set_max(0)
            _vips = pyvips
    if asked == "pyvips" and not _vips:  # never PIL in its place without a word
        raise FathomError(
            f"{PNG_DECODER_ENV}=pyvips, but pyvips cannot be imported here "
            "(pip install pyvips pyvips-binary, or unset it)"
        )
    return _vips or None


def png_decoder() -> str:
    """What decodes PNGs in this process: "pyvips" (libvips), or "pil" where pyvips is missing.
    Every other format decodes through PIL."""
    return "pyvips" if _pyvips() is not None else "pil"


def decoder_meta() -> dict:
    """The decoders a cache built now is written by: its `.meta.json`."""
    import PIL

    meta = {"png_decoder": png_decoder(), "pillow": PIL.__version__}
    if (vips := _pyvips()) is not None:
        meta["libvips"] = ".".join(str(vips.version(i)) for i in range(3))
    return meta


def _is_png(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def load_image(path: str, size: int, crop: tuple[float, ...] | None = None) -> np.ndarray:
    """One image as a (size, size, 3) uint8 array; with `crop` (left, top, right, bottom as
    fractions of the frame), that region of the full-resolution image, cropped then resized.
    A PNG decodes through libvips where pyvips is installed (the module's docstring)."""
    try:
        if _is_png(path) and (vips := _pyvips()) is not None:
            return _load_png_vips(vips, path, size, crop)
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


def _load_png_vips(vips, path: str, size: int, crop: tuple[float, ...] | None) -> np.ndarray:
    """A PNG through libvips, as the PIL path gives it: alpha dropped (not composited), grey
    and palette expanded to RGB, 16 bit scaled to 8 (v / 257, rounded), no EXIF rotation nor
    colour management, the frame (or `crop` of it) squashed to size x size."""
    global _vips_ran_here
    _vips_ran_here = True
    try:
        # fail_on="error": a truncated or corrupt file is an error, not a half-grey picture
        img = vips.Image.new_from_file(path, access="sequential", fail_on="error")
        limit = Image.MAX_IMAGE_PIXELS
        if limit and img.width * img.height > 2 * limit:  # the limit PIL's path enforces
            raise FathomError(
                f"{path}: image too large to decode safely (its header claims more than "
                f"{2 * limit:,} pixels; corrupt or not a photo?)"
            )
        if crop is not None:
            x0, y0, x1, y1 = region_pixels(crop, img.width, img.height)
            img = img.crop(x0, y0, x1 - x0, y1 - y0)
        # libvips enlarges with another pixel alignment than PIL (mean |diff| ~30/255 on
        # noise): an image or region smaller than the cache is enlarged by PIL, as before
        shrink = size <= img.width and size <= img.height
        if shrink:  # linear: the closest to PIL's bilinear + reducing_gap, and as fast
            img = img.resize(size / img.width, vscale=size / img.height, kernel="linear")
        # alpha dropped as PIL's convert("RGB") does; after the shrink, which resize does not
        # weigh by alpha, so that the full-size frame is not copied once more
        if img.bands in (2, 4):
            img = img[: img.bands - 1]
        if img.format != "uchar":  # a 16-bit PNG
            img = (img / 257).rint().cast("uchar")
        if img.bands == 1:
            img = img.bandjoin([img, img])
        pixels = img.write_to_memory()
        shape = (img.height, img.width, 3)
    except vips.Error as exc:
        detail = " ".join(str(exc).split())  # libvips' message spans lines: one line
        raise FathomError(f"{path}: cannot read image (libvips: {detail})") from None
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(shape)
    if shrink and shape == (size, size, 3):
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.BILINEAR, reducing_gap=3.0))


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


def meta_path(path: Path) -> Path:
    return path.with_suffix(".meta.json")


def built_by(path: Path) -> str:
    """The PNG decoder that wrote the rows of cache `path` ("pil" for a cache that predates
    the meta file: fathom decoded every format with PIL then)."""
    try:
        return json.loads(meta_path(path).read_text(encoding="utf-8"))["png_decoder"]
    except FileNotFoundError:
        return "pil"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"  # damaged: never matches, so a build is not resumed on it


def _create(path: Path, done_path: Path, shape: tuple[int, ...], meta: dict):
    """A new zero-filled cache file and an all-false done mask, made beside `path` and renamed
    onto it (never `w+` on `path` itself: that truncates a file another process may have
    mapped, zeroing rows it already wrote). The empty mask goes first, so no older mask can
    vouch for rows of the new file; then the meta, naming the decoder of the rows to come."""
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
        fileio.write_text(meta_path(path), json.dumps(meta, indent=1) + "\n")
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
    meta = decoder_meta()
    images, done = _open_to_resume(path, done_path, shape)
    if images is not None and built_by(path) != meta["png_decoder"]:
        if progress:
            print(
                f"{path}: begun by the {built_by(path)} decoder, this process decodes PNGs "
                f"with {meta['png_decoder']}: starting over, so that no cache mixes the two",
                flush=True,
            )
        images = done = None
    if images is None:
        images, done = _create(path, done_path, shape, meta)
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
            ctx = get_context(_pool_context())
            if ctx.get_start_method() == "forkserver":
                # the server imports this module once and every worker forks from it ready;
                # without it each pool's workers import fathom, numpy, PIL and pandas anew (~1 s
                # a pool on 2 cores, paid by every cache built after libvips ran here)
                ctx.set_forkserver_preload([__name__])
            pool = ctx.Pool(workers)
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


def _pool_context() -> str:
    """How to start the decoding workers: fork (fast, inherits what is imported) unless
    libvips has run in this process: its idle threads do not survive a fork, and a child that
    calls libvips then waits on them forever. A forkserver starts from a clean process."""
    if os.name != "posix":
        return "spawn"
    return "forkserver" if _vips_ran_here else "fork"


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
