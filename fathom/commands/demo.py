from __future__ import annotations

import argparse

HELP = "run the whole flow on a synthetic competition, on CPU, and score it"
DESCRIPTION = """Run fathom end to end with no download: write a synthetic competition,
assign folds, write submissions and score them against the hidden truth. Everything goes
under WORKDIR (default demo/); rerunning reuses what is already there.

With --kind folder it runs the single-label folder study instead (under WORKDIR/folder/): a
synthetic 31-class folder dataset, a scratch CNN vs a frozen EfficientNet-B0 vs a two-stage
fine-tune, `fathom compare` on the three, and scored `id,label` submissions (~3 min on CPU).

example:  fathom demo --workdir demo
example:  fathom demo --kind folder"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="demo", help="folder for everything the demo writes (default demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic competition (default 0)")
    p.add_argument("--kind", choices=["fathomnet", "folder"], default="fathomnet", help="fathomnet: the multi-label flow (default); folder: the single-label folder study")
    p.add_argument("--weights", help="--kind folder: ImageNet weights for efficientnet_b0, a file or `hf` (the Hugging Face cache); default: none (random init)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.kind == "folder":
        from fathom.demo_folder import FolderDemo, run_folder_demo

        return run_folder_demo(FolderDemo(Path(args.workdir) / "folder", args.seed, args.weights))

    import pandas as pd

    from fathom import fileio
    from fathom.commands.prior import write_prior
    from fathom.competition import open_competition, read_split
    from fathom.folds import assign_folds, spread_report
    from fathom.scoring import score_files
    from fathom.synth import TRUTH_FILE, SynthConfig, generate

    work = Path(args.workdir)
    comp_dir = work / "competition"
    if not (comp_dir / "category_key.csv").exists():
        print(f"[1/4] synth: writing a synthetic competition to {comp_dir}")
        generate(comp_dir, SynthConfig(seed=args.seed))
    else:
        print(f"[1/4] synth: reusing {comp_dir}")
    folds_path = work / "folds" / "mlskf5.csv"
    train = read_split(open_competition(comp_dir), "train")
    if not folds_path.exists():
        folds = assign_folds(train, 5, 42)
        fileio.write_csv(folds_path, folds)
        print(f"[2/4] folds: wrote {folds_path}")
        print(spread_report(train, folds, 5, 42).to_string(index=False))
    else:
        print(f"[2/4] folds: reusing {folds_path}")
    prior_path = work / "submissions" / "prior.csv"
    write_prior(comp_dir, prior_path, overwrite=True)
    print(f"[3/4] submission: wrote the frequency prior to {prior_path}")
    result = score_files(prior_path, comp_dir / TRUTH_FILE)
    table = pd.DataFrame([{"model": "frequency prior", **{k: round(v, 4) for k, v in result.items()}}])
    print("[4/4] score against the hidden eval truth:")
    print(table.to_string(index=False))
    return 0
