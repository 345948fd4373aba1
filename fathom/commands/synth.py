from __future__ import annotations

import argparse

HELP = "write a synthetic competition in the Kaggle layout (no download needed)"
DESCRIPTION = """Write a synthetic FathomNet-style competition to OUT, in exactly the Kaggle layout:
category_key.csv, multilabel_classification/train.csv, object_detection/{train,eval}.json,
sample_submission.csv and images/{train,eval}/<uuid>.png. 290 categories in 20
supercategories, a long tail, about half never seen in training, and an eval split whose
deep part is out-of-sample. The eval truth (id,categories,osd) goes to OUT/hidden/eval_truth.csv
for `fathom score`; nothing else reads it.

example:  fathom synth data/synth --n-train 900 --n-eval 450 --seed 0"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.synth import SynthConfig

    d = SynthConfig()
    p.add_argument("out", help="folder to write (must not hold a competition already)")
    p.add_argument(
        "--n-train", type=int, default=d.n_train, help=f"training images (default {d.n_train})"
    )
    p.add_argument("--n-eval", type=int, default=d.n_eval, help=f"eval images (default {d.n_eval})")
    p.add_argument(
        "--width", type=int, default=d.width, help=f"image width in px (default {d.width})"
    )
    p.add_argument(
        "--height", type=int, default=d.height, help=f"image height in px (default {d.height})"
    )
    p.add_argument(
        "--categories",
        type=int,
        default=d.n_categories,
        help=f"number of categories (default {d.n_categories})",
    )
    p.add_argument(
        "--supercategories",
        type=int,
        default=d.n_supercategories,
        help=f"(default {d.n_supercategories})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")


def run(args: argparse.Namespace) -> int:
    from fathom.synth import TRUTH_FILE, SynthConfig, generate

    cfg = SynthConfig(
        n_train=args.n_train, n_eval=args.n_eval, width=args.width, height=args.height,
        n_categories=args.categories, n_supercategories=args.supercategories, seed=args.seed,
    )  # fmt: skip
    out = generate(args.out, cfg)
    print(f"wrote a synthetic competition to {out} ({cfg.n_train} train, {cfg.n_eval} eval images)")
    print(f"hidden eval truth: {out / TRUTH_FILE}")
    return 0
