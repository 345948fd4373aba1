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

With --kind csv --format single|set|onehot|ranked: a train.csv competition like Cassava,
Plant Pathology 2021 or 2020, or Humpback Whale (accuracy, mean F1, mean column AUC, MAP@5
with new_whale), its truth in the submission's format in OUT/hidden/test_truth.csv.

example:  fathom synth data/synth --n-train 900 --n-eval 450 --seed 0
example:  fathom synth data/fish --kind folder
example:  fathom synth data/cassava --kind csv --format single"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.help_defaults import CSV_FORMATS, CSV_SYNTH, FOLDER_SYNTH, SYNTH  # instant --help
    from fathom.synth import KINDS  # the package's __init__ is light; its generators are not

    d, f = argparse.Namespace(**SYNTH), argparse.Namespace(**FOLDER_SYNTH)
    c, FORMATS = argparse.Namespace(**CSV_SYNTH), CSV_FORMATS
    p.add_argument("out", help="folder to write (must not hold a competition already)")
    p.add_argument("--n-train", type=int, help=f"train images ({d.n_train}; csv {c.n_train})")
    p.add_argument("--n-eval", type=int, help=f"eval images (default {d.n_eval}; csv {c.n_eval})")
    p.add_argument("--width", type=int, help=f"image width (default {d.width}; 384 realistic)")
    p.add_argument("--height", type=int, help=f"image height (default {d.height}; 216 realistic)")
    p.add_argument(
        "--realistic",
        action="store_true",
        help="small organisms (0.5-2%% of a wide frame), look-alike species, occlusion",
    )
    for name, default in (("categories", d.n_categories), ("supercategories", d.n_supercategories)):
        p.add_argument(
            f"--{name}", dest=f"n_{name}", metavar="N", type=int, default=default,
            help=f"number of {name} (default {default})",
        )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="fathomnet",
        help="fathomnet: the multi-label Kaggle layout (default); folder: a single-label folder "
        "dataset; csv: a train.csv competition (--format)",
    )
    g = p.add_argument_group("--kind folder")
    g.add_argument(
        "--smallest",
        type=int,
        default=f.smallest,
        help=f"train images of the rarest class (default {f.smallest}; the largest has 11x)",
    )
    g.add_argument("--size", type=int, help=f"square image side (default {f.size}; csv {c.size})")
    p.add_argument_group("--kind csv").add_argument(
        "--format", choices=FORMATS, default=c.format, help=f"labels (default {c.format})"
    )


def run(args: argparse.Namespace) -> int:
    from fathom.synth import write_synthetic

    # the options' names are the config fields; write_synthetic skips the other kind's
    fields = "n_train n_eval width height n_categories n_supercategories seed realistic smallest"
    fields += " size format"
    lines = write_synthetic(args.out, args.kind, **{k: getattr(args, k) for k in fields.split()})
    print("\n".join(lines))
    return 0
