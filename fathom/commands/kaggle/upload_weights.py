from __future__ import annotations

import argparse

HELP = "upload runs' weights and a fathom wheel as a dataset"
DESCRIPTION = "Stage runs' config and best checkpoints, a wheel of fathom (so kernels install it offline) and dataset-metadata.json in kernels/datasets/<slug>/, then create the Kaggle dataset or add a version to it.\n\nexample:  fathom kaggle upload-weights runs/effb0 --dataset me/fathom-weights --notes 'effb0 5 folds'"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="*",
        help="run folders (runs/<exp>); none for a training-only dataset (--config, --folds)",
    )
    p.add_argument("--dataset", help="OWNER/SLUG (default <your user name>/fathom-weights)")
    p.add_argument(
        "--title", help="dataset title, 6-50 characters (default 'fathom weights <slug>')"
    )
    p.add_argument(
        "--folds",
        action="append",
        default=[],
        help="a folds CSV to include (training kernels need it; repeatable)",
    )
    p.add_argument(
        "--tune", help="the `fathom tune` file predict kernels submit with (stored as tune.json)"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        dest="configs",
        help="an experiment config a training kernel trains from: a .toml path or a name as `fathom train` takes it (stored in configs/; repeatable)",
    )
    p.add_argument(
        "--pretrained",
        metavar="DIR",
        help="`fathom weights fetch`'s folder: ImageNet weights training kernels use offline",
    )
    p.add_argument("--notes", default="", help="version notes (default: the runs and their CV)")
    p.add_argument("--public", action="store_true", help="a new dataset is public, not private")
    p.add_argument("--out", help="staging folder, new or fathom's (kernels/datasets/<slug>)")
    p.add_argument("--no-dep-wheels", action="store_true", help="ship no timm/hub/iterstrat wheels")
    p.add_argument("--dry-run", action="store_true", help="stage the folder; upload nothing")


def run(args: argparse.Namespace) -> int:
    from fathom.config import resolve_config_path
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import weights as weights_dataset

    # a packaged recipe by name (`--config fathomnet_effb0`), as `fathom train` takes it, so the
    # command works from any folder, not only from a checkout's root
    configs = [str(resolve_config_path(c)) for c in args.configs]
    # credentials first: staging copies gigabytes, which a missing kaggle.json would waste
    api = None if args.dry_run else kaggle_api.connect()
    staged = weights_dataset.stage_for_upload(
        args.runs,
        args.dataset,
        args.out,
        args.title,
        args.folds,
        args.tune,
        configs,
        args.notes,
        args.pretrained,
        dep_wheels=not args.no_dep_wheels,
    )
    print(staged.summary())
    if args.dry_run:
        print(
            f"dry run: would create or version {staged.dataset} from {staged.folder} "
            f"with notes: {staged.notes}"
        )
        return 0
    weights_dataset.upload(api, staged.folder, staged.dataset, staged.notes, args.public)
    return 0
