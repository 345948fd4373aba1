"""The whole flow at FathomNet's size, timed stage by stage: synth, cache, 5 folds x the three
recipes x a few epochs, oof, tune, submit; then the training time extrapolated to the recipes'
15 epochs.

    python scripts/bench_flow.py --device cuda                 # FathomNet-sized, full-HD frames
    python scripts/bench_flow.py --size cpu                    # a few minutes on a CPU
    python scripts/bench_flow.py --device cuda --epochs 3 --recipes fathomnet_r50

The competition is fathom's synthetic one at the real counts (5,950 train, 10,744 eval images)
and frame size (1920x1080), so caching does the real decoding work. Recipes train with
`pretrained=false`: the speed of a step does not depend on the weights, and the benchmark must
not need the network. Target (issue 10): 5 folds x 3 recipes x 15 epochs within 15 minutes on
one H100. `make gpu-check` runs the benchmarks of the training step; this one is the whole flow.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom import fileio  # noqa: E402
from fathom.config import load_config  # noqa: E402
from fathom.data import open_dataset, read_data  # noqa: E402
from fathom.data.cache import cache_dataset  # noqa: E402
from fathom.data.folds import assign_folds  # noqa: E402
from fathom.engine.train import train_run  # noqa: E402
from fathom.oof import write_oof  # noqa: E402
from fathom.runs import read_tuning  # noqa: E402
from fathom.submit import make  # noqa: E402
from fathom.synth.fathomnet import SynthConfig, generate  # noqa: E402
from fathom.tune import tune_runs, write_tuning  # noqa: E402

RECIPES = ("fathomnet_effb0", "fathomnet_r50", "fathomnet_d121")
SIZES = {
    "real": {"synth": SynthConfig(n_train=5950, n_eval=10744, width=1920, height=1080), "px": 256},
    # the same flow, small enough for a CPU: tiny frames, tiny images, few of them
    "cpu": {"synth": SynthConfig(n_train=120, n_eval=60, width=128, height=96), "px": 32},
}
RECIPE_EPOCHS = 15


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", choices=sorted(SIZES), default="real")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fold (default 2)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES))
    p.add_argument("--workdir", default="bench_flow", help="reused on a rerun (default bench_flow)")
    p.add_argument(
        "--frame",
        help="synthetic frame WxH (default: 1920x1080 for --size real); drawing 16,694 full-HD "
        "frames takes the better part of an hour on one core, so a quick check may pass 640x360",
    )
    args = p.parse_args(argv)
    size, work = dict(SIZES[args.size]), Path(args.workdir)
    if args.frame:
        w, h = (int(v) for v in args.frame.lower().split("x"))
        size["synth"] = dataclasses.replace(size["synth"], width=w, height=h)
    comp, runs, cache = work / "competition", work / "runs", work / "cache"
    seconds: dict[str, float] = {}

    def timed(stage: str, fn, *a, **kw):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t0
        print(f"{stage}: {seconds[stage]:.1f} s", flush=True)
        return out

    if not (comp / "category_key.csv").exists():
        timed("synth", generate, comp, size["synth"])
    timed("cache", cache_dataset, comp, size["px"], cache)
    folds_path = work / "folds.csv"
    if not folds_path.exists():
        train = open_dataset(comp).split("train", require_images=False)
        fileio.write_csv(folds_path, assign_folds(train, args.folds, 42))
    small = ["img_size=32", "cache_size=32", "batch_size=16"] if args.size == "cpu" else []
    for recipe in args.recipes:
        overrides = [
            f"competition={comp}",
            f"folds={folds_path}",
            f"n_folds={args.folds}",
            f"cache_dir={cache}",
            f"epochs={args.epochs}",
            "stage1_epochs=1" if args.epochs > 1 else "stage1_epochs=0",
            "pretrained=false",
            f"device={args.device}",
            *small,
        ]
        cfg = load_config(recipe, overrides, name=recipe)
        timed(f"train {recipe}", train_run, cfg, read_data(cfg), runs, list(range(args.folds)))
        timed("oof", write_oof, runs / recipe)
    tune_path = work / "tune.json"
    result = timed("tune", tune_runs, [runs / r for r in args.recipes], comp=comp, osd_name="knn")
    write_tuning(tune_path, result, overwrite=True)
    timed("submit", make, read_tuning(tune_path), "bench", comp, out_dir=work, overwrite=True)

    train_s = sum(v for k, v in seconds.items() if k.startswith("train "))
    scale = RECIPE_EPOCHS / args.epochs
    print(f"\n{'stage':28s} seconds")
    for stage, s in seconds.items():
        print(f"{stage:28s} {s:8.1f}")
    print(
        f"\ntraining, {len(args.recipes)} recipes x {args.folds} folds x {args.epochs} epochs: "
        f"{train_s / 60:.1f} min; at {RECIPE_EPOCHS} epochs about {train_s * scale / 60:.1f} min "
        "(target on one H100: 15 min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
