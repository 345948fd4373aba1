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
    p.add_argument(
        "comp", help="competition folder (Kaggle layout, images fetched) or folder dataset"
    )
    p.add_argument(
        "--size", type=int, required=True, help="side of the cached images in pixels (e.g. 256)"
    )
    p.add_argument("--cache-dir", default="cache", help="cache folder (default cache)")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from fathom.data.cache import cache_dataset

    for split, (n, path) in cache_dataset(
        args.comp, args.size, args.cache_dir, args.workers
    ).items():
        print(f"{split}: {n} images -> {path}")
    return 0
