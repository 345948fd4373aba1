from __future__ import annotations

import argparse

HELP = "predict the eval images of any competition folder with every fold's best checkpoint"
DESCRIPTION = """Load runs/<exp>/fold<k>/best.pt of every fold (and full/ when present), predict
the eval images of COMP (e.g. the real hidden test set inside a Kaggle kernel), and write them
in the run-level eval.npz format: ids, probs and logits averaged over the checkpoints,
fold_probs, fold_logits, fold_features (one row per checkpoint), folds (each row's fold
number; -1 for the full fit, which has no OOF rows), checkpoints, tta and category_ids.

The file goes to predictions/<comp>/<exp>/eval.npz (<comp>: COMP's folder name), where
`fathom submit TUNE --predictions predictions/<comp>` finds it, or to OUT/eval.npz with
--out; either way the run's own runs/<exp>/eval.npz (from `fathom oof`) is left alone
unless OUT is the run folder, and an existing eval.npz is never replaced unless --overwrite.
When some of the run's n_folds folds have no best.pt, a warning names them.

--tiles N also predicts an N x N grid of overlapping tiles cut from each full-resolution
frame (cached once per grid and size) and blends: probs = (1 - blend) * whole frame + blend *
max over tiles. logits and features stay the whole frame's (the osd scorers pair them with
OOF rows).

examples:
  fathom predict runs/default --comp data/synth
  fathom predict runs/default --comp data/synth --tta --overwrite
  fathom predict runs/default --comp data/synth --tiles 3 --tile-blend 0.5 --out preds-tiled
  fathom predict runs/default --comp /kaggle/input/fathomnet-out-of-sample-detection --out preds"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.cli import positive_int

    p.add_argument("run", help="run folder, e.g. runs/default")
    p.add_argument("--comp", required=True, help="competition folder whose eval images to predict")
    p.add_argument(
        "--out", help="folder for eval.npz (default predictions/<comp folder name>/<run name>)"
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="average with the horizontal flip, or not (default: the run's config value)",
    )
    p.add_argument(
        "--tiles",
        type=int,
        help="also an N x N grid of overlapping tiles; 0 = off (default: run's)",
    )
    p.add_argument("--tile-overlap", type=float, help="share of a tile's side its neighbour sees")
    p.add_argument("--tile-blend", type=float, help="weight of the max over tiles, in [0, 1]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing eval.npz")
    p.add_argument("--cache-dir", default="cache", help="image cache folder (default cache)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--batch-size", type=positive_int, help="images per batch (default: twice the run's)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.engine.precision import gpu_errors
    from fathom.engine.predict import predict_run

    out = Path(args.out) / "eval.npz" if args.out else None
    # a GPU's out-of-memory or "no kernel image" as one line saying what to change
    with gpu_errors(f"fathom predict {args.run}", args.device, "--batch-size"):
        path = predict_run(
            args.run,
            args.comp,
            out,
            args.cache_dir,
            args.device,
            args.batch_size,
            tta=args.tta,
            overwrite=args.overwrite,
            tiles=args.tiles,
            tile_overlap=args.tile_overlap,
            tile_blend=args.tile_blend,
        )
    print(f"wrote {path}")
    return 0
