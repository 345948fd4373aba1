from __future__ import annotations

import argparse

HELP = "write resized copies of a competition's images once (the fast input of training)"
DESCRIPTION = """Resize every train and eval image of COMP to SIZE x SIZE and store them as one uint8
array per split under CACHE_DIR, on all cores with a progress bar. Training reads only these
(decoding a full-size frame costs ~40 ms; a cached image, nothing). Resumable: rerun after an
interruption and it finishes what is missing; a finished cache is skipped. `fathom train` builds
a missing cache itself; its size is the config's cache_size, or img_size when that is 0.

example:  fathom cache data/fathomnet --size 256"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("comp", help="competition folder (Kaggle layout, images fetched)")
    p.add_argument(
        "--size", type=int, required=True, help="side of the cached images in pixels (e.g. 256)"
    )
    p.add_argument("--cache-dir", default="cache", help="cache folder (default cache)")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.data.cache import build_cache
    from fathom.data.coco import open_competition, read_categories, read_split
    from fathom.errors import FathomError

    if args.size < 8:
        raise FathomError(f"--size {args.size}: too small (at least 8)")
    comp = open_competition(args.comp)
    cats = read_categories(comp)
    name = Path(args.comp).resolve().name
    for split in ("train", "eval"):
        table = read_split(comp, split, categories=cats)
        path = build_cache(table, args.cache_dir, args.size, f"{name}-{split}", args.workers)
        print(f"{split}: {len(table)} images -> {path}")
    return 0
