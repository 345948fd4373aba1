from __future__ import annotations

import argparse

HELP = "predict the eval images of any competition folder with every fold's best checkpoint"
DESCRIPTION = """Load runs/<exp>/fold<k>/best.pt of every fold (and full/ when present), predict
the eval images of COMP (e.g. the real hidden test set inside a Kaggle kernel), and write them
in the run-level eval.npz format (ids, probs and logits averaged over the checkpoints,
fold_probs, fold_logits, fold_features, category_ids) to OUT/eval.npz.

example:  fathom predict runs/default --comp /kaggle/input/fathomnet-out-of-sample-detection --out preds"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, e.g. runs/default")
    p.add_argument("--comp", required=True, help="competition folder whose eval images to predict")
    p.add_argument("--out", help="folder for eval.npz (default: the run folder)")
    p.add_argument("--cache-dir", default="cache", help="image cache folder (default cache)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: twice the run's)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.engine.predict import predict_run

    out = Path(args.out or args.run) / "eval.npz"
    path = predict_run(args.run, args.comp, out, args.cache_dir, args.device, args.batch_size)
    print(f"wrote {path}")
    return 0
