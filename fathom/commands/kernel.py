from __future__ import annotations

import argparse

HELP = "build, push and follow Kaggle kernels (inference and per-fold training)"
DESCRIPTION = """Kaggle kernels generated from fathom itself.

  build NAME   write kernels/<NAME>/ (kernel-metadata.json + NAME.py). The script installs
               fathom from the weights dataset with no internet and runs fathom's commands:
               --kind predict: `fathom predict` for each experiment of --tune FILE, then
                               `fathom submit` with that tuning to
                               /kaggle/working/submission.csv;
               --kind train:   `fathom train` of --config, one kernel per fold
                               (NAME-fold<k>), so K folds run as K Kaggle jobs at once;
               --kind prior:   the frequency-prior baseline (checks the machinery).
  push NAME    upload kernels/<NAME>/ and start it on Kaggle
  status REF   OWNER/NAME's state (queued, running, complete, error)
  output REF   download its outputs (submission.csv, logs); for a train kernel,
               `--out .` puts runs/<exp>/fold<k>/ straight into the local run folder

The generated script also runs here: set FATHOM_KAGGLE_INPUT to a folder laid out like
/kaggle/input (FATHOM_KAGGLE_WORKING for the outputs) and run `python kernels/NAME/NAME.py`.

examples:
  fathom kaggle upload-weights runs/effb0 runs/r50 --tune runs/tune-ab.json --dataset me/fathom-weights
  fathom kernel build fathom-predict --tune runs/tune-ab.json --dataset me/fathom-weights
  fathom kernel build fathom-train-effb0 --kind train --config effb0.toml --folds-file mlskf5.csv --n-folds 5
  fathom kernel push fathom-predict
  fathom kernel status me/fathom-predict
  fathom kernel output me/fathom-predict --out kernels/fathom-predict/output"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.kaggle.api import add_slug_argument

    sub = p.add_subparsers(dest="kernel_command", metavar="<action>", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    b = sub.add_parser(
        "build",
        help="write kernels/<name>/ (metadata + script)",
        formatter_class=fmt,
        description="Write a kernel folder. example:  fathom kernel build fathom-predict --tune runs/tune-ab.json",
    )
    b.add_argument("name", help="kernel slug: 5-50 lowercase letters, digits and dashes")
    b.add_argument(
        "--kind",
        choices=["predict", "train", "prior"],
        default="predict",
        help="what the kernel does (default predict)",
    )
    b.add_argument(
        "--tune",
        help="predict: the `fathom tune` file (uploaded with upload-weights --tune); its experiments are the runs",
    )
    b.add_argument(
        "--run",
        action="append",
        default=[],
        dest="runs",
        help="predict: run name inside the dataset (default: the --tune file's experiments)",
    )
    b.add_argument(
        "--config",
        help="train: config file name inside the dataset's configs/ (upload-weights --config)",
    )
    b.add_argument("--dataset", help="weights dataset OWNER/SLUG (default <owner>/fathom-weights)")
    b.add_argument(
        "--owner", help="your Kaggle user name (default from KAGGLE_USERNAME or kaggle.json)"
    )
    add_slug_argument(b)
    b.add_argument(
        "--images-dataset",
        help="OWNER/SLUG of a dataset holding the images, if the competition has none",
    )
    b.add_argument("--folds-file", help="train: folds CSV name inside the dataset's folds/")
    b.add_argument("--n-folds", type=int, help="train: build one kernel per fold 0..N-1")
    b.add_argument("--fold", type=int, help="train: build the kernel of this fold only")
    b.add_argument(
        "--arg",
        action="append",
        default=[],
        dest="extra_args",
        help="extra argument for the last command, `fathom submit` or `fathom train` (repeatable)",
    )
    b.add_argument("--cpu", action="store_true", help="no GPU")
    b.add_argument(
        "--machine-shape",
        default="NvidiaTeslaT4",
        help="Kaggle accelerator (default NvidiaTeslaT4)",
    )
    b.add_argument("--public", action="store_true", help="make the kernel public (default private)")
    b.add_argument("--out", default="kernels", help="parent folder (default kernels)")

    pu = sub.add_parser(
        "push",
        help="push kernels/<name>/ to Kaggle and run it",
        formatter_class=fmt,
        description="example:  fathom kernel push fathom-predict",
    )
    pu.add_argument("name", help="kernel folder name under --root, or a path to the folder")
    pu.add_argument("--root", default="kernels", help="parent folder (default kernels)")
    pu.add_argument("--timeout", type=int, help="maximum run time in seconds")

    st = sub.add_parser(
        "status",
        help="a kernel's state",
        formatter_class=fmt,
        description="example:  fathom kernel status me/fathom-predict",
    )
    st.add_argument("kernel", help="OWNER/NAME")

    out = sub.add_parser(
        "output",
        help="download a kernel's outputs",
        formatter_class=fmt,
        description="example:  fathom kernel output me/fathom-predict --out kernels/fathom-predict/output",
    )
    out.add_argument("kernel", help="OWNER/NAME")
    out.add_argument("--out", help="folder (default kernels/<NAME>/output)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.kaggle import api as kaggle_api
    from fathom.kaggle import kernels

    if args.kernel_command == "build":
        for spec in _specs(args):
            folder = kernels.build(spec, Path(args.out))
            print(
                f"wrote {folder}/ ({spec.kind} kernel {spec.owner}/{spec.name}; datasets: {spec.weights_dataset})"
            )
        return 0
    if args.kernel_command == "push":
        folder = Path(args.name) if Path(args.name).is_dir() else Path(args.root) / args.name
        kernels.read_metadata(folder)  # fail on a missing folder before connecting
        kernels.push(kaggle_api.connect(), folder, args.timeout)
        return 0
    if args.kernel_command == "status":
        kernels.status(kaggle_api.connect(), args.kernel)
        return 0
    dest = Path(args.out) if args.out else Path("kernels") / args.kernel.split("/")[-1] / "output"
    kernels.output(kaggle_api.connect(), args.kernel, dest)
    return 0


def _specs(args: argparse.Namespace) -> list:
    from fathom.errors import FathomError
    from fathom.kaggle.api import CREDENTIALS_HINT, default_owner
    from fathom.kaggle.kernels import KernelSpec

    owner = args.owner or default_owner()
    if not owner:
        raise FathomError(f"--owner needed (your Kaggle user name); or {CREDENTIALS_HINT}")
    common = dict(
        owner=owner,
        kind=args.kind,
        weights_dataset=args.dataset or f"{owner}/fathom-weights",
        competition=args.competition,
        images_dataset=args.images_dataset,
        runs=tuple(args.runs) or _tuned_runs(args.tune),
        config=args.config,
        folds_file=args.folds_file,
        extra_args=tuple(args.extra_args),
        gpu=not args.cpu and args.kind != "prior",  # the prior needs no accelerator
        machine_shape=None if args.cpu or args.kind == "prior" else args.machine_shape,
        private=not args.public,
    )
    if args.kind != "train":
        return [KernelSpec(name=args.name, **common)]
    if args.fold is not None:
        folds = [args.fold]
    elif args.n_folds:
        folds = list(range(args.n_folds))
    else:
        raise FathomError("a train kernel needs --fold K or --n-folds N")
    return [KernelSpec(name=f"{args.name}-fold{k}", fold=k, **common) for k in folds]


def _tuned_runs(tune: str | None) -> tuple[str, ...]:
    """The experiment names of a `fathom tune` file (the runs a predict kernel needs)."""
    import json
    from pathlib import Path

    from fathom.errors import FathomError

    if not tune:
        return ()
    try:
        data = json.loads(Path(tune).read_text(encoding="utf-8"))
        return tuple(str(e["name"]) for e in data["experiments"])
    except (OSError, ValueError, KeyError, TypeError):
        raise FathomError(
            f"{tune}: not a readable `fathom tune` file with named experiments"
        ) from None
