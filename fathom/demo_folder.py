"""`fathom demo --kind folder`: the fish study end to end on a synthetic folder dataset, on CPU.

scratch CNN vs transfer stage 1 (frozen EfficientNet-B0, head only) vs two-stage transfer
(stage 2 unfreezes the last blocks at a lower LR): the three packaged `fish_*` configs, cut to
CPU size, trained through the same engine as the multi-label flow, compared by `fathom
compare`, each written as an `id,label` submission and scored on the hidden test labels.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.synth_folder import FolderSynthConfig

# (run name, packaged config, CPU-sized overrides): epochs cut so the demo takes ~3 minutes
RUNS = (
    ("scratch_cnn", "fish_scratch", ["epochs=8", "lr=3e-3"]),
    ("effb0_frozen", "fish_effb0_frozen", ["epochs=4", "lr=3e-3"]),
    ("effb0_two_stage", "fish_effb0_finetune", ["epochs=6", "stage1_epochs=3", "stage1_lr=3e-3", "lr=3e-4"]),
)  # fmt: skip
# small images and few of them (largest class 66, smallest 6 train images) keep a CPU run short
DATA = FolderSynthConfig(smallest=6, size=32)


@dataclass(frozen=True)
class FolderDemo:
    workdir: Path
    seed: int = 0
    weights: str | None = (
        None  # ImageNet weights for efficientnet_b0: a file, or "hf" (the HF cache)
    )


def _say_weights(weights: str | None) -> str:
    if weights is None:
        return (
            "NOTE: pretrained weights cannot be downloaded here and none were given (--weights), so the\n"
            "      EfficientNet-B0 runs start from RANDOM init: 'frozen' means a frozen random network.\n"
            "      Their scores show the two-stage mechanics working, NOT what ImageNet transfer gives."
        )
    where = "the Hugging Face cache" if weights == "hf" else weights
    return f"EfficientNet-B0 runs start from ImageNet weights in {where} (random init, with a warning, if not found)"


def _submit(
    run_dir: Path, classes: pd.DataFrame, test_ids: pd.Series, out: Path, truth: Path
) -> dict:
    """Write the run's `id,label` submission from its eval predictions and score it."""
    from fathom.label_submission import (
        make_label_submission,
        score_label_files,
        write_label_submission,
    )

    preds = np.load(run_dir / "fold0" / "eval.npz")
    sub = make_label_submission(
        preds["ids"].astype(str).tolist(), preds["probs"], classes["name"].tolist()
    )
    manifest = {
        "run": str(run_dir),
        "predictions": str(run_dir / "fold0" / "eval.npz"),
        "checkpoint": "best.pt",
    }
    write_label_submission(out, sub, test_ids, classes["name"], manifest=manifest, overwrite=True)
    return score_label_files(out, truth)


def run_folder_demo(demo: FolderDemo) -> int:
    from fathom.compare import compare_runs, format_table
    from fathom.config import load_config
    from fathom.folder import (
        TRUTH_FILE,
        open_folder,
        read_classes,
        read_folder_data,
        read_folder_split,
    )
    from fathom.synth_folder import generate_folder
    from fathom.train import train_run

    start = time.perf_counter()
    work = demo.workdir
    data_dir = work / "fish"
    n_steps = len(RUNS) + 3
    if not (data_dir / TRUTH_FILE).exists():
        print(
            f"[1/{n_steps}] synth: writing a 31-class folder dataset (11:1 imbalance) to {data_dir}"
        )
        generate_folder(data_dir, dataclasses.replace(DATA, seed=demo.seed))
    else:
        print(f"[1/{n_steps}] synth: reusing {data_dir}")
    ds = open_folder(data_dir)
    classes = read_classes(ds)
    counts = classes["n_train"]
    print(
        f"      {len(classes)} classes, {counts.sum()} train images ({counts.min()} to {counts.max()} per class)"
    )
    print(_say_weights(demo.weights))

    pretrained = {None: "false", "hf": "true"}.get(demo.weights, demo.weights)
    common = [
        f"competition={data_dir}",
        f"cache_dir={work / 'cache'}",
        f"img_size={DATA.size}",
        "num_workers=0",
    ]
    run_dirs = []
    for step, (name, config, overrides) in enumerate(RUNS, start=2):
        extra = [] if name == "scratch_cnn" else [f"pretrained={pretrained}"]
        cfg = load_config(config, common + overrides + extra, name=name)
        print(f"[{step}/{n_steps}] train {name} ({config}.toml: {cfg.model}, {cfg.epochs} epochs"
              + (f", stage 1 {cfg.stage1_epochs}" if cfg.stage1_epochs else "") + ")")  # fmt: skip
        run_dirs.append(train_run(cfg, read_folder_data(cfg), work / "runs", [0], progress=False))

    step = len(RUNS) + 2
    print(
        f"[{step}/{n_steps}] compare: fathom compare {' '.join(map(str, run_dirs))} --out {work / 'compare'}"
    )
    table, notes = compare_runs(run_dirs, work / "compare")
    test_ids = read_folder_split(ds, "test", classes)["id"]
    scores = [
        _submit(d, classes, test_ids, work / "submissions" / f"{d.name}.csv", data_dir / TRUTH_FILE)
        for d in run_dirs
    ]
    table["test_acc"] = [s["accuracy"] for s in scores]
    table["test_f1"] = [s["macro_f1"] for s in scores]
    print(
        f"[{n_steps}/{n_steps}] submissions: {work / 'submissions'}/<run>.csv (id,label), scored on the hidden test labels"
    )
    print()
    print("validation (val/ folder) and test scores; train_min = minutes of training + validation")
    print(format_table(table.drop(columns=["folds"])))
    for note in notes:
        print(note)
    print(
        f"\nhistory plots: {work / 'compare' / 'history.png'}; confusion matrices: {work / 'compare'}/<run>/confusion.png"
    )
    if demo.weights is None:
        print("(EfficientNet-B0 rows: random init, no ImageNet weights; see the note above)")
    print(f"demo took {time.perf_counter() - start:.0f} s")
    return 0
