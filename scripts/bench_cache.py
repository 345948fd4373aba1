"""The image cache's decode + shrink (`fathom.data.cache.load_image`) against the fastest ways
PyPI offers, on 1920x1080 PNG and JPEG frames this script draws.

    python scripts/bench_cache.py                          # the decoders installed here
    python scripts/bench_cache.py --size 256 64 --frames 12 --repeat 5
    # OpenCV, the one decoder fathom's requirements lack, from a folder of its own:
    pip install --target /tmp/benchextra opencv-python-headless
    PYTHONPATH=.:/tmp/benchextra python scripts/bench_cache.py

Decoders (a decoder whose package is not installed is skipped, and said so):
- fathom-pil: the cache's PIL path (what it did for every format before libvips, and still does
  where pyvips is missing): `draft` for JPEG (libjpeg decodes at 1/2, 1/4 or 1/8 scale), then a
  bilinear resize with `reducing_gap` (an integer box shrink first). The reference.
- fathom: what the cache does now: PNG through libvips (a sequential decode, then a linear
  shrink), JPEG through the PIL path above.
- pil-reduce: PIL, `draft` for JPEG, then `Image.reduce` by the largest integer factor and a
  bilinear resize of what is left.
- cv2-reduced: OpenCV's `IMREAD_REDUCED_COLOR_{2,4,8}` (libjpeg's scaled decode for JPEG; a
  full decode then a shrink for PNG), then `INTER_AREA`.
- cv2: OpenCV's full decode, then `INTER_AREA`.
- pyvips: `Image.thumbnail` (shrink-on-load for JPEG), forced to size x size.
- torchvision: `torchvision.io.decode_image` (full decode), then an antialiased bilinear resize.

Every decoder runs on one thread (the cache runs one process per core): `CPU ms` is the
process's CPU time per image, the best of `--repeat` passes; `vs fathom-pil` is the PIL path's
CPU time over the decoder's (above 1: faster than PIL); `|diff|` is the mean absolute
difference from the PIL path's pixels (0-255), to show that each decoder gives the same picture.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # read when pyvips loads libvips

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH, HEIGHT = 1920, 1080


def draw_frame(rng: np.random.Generator) -> np.ndarray:
    """A 1080p frame shaped like an ROV image for a codec: a smooth dark-blue background, a
    few bright blobs (organisms), and sensor noise (what makes PNG frames large)."""
    low = rng.random((9, 16, 3)).astype(np.float32)
    base = np.asarray(
        Image.fromarray((low * 255).astype(np.uint8)).resize((WIDTH, HEIGHT), Image.BICUBIC),
        dtype=np.float32,
    )
    frame = base * np.array([0.15, 0.35, 0.55], np.float32) + np.array([5, 20, 40], np.float32)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for _ in range(rng.integers(3, 8)):
        cx, cy, r = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(20, 120)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        frame += blob * rng.uniform(60, 200, 3).astype(np.float32)
    frame += rng.normal(0, 4, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_frames(folder: Path, n: int, seed: int = 0) -> dict[str, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {"png": [], "jpeg": []}
    for i in range(n):
        img = Image.fromarray(draw_frame(rng))
        png, jpg = folder / f"frame{i}.png", folder / f"frame{i}.jpg"
        img.save(png)  # PIL's default zlib level, as most PNG writers
        img.save(jpg, quality=90)
        paths["png"].append(str(png))
        paths["jpeg"].append(str(jpg))
    return paths


# --- the decoders: path, size -> (size, size, 3) uint8 RGB


def fathom_decoder():
    from fathom.data import cache

    if cache.png_decoder() != "pyvips":  # the row would only repeat fathom-pil's
        raise ImportError("pyvips", name="pyvips")
    return cache.load_image


def fathom_pil():
    from fathom.data import cache

    def load(path: str, size: int) -> np.ndarray:
        saved, cache._vips = cache._vips, False  # as where pyvips cannot be imported
        try:
            return cache.load_image(path, size)
        finally:
            cache._vips = saved

    return load


def pil_reduce():
    def load(path: str, size: int) -> np.ndarray:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            img = img.convert("RGB")
            factor = max(1, min(img.width // size, img.height // size))
            if factor > 1:
                img = img.reduce(factor)
            return np.asarray(img.resize((size, size), Image.BILINEAR))

    return load


def _cv2():
    import cv2

    cv2.setNumThreads(1)
    return cv2


def cv2_reduced():
    cv2 = _cv2()
    flags = {
        8: cv2.IMREAD_REDUCED_COLOR_8,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        1: cv2.IMREAD_COLOR,
    }

    def load(path: str, size: int) -> np.ndarray:
        # the largest reduction that keeps both sides >= size (the frame size from the file's
        # header would cost a read; the benchmark's frames are all 1080p)
        factor = next(f for f in (8, 4, 2, 1) if WIDTH // f >= size and HEIGHT // f >= size)
        img = cv2.imread(path, flags[factor])
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return load


def cv2_full():
    cv2 = _cv2()

    def load(path: str, size: int) -> np.ndarray:
        img = cv2.resize(cv2.imread(path), (size, size), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return load


def pyvips_thumbnail():
    import pyvips

    def load(path: str, size: int) -> np.ndarray:
        img = pyvips.Image.thumbnail(path, size, height=size, size="force")
        if img.bands == 4:
            img = img.extract_band(0, n=3)
        return np.ndarray(buffer=img.write_to_memory(), dtype=np.uint8, shape=(size, size, 3))

    return load


def torchvision_decoder():
    import torch
    from torchvision.io import ImageReadMode, decode_image, read_file

    torch.set_num_threads(1)

    def load(path: str, size: int) -> np.ndarray:
        img = decode_image(read_file(path), mode=ImageReadMode.RGB).float()[None]
        img = torch.nn.functional.interpolate(
            img, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        return img[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()

    return load


DECODERS = {
    "fathom-pil": fathom_pil,
    "fathom": fathom_decoder,
    "pil-reduce": pil_reduce,
    "cv2-reduced": cv2_reduced,
    "cv2": cv2_full,
    "pyvips": pyvips_thumbnail,
    "torchvision": torchvision_decoder,
}


def measure(load, paths: list[str], size: int, repeat: int) -> tuple[float, float, list]:
    """(CPU ms per image, wall ms per image), each the best pass, and the images."""
    best_cpu = best_wall = float("inf")
    images = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        images = [load(p, size) for p in paths]
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return 1000 * best_cpu / len(paths), 1000 * best_wall / len(paths), images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, nargs="+", default=[256, 64], help="cache sides")
    p.add_argument("--frames", type=int, default=8, help="frames per format")
    p.add_argument("--repeat", type=int, default=3, help="passes; the best counts")
    p.add_argument("--workdir", help="folder for the frames (default: a temporary one)")
    args = p.parse_args(argv)

    loaders, missing = {}, []
    for name, make in DECODERS.items():
        try:
            loaders[name] = make()
        except ImportError as exc:
            missing.append(f"{name} ({exc.name or exc} not installed)")
        except OSError as exc:  # pyvips without its libvips (pip install pyvips-binary)
            missing.append(f"{name} ({str(exc).split(':')[0]})")
    if missing:
        print("skipped: " + "; ".join(missing))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.workdir or tmp)
        paths = write_frames(folder, args.frames)
        sizes = {f: np.mean([os.path.getsize(x) for x in ps]) / 1e6 for f, ps in paths.items()}
        print(
            f"{args.frames} frames of {WIDTH}x{HEIGHT} per format: PNG {sizes['png']:.1f} MB, "
            f"JPEG (quality 90) {sizes['jpeg']:.2f} MB on average; one thread each"
        )
        print(
            "\n| format | size | decoder | CPU ms/image | wall ms/image | vs fathom-pil | |diff| |"
        )
        print("|---|---|---|---|---|---|---|")
        for fmt, fmt_paths in paths.items():
            for size in args.size:
                ref_cpu, ref = None, None
                for name, load in loaders.items():
                    cpu, wall, images = measure(load, fmt_paths, size, args.repeat)
                    if name == "fathom-pil":
                        ref_cpu, ref = cpu, images
                    ratio = f"{ref_cpu / cpu:.2f}x" if ref_cpu else "-"
                    diff = (
                        np.mean(
                            [
                                np.abs(a.astype(int) - b).mean()
                                for a, b in zip(images, ref, strict=True)
                            ]
                        )
                        if ref
                        else float("nan")
                    )
                    print(
                        f"| {fmt} | {size} | {name} | {cpu:.1f} | {wall:.1f} | {ratio} | "
                        f"{diff:.1f} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
