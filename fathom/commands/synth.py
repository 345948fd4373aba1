from __future__ import annotations

import argparse

HELP = "write a synthetic competition in the Kaggle layout (no download needed)"
DESCRIPTION = """Write a synthetic FathomNet-style competition to OUT, in exactly the Kaggle layout:
category_key.csv, multilabel_classification/train.csv, object_detection/{train,eval}.json,
sample_submission.csv and images/{train,eval}/<uuid>.png. 290 categories in 20
supercategories, a long tail, about half never seen in training, and an eval split whose
deep part is out-of-sample. The eval truth (id,categories,osd) goes to OUT/hidden/eval_truth.csv
for `fathom score`; nothing else reads it. --realistic: small organisms in a wide frame.

With --kind folder it writes a single-label folder dataset instead: 31 classes with an 11:1
imbalance, OUT/train/<class>/*.png, OUT/val/<class>/*.png, a flat OUT/test/*.png and the test
truth (id,label) in OUT/hidden/test_truth.csv.

example:  fathom synth data/synth --n-train 900 --n-eval 450 --seed 0
example:  fathom synth data/fish --kind folder"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.help_defaults import FOLDER_SYNTH, SYNTH  # not the generators: instant --help
    from fathom.synth import KINDS  # the package's __init__ is light; its generators are not

    d, f = argparse.Namespace(**SYNTH), argparse.Namespace(**FOLDER_SYNTH)
    p.add_argument("out", help="folder to write (must not hold a competition already)")
    p.add_argument(
        "--n-train", type=int, default=d.n_train, help=f"training images (default {d.n_train})"
    )
    p.add_argument("--n-eval", type=int, default=d.n_eval, help=f"eval images (default {d.n_eval})")
    p.add_argument(
        "--width", type=int, help=f"image width in px (default {d.width}; 384 realistic)"
    )
    p.add_argument("--height", type=int, help=f"image height (default {d.height}; 216 realistic)")
    p.add_argument(
        "--realistic",
        action="store_true",
        help="small organisms (0.5-2%% of a wide frame), look-alike species, occlusion",
    )
    p.add_argument(
        "--categories",
        dest="n_categories",
        metavar="CATEGORIES",
        type=int,
        default=d.n_categories,
        help=f"number of categories (default {d.n_categories})",
    )
    p.add_argument(
        "--supercategories",
        dest="n_supercategories",
        metavar="SUPERCATEGORIES",
        type=int,
        default=d.n_supercategories,
        help=f"(default {d.n_supercategories})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="fathomnet",
        help="fathomnet: the multi-label Kaggle layout (default); folder: a single-label folder dataset",
    )
    g = p.add_argument_group("--kind folder")
    g.add_argument(
        "--smallest",
        type=int,
        default=f.smallest,
        help=f"train images of the rarest class (default {f.smallest}; the largest has 11x)",
    )
    g.add_argument(
        "--size", type=int, default=f.size, help=f"square image size in px (default {f.size})"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.synth import write_synthetic

    # the options' names are the config fields; write_synthetic skips the other kind's
    fields = (
        "n_train n_eval width height n_categories n_supercategories seed realistic smallest size"
    )
    lines = write_synthetic(args.out, args.kind, **{k: getattr(args, k) for k in fields.split()})
    print("\n".join(lines))
    return 0
