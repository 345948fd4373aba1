"""Which accuracy levers pay? Train a baseline, each lever alone and all together on the
realistic synthetic competition (small organisms in a wide frame, look-alike species,
occlusion, a deep out-of-sample shift), with the same folds, for several seeds, and print CV
MAP@20, eval MAP@20 and eval sAUC against the hidden truth, with the spread across seeds.

    python scripts/ablation.py                    # CPU size, 2 seeds, about 30 minutes
    python scripts/ablation.py --size gpu --seeds 3 --device cuda
    python scripts/ablation.py --levers baseline crops tiles   # a subset

Every variant goes through fathom's own stages (train every fold, oof, predict, tune on the
one run with a fixed osd scorer so sAUC is comparable across variants, submit, score), and
each finished stage is reused on a rerun (delete --workdir to start over). A lever is a set
of config overrides (training) and prediction options; `pseudo` trains a second round from
the baseline of the same seed; `knn` tunes the baseline's run with its kNN member (`fathom
tune --knn`), and `all` adds it too. The seed changes the model's initialisation and the order of
batches, not the data or the folds, so the spread is the training noise a lever must beat.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom import fileio  # noqa: E402
from fathom.config import load_config  # noqa: E402
from fathom.data import open_dataset, read_data  # noqa: E402
from fathom.data.folds import assign_folds  # noqa: E402
from fathom.engine.predict import predict_run  # noqa: E402
from fathom.engine.train import train_run  # noqa: E402
from fathom.oof import write_oof  # noqa: E402
from fathom.runs import read_tuning  # noqa: E402
from fathom.score import score_files  # noqa: E402
from fathom.submit import make  # noqa: E402
from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate  # noqa: E402
from fathom.tune import tune_runs, write_tuning  # noqa: E402

SIZES = {
    # ~2 minutes a variant on 2 CPU cores: whole 384x216 frames squashed to 64 px
    "cpu": {
        "synth": SynthConfig(n_train=480, n_eval=240, realistic=True, width=384, height=216),
        "train": ["model=fathom_cnn", "img_size=64", "epochs=5", "batch_size=32", "lr=3e-3"],
        "folds": 3,
    },
    # a real backbone at a real resolution
    "gpu": {
        "synth": SynthConfig(n_train=3000, n_eval=1500, realistic=True, width=768, height=432),
        "train": [
            "model=resnet18",
            "img_size=224",
            "epochs=12",
            "batch_size=64",
            "lr=1e-3",
            "pretrained=false",
        ],
        "folds": 5,
    },
}
# lever -> (training overrides, prediction options); `all` is the union
LEVERS = {
    "baseline": ([], {}),
    "crops": (["crop_rate=0.5"], {}),
    "tiles": ([], {"tiles": 2}),
    "mix": (["mixup=0.4", "cutmix=1.0", "mix_prob=0.5"], {}),
    "colour": (["hue=0.05", "saturation=0.3", "contrast=0.3", "auto_augment=trivial"], {}),
    "supercat": (["supercat_weight=0.5", "supercat_rank=0.3"], {}),
    "pseudo": (["pseudo_threshold=0.5"], {}),  # + pseudo_from: the seed's baseline
    "llrd": (["layer_decay=0.75"], {}),
    "knn": ([], {}),  # a tuning-time lever: the run's kNN member joins (`fathom tune --knn`)
}
TUNE_LEVERS = {"knn": {"knn": True}}
OSD_SCORER = "knn"  # fixed, so that sAUC compares the levers' features, not a scorer choice


def variant_settings(name: str) -> tuple[list[str], dict]:
    if name != "all":
        return LEVERS[name]
    overrides, options = [], {}
    for lever, (o, p) in LEVERS.items():
        # box crops and pseudo-labels do not combine yet (config.check): `all` keeps pseudo
        if lever not in ("baseline", "crops"):
            overrides += o
            options |= p
    return overrides, options


def run_variant(work: Path, name: str, seed: int, size: dict, device: str) -> dict:
    comp, cache = work / "competition", work / "cache"
    runs = work / "runs" / f"seed{seed}"
    # a tuning-time lever reuses the baseline's run and predictions, with a tuning of its own
    trained = "baseline" if name in TUNE_LEVERS else name
    exp = runs / trained
    overrides, options = variant_settings(trained)
    overrides = [
        *size["train"],
        *overrides,
        f"competition={comp}",
        f"folds={work / 'folds.csv'}",
        f"n_folds={size['folds']}",
        f"cache_dir={cache}",
        f"seed={seed}",
        f"device={device}",
        "num_workers=0",
    ]
    if name in ("pseudo", "all"):
        overrides.append(f"pseudo_from={runs / 'baseline'}")
    t0 = time.perf_counter()
    # finished folds are skipped (a fold from before kNN banks only gets its bank)
    cfg = load_config("default", overrides, name=trained)
    train_run(cfg, read_data(cfg), runs, list(range(size["folds"])), progress=False)
    if not (exp / "cv.json").exists():
        write_oof(exp)
    preds = work / "predictions" / f"seed{seed}"
    if not (preds / trained / "eval.npz").exists():
        predict_run(exp, comp, preds / trained / "eval.npz", cache, device=device, **options)
    tune_path = exp / ("tune.json" if trained == name else f"tune-{name}.json")
    if not tune_path.exists():
        tuning = {} if name != "all" else {"knn": True}
        tuning |= TUNE_LEVERS.get(name, {})
        write_tuning(tune_path, tune_runs([exp], comp=comp, osd_name=OSD_SCORER, **tuning))
    subs = work / "submissions" / f"seed{seed}"
    if not (subs / f"{name}.csv").exists():
        make(read_tuning(tune_path), name, comp, preds, out_dir=subs)
    scores = score_files(subs / f"{name}.csv", comp / TRUTH_FILE)
    ens = read_tuning(tune_path)["ensemble"]  # the tuned CV: a tuning lever changes it
    return {
        "lever": name,
        "seed": seed,
        "cv_map20": ens["scores"][ens["method"]],
        "eval_map20": scores["map20"],
        "eval_sauc": scores["sauc"],
        "seconds": time.perf_counter() - t0,
    }


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (half the range) across seeds, and the mean's gain over the baseline."""
    metrics = ["cv_map20", "eval_map20", "eval_sauc"]
    agg = rows.groupby("lever", sort=False)[metrics].agg(
        ["mean", lambda x: (x.max() - x.min()) / 2]
    )
    out = pd.DataFrame(index=agg.index)
    base = agg.loc["baseline"] if "baseline" in agg.index else None
    for m in metrics:
        out[m] = (
            agg[(m, "mean")].map(lambda v: f"{v:.4f}")
            + " ± "
            + agg[(m, "<lambda_0>")].map(lambda v: f"{v:.4f}")
        )
        if base is not None:
            out[f"{m} gain"] = (agg[(m, "mean")] - base[(m, "mean")]).map(lambda v: f"{v:+.4f}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", choices=sorted(SIZES), default="cpu")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per variant (default 2)")
    p.add_argument(
        "--levers",
        nargs="+",
        default=[*LEVERS, "all"],
        choices=[*LEVERS, "all"],
        help="variants to run (default: baseline, each lever, all)",
    )
    p.add_argument("--workdir", default="ablation", help="everything goes here (default ablation)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, help="epochs per fold (default: the size's)")
    args = p.parse_args(argv)
    size, work = dict(SIZES[args.size]), Path(args.workdir)
    if args.epochs:  # a longer run: do the levers pay once the baseline has converged?
        size["train"] = [*size["train"], f"epochs={args.epochs}"]
    comp = work / "competition"
    if not (comp / "category_key.csv").exists():
        generate(comp, size["synth"], progress=False)
    if not (work / "folds.csv").exists():  # the same folds for every variant and seed
        train = open_dataset(comp).split("train")
        fileio.write_csv(work / "folds.csv", assign_folds(train, size["folds"], 42))
    levers = ["baseline", *[v for v in args.levers if v != "baseline"]]  # pseudo needs it
    rows = []
    for seed in range(args.seeds):
        for name in levers:
            row = run_variant(work, name, seed, size, args.device)
            rows.append(row)
            print(
                f"seed {seed} {name:9s} CV MAP@20 {row['cv_map20']:.4f}  eval MAP@20 "
                f"{row['eval_map20']:.4f}  eval sAUC {row['eval_sauc']:.4f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
    table = pd.DataFrame(rows)
    fileio.write_csv(work / "ablation.csv", table)
    print(f"\n{args.seeds} seeds, mean ± half-range; osd scorer {OSD_SCORER} for every variant")
    print(summarise(table).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
