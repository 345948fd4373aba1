"""Does the demo's ensemble beat its best member by more than the training noise? Run the
multi-label demo (`fathom demo`) once per training seed, on the same synthetic competition and
folds, and print each member's and the ensemble's CV and eval MAP@20, the ensemble's gain over
its best member on CV, and the spread (half the range) of each across seeds.

    python scripts/demo_seeds.py                       # seeds 42 (the demo's), 1, 2: ~8 min
    python scripts/demo_seeds.py --seeds 42 1 2 3 --workdir demo-seeds

The training seed changes the models' initial weights and batch order, not the data or the
folds. Each seed's demo lives in WORKDIR/seed<N> and reuses its finished stages on a rerun.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom import fileio  # noqa: E402
from fathom.demo import run_multilabel  # noqa: E402


def spread(values: pd.Series) -> float:
    return float(values.max() - values.min()) / 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    p.add_argument("--workdir", default="demo-seeds")
    args = p.parse_args(argv)
    rows = []
    for seed in args.seeds:
        table = run_multilabel(Path(args.workdir) / f"seed{seed}", train_seed=seed)
        table = table[table["model"] != "frequency prior"]
        for _, r in table.iterrows():
            rows.append(
                {
                    "seed": seed,
                    "model": r["model"],
                    "cv": r["CV MAP@20"],
                    "eval": r["eval MAP@20"],
                }
            )
    frame = pd.DataFrame(rows)
    fileio.write_csv(Path(args.workdir) / "demo_seeds.csv", frame)
    cv = frame.pivot(index="seed", columns="model", values="cv")
    ev = frame.pivot(index="seed", columns="model", values="eval")
    members = [c for c in cv.columns if c != "ensemble"]
    gain = cv["ensemble"] - cv[members].max(axis=1)
    print("\nCV MAP@20 by training seed:")
    print(cv.round(4).to_string())
    print("\neval MAP@20 by training seed:")
    print(ev.round(4).to_string())
    print(f"\n{len(args.seeds)} seeds: mean ± half-range")
    summary = pd.DataFrame(
        {
            "CV MAP@20": [f"{cv[c].mean():.4f} ± {spread(cv[c]):.4f}" for c in cv.columns],
            "eval MAP@20": [f"{ev[c].mean():.4f} ± {spread(ev[c]):.4f}" for c in cv.columns],
        },
        index=cv.columns,
    )
    print(summary.to_string())
    widest = max(spread(cv[c]) for c in members)
    print(
        f"\nensemble - best member, CV: {', '.join(f'{g:+.4f}' for g in gain)} "
        f"(mean {gain.mean():+.4f} ± {spread(gain):.4f}); the widest member spread "
        f"across seeds is {widest:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
