from __future__ import annotations

import argparse

HELP = "run the whole flow on a synthetic competition, on CPU, and score it"
DESCRIPTION = """Run fathom end to end with no download: write a synthetic competition, assign
folds, train a small CNN at two resolutions over every fold and one held-out-category run (to
choose the osd scorer honestly), one fold model per CPU core at a time, stitch their OOF, tune
the ensemble of the two models and their kNN members (`fathom tune --knn`), thresholds and the
osd scorer, write validated submissions (each member alone, and the ensemble), score them
against the hidden truth beside the frequency prior, and write the report (`fathom report`).

It takes about 2.7 minutes on 2 idle CPU cores (about 5 CPU-minutes in all; longer while other
programs use the cores): it prints its estimate at the start, where the time went at the end,
then the files to open (the report, the submission). Everything goes under WORKDIR (default
demo/; training logs in WORKDIR/logs); rerunning reuses every finished stage (delete WORKDIR
to start over).

With --kind folder it runs the single-label folder study instead (under WORKDIR/folder/): a
synthetic 31-class folder dataset, a scratch CNN vs a frozen pretrained backbone vs a
two-stage fine-tune, `fathom compare` on the three, and scored `id,label` submissions (~4 min
on CPU). No ImageNet weights are downloaded: without --weights the transfer backbone
(MobileNetV3-Small x0.5) is pretrained by fathom itself on its synthetic FathomNet
competition (multi-label, 290 categories) and loaded from that file; with --weights the
transfer runs use EfficientNet-B0 and the given ImageNet weights.

example:  fathom demo --workdir demo
example:  fathom demo --kind folder"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir", default="demo", help="folder for everything the demo writes (default demo)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic competition (default 0)"
    )
    p.add_argument(
        "--kind",
        choices=["fathomnet", "folder"],
        default="fathomnet",
        help="fathomnet: the multi-label flow (default); folder: the single-label folder study",
    )
    p.add_argument(
        "--weights",
        help="--kind folder: ImageNet weights for efficientnet_b0, a file or `hf` (the Hugging Face cache); default: none (a MobileNetV3 pretrained by fathom on its synthetic FathomNet competition)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.demo import FolderDemo, run_folder_demo, run_multilabel

    if args.kind == "folder":
        run_folder_demo(FolderDemo(Path(args.workdir) / "folder", args.seed, args.weights))
    else:
        run_multilabel(args.workdir, args.seed)
    return 0
