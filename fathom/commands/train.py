from __future__ import annotations

import argparse

HELP = "train one fold, every fold in turn, or a full fit of an experiment config"
DESCRIPTION = """Train a timm backbone (or fathom_cnn) on a competition, from an experiment config
(a TOML file; its file name is the run name) plus key=value overrides, each checked against
the config's fields (fathom/config.py lists them all). Writes runs/<exp>/config.json and, per
fold, runs/<exp>/fold<k>/{history.csv, best.pt, last.pt, oof.npz, eval.npz}. A killed run
resumes from last.pt when the same command is run again; finished folds are skipped.

CONFIG is a .toml path, or a name looked up as configs/<name>.toml, then among fathom's
packaged configs (`default`: a small CNN on the synthetic competition).

examples:
  fathom train default                                          (data/synth, folds/mlskf5.csv)
  fathom train default competition=demo/competition folds=demo/folds/mlskf3.csv n_folds=3
  fathom train mobilenet --fold 0 img_size=96 ema=true --name mobilenet96
  fathom train fathomnet_effb0 --gpus 0,1,2,3                  (4 folds at once, one per GPU)
  torchrun --nproc_per_node 4 -m fathom train fathomnet_effb0 --fold 0   (4 GPUs, DDP)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.cli import IntermixedParser

    p.__class__ = IntermixedParser  # overrides may come after the options
    p.add_argument("config", nargs="?", help="experiment config: a .toml path or a name (default)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides: lr=1e-3 epochs=5")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--fold", type=int, help="train only this fold (default: each fold in turn)")
    which.add_argument(
        "--full-fit",
        action="store_true",
        help="train on every training image (no validation) into runs/<exp>/full",
    )
    p.add_argument("--name", help="run name (default: the config file's name)")
    p.add_argument("--runs", default="runs", help="folder of runs (default runs)")
    p.add_argument(
        "--pretrained",
        nargs="?",
        const="true",
        metavar="FILE",
        help="start from pretrained weights: timm's default (no FILE; the HF cache, downloaded into it when online) or a weights FILE",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--gpus",
        help="e.g. 0,1,2,3: folds at once, one process per GPU; numbers count the GPUs this "
        "process sees (within CUDA_VISIBLE_DEVICES when set); GPU-/MIG- ids work too",
    )
    p.add_argument("--list", action="store_true", help="list the configs NAME finds, and stop")


def run(args: argparse.Namespace) -> int:
    from fathom.config import list_configs, load_config

    if args.list:
        for name, path, about in list_configs():
            print(f"{name:<22} {about[:70]:<70}  {path}")
        return 0
    overrides = list(args.overrides)
    if args.pretrained is not None:
        overrides.append(f"pretrained={args.pretrained}")
    cfg = load_config(args.config or "", overrides, name=args.name)  # none: the configs named
    from fathom.data import csvtable, read_data  # only now: --list, a bad key answer without torch
    from fathom.engine import distributed, multigpu
    from fathom.engine.train import train_run

    cfg = csvtable.adopt_task(cfg, overrides)  # a train.csv competition: softmax or sigmoid
    data = read_data(cfg, need_folds=not args.full_fit)
    folds = [None] if args.full_fit else [args.fold] if args.fold is not None else None
    folds = folds or list(range(cfg.n_folds))
    try:
        if args.gpus:  # each fold its own `fathom train --fold K` process on one GPU
            run_dir = multigpu.train_config_on_gpus(
                args.config, overrides, cfg.name, args.runs, folds, args.gpus, device=cfg.device
            )
        else:
            run_dir = train_run(cfg, data, args.runs, folds, progress=not args.no_progress)
    finally:
        distributed.finish()
    if args.fold is None and not args.full_fit:
        print(f"all folds trained; `fathom oof {run_dir}` stitches them and prints the CV score")
    return 0
