from __future__ import annotations

import argparse

HELP = "talk to Kaggle: download the competition, submit, list scores, upload weights"
DESCRIPTION = """Kaggle's side of the flow, through the kaggle package's KaggleApi.

  download         the competition's files, unzipped (safely) and checked
  submit FILE      validate FILE, then upload it with its manifest's CV score in the message
  submissions      your latest submissions and their scores
  upload-weights   runs' checkpoints + configs + a wheel of fathom as a Kaggle dataset

Credentials: a token from https://www.kaggle.com/settings/api saved as ~/.kaggle/kaggle.json
(chmod 600), or KAGGLE_USERNAME and KAGGLE_KEY in the environment. A 403 usually means the
competition's rules are not accepted yet (on its Kaggle page).

examples:
  fathom kaggle download --out data/fathomnet
  fathom kaggle submit submissions/blend.csv --comp data/fathomnet --dry-run
  fathom kaggle submissions
  fathom kaggle upload-weights runs/effb0 runs/r50 --dataset me/fathom-weights"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    sub = p.add_subparsers(dest="kaggle_command", metavar="<action>", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    d = sub.add_parser(
        "download",
        help="download and unzip the competition files",
        formatter_class=fmt,
        description="Download the competition's archive through KaggleApi, unzip it (no member may land outside OUT) and check the expected files.\n\nexample:  fathom kaggle download --out data/fathomnet",
    )
    add_slug_argument(d)
    d.add_argument(
        "--out",
        default="data/fathomnet",
        help="competition folder to fill (default data/fathomnet)",
    )
    d.add_argument(
        "--force", action="store_true", help="download again even if the files are there"
    )

    s = sub.add_parser(
        "submit",
        help="validate a submission and upload it",
        formatter_class=fmt,
        description="Validate FILE against COMP's eval set, then submit it with the CV score from FILE's manifest (FILE with .json) in the message.\n\nexample:  fathom kaggle submit submissions/blend.csv --comp data/fathomnet --dry-run",
    )
    s.add_argument("file", help="submission CSV (its manifest is the same name with .json)")
    s.add_argument(
        "--comp",
        help="competition folder to validate against (default: the manifest's `competition`)",
    )
    add_slug_argument(s)
    s.add_argument("-m", "--message", help="text added to the submission message")
    s.add_argument(
        "--dry-run", action="store_true", help="validate and show what would be sent; send nothing"
    )

    ls = sub.add_parser(
        "submissions",
        help="list your latest submissions and scores",
        formatter_class=fmt,
        description="Your latest submissions to the competition, newest first.\n\nexample:  fathom kaggle submissions -n 10",
    )
    add_slug_argument(ls)
    ls.add_argument("-n", type=int, default=20, help="how many (default 20)")

    u = sub.add_parser(
        "upload-weights",
        help="upload runs' weights and a fathom wheel as a dataset",
        formatter_class=fmt,
        description="Stage runs' config and best checkpoints, a wheel of fathom (so kernels install it offline) and dataset-metadata.json in kernels/datasets/<slug>/, then create the Kaggle dataset or add a version to it.\n\nexample:  fathom kaggle upload-weights runs/effb0 --dataset me/fathom-weights --notes 'effb0 5 folds'",
    )
    u.add_argument(
        "runs",
        nargs="*",
        help="run folders (runs/<exp>); none for a training-only dataset (--config, --folds)",
    )
    u.add_argument("--dataset", help="OWNER/SLUG (default <your user name>/fathom-weights)")
    u.add_argument(
        "--title", help="dataset title, 6-50 characters (default 'fathom weights <slug>')"
    )
    u.add_argument(
        "--folds",
        action="append",
        default=[],
        help="a folds CSV to include (training kernels need it; repeatable)",
    )
    u.add_argument(
        "--tune", help="the `fathom tune` file predict kernels submit with (stored as tune.json)"
    )
    u.add_argument(
        "--config",
        action="append",
        default=[],
        dest="configs",
        help="an experiment config a training kernel trains from (stored in configs/; repeatable)",
    )
    u.add_argument("--notes", default="", help="version notes (default: the runs and their CV)")
    u.add_argument(
        "--public", action="store_true", help="make a new dataset public (default private)"
    )
    u.add_argument("--out", help="staging folder (default kernels/datasets/<slug>)")
    u.add_argument(
        "--dry-run", action="store_true", help="stage the folder and stop; upload nothing"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.errors import FathomError
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import competition as kaggle_data

    if args.kaggle_command == "download":
        kaggle_data.download_competition(
            kaggle_api.connect(), args.competition, Path(args.out), args.force
        )
        return 0
    if args.kaggle_command == "submit":
        comp = args.comp or kaggle_data.read_manifest(Path(args.file)).get("competition")
        if not comp:
            raise FathomError(
                f"{args.file}: no manifest naming its competition folder; pass --comp"
            )
        api = None if args.dry_run else kaggle_api.connect()
        kaggle_data.submit(api, args.file, comp, args.competition, args.message, args.dry_run)
        return 0
    if args.kaggle_command == "submissions":
        table = kaggle_data.submissions_table(kaggle_api.connect(), args.competition, args.n)
        print(
            table.to_string(index=False)
            if len(table)
            else f"no submissions to {args.competition} yet"
        )
        return 0
    return _upload_weights(args)


def _upload_weights(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.errors import FathomError
    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import weights as weights_dataset

    dataset = args.dataset
    if not dataset:
        owner = kaggle_api.default_owner()
        if not owner:
            raise FathomError(f"--dataset OWNER/SLUG needed ({kaggle_api.CREDENTIALS_HINT})")
        dataset = f"{owner}/fathom-weights"
    _, slug = weights_dataset.check_dataset_id(dataset)
    out = Path(args.out) if args.out else Path("kernels") / "datasets" / slug
    runs = [Path(r) for r in args.runs]
    manifest = weights_dataset.stage(
        runs,
        dataset,
        out,
        args.title,
        folds=[Path(f) for f in args.folds],
        tune=Path(args.tune) if args.tune else None,
        configs=[Path(c) for c in args.configs],
    )
    total = sum(f["bytes"] for f in manifest["files"]) / 1e6
    print(f"staged {len(manifest['files'])} files ({total:.1f} MB) for {dataset} in {out}")
    notes = args.notes or "; ".join(
        [f"{r}: CV MAP@20 {manifest['cv_map20'].get(r)}" for r in manifest["runs"]]
        or [f"fathom {manifest['fathom_version']} for training kernels"]
    )
    if args.dry_run:
        print(f"dry run: would create or version {dataset} from {out} with notes: {notes}")
        return 0
    weights_dataset.upload(kaggle_api.connect(), out, dataset, notes, args.public)
    return 0
