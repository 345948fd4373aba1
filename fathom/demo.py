"""`fathom demo --kind folder`: the fish study end to end on a synthetic folder dataset, on CPU.

scratch CNN vs transfer stage 1 (frozen pretrained backbone, head only) vs two-stage transfer
(stage 2 unfreezes the last blocks at a lower LR): the three packaged `fish_*` configs, cut to
CPU size, trained through the same engine as the multi-label flow, compared by `fathom
compare`, each written as an `id,label` submission and scored on the hidden test labels.

No ImageNet weights can be downloaded here, so without `--weights` the transfer runs start
from a backbone that fathom pretrains itself on a different task: a full fit of the synthetic
FathomNet competition (multi-label, 290 categories, the same shape/colour/texture drawing
vocabulary). Its weights, head dropped, go to a file that the transfer configs load through
the engine's `pretrained = "<path>"`. EfficientNet-B0 is too slow for that on a CPU, so the
demo's transfer backbone is MobileNetV3-Small (x0.5); with `--weights` the runs use
EfficientNet-B0 and the given ImageNet weights, as the packaged configs do.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom.synth.fathomnet import SynthConfig
from fathom.synth.imagefolder import FolderSynthConfig

# (run name, packaged config, CPU-sized overrides): epochs cut so the demo takes ~4 minutes
RUNS = (
    ("scratch_cnn", "fish_scratch", ["epochs=8", "lr=3e-3"]),
    # a frozen backbone's epochs cost ~1 s each at 32 px, so the head gets more of them
    ("transfer_frozen", "fish_effb0_frozen", ["epochs=12", "lr=1e-2"]),
    # MobileNetV3-Small's last stages are small: stage 2 unfreezes three, not two
    ("transfer_two_stage", "fish_effb0_finetune", ["epochs=16", "stage1_epochs=6", "stage1_lr=1e-2",
                                                   "lr=5e-3", "unfreeze_stages=3"]),
)  # fmt: skip
# small images and few of them (largest class 66, smallest 6 train images) keep a CPU run short
DATA = FolderSynthConfig(smallest=6, size=32)
# The pretraining task: the synthetic FathomNet competition, a different dataset (its own
# seed) and a different task (multi-label, 290 categories); a full fit needs no eval images.
PRETRAIN_DATA = SynthConfig(n_train=1500, n_eval=10, width=64, height=48)
# The demo's transfer backbone without --weights: quick on a CPU at 32 px (EfficientNet-B0 is
# about 10x slower there); pretrained by a full fit of the `mobilenet` engine config.
PRETRAIN_MODEL = "mobilenetv3_small_050"
PRETRAIN_OVERRIDES = ["epochs=15", "batch_size=32", "lr=5e-3"]  # ~75 s on 2 idle cores
PRETRAINED_BY = "pretrained by fathom on its synthetic FathomNet competition, not ImageNet"


@dataclass(frozen=True)
class FolderDemo:
    workdir: Path
    seed: int = 0
    weights: str | None = (
        None  # ImageNet weights for efficientnet_b0: a file, or "hf" (the HF cache)
    )


def _say_weights(weights: str | None, backbone_file: Path | None) -> str:
    if weights is None:
        return (
            f"NOTE: no ImageNet weights can be downloaded here and none were given (--weights), so the\n"
            f"      transfer runs use {PRETRAIN_MODEL} {PRETRAINED_BY}\n"
            f"      (a full fit of a different, multi-label task: {backbone_file}).\n"
            f"      They show what transfer from a related task gives, NOT what ImageNet transfer gives."
        )
    where = "the Hugging Face cache" if weights == "hf" else weights
    return f"EfficientNet-B0 runs start from ImageNet weights in {where} (random init, with a warning, if not found)"


def export_backbone(run_dir: Path, out: Path) -> Path:
    """The backbone weights of a finished full fit (`full/best.pt`) as a timm state dict with
    the head dropped: the file that `pretrained = "<path>"` loads under a new head."""
    import timm

    from fathom import fileio
    from fathom.engine.train import load_checkpoint

    checkpoint = load_checkpoint(run_dir / "full" / "best.pt")
    classifier = timm.models.get_pretrained_cfg(checkpoint["config"]["model"]).classifier
    prefix = "backbone."
    weights = {
        k[len(prefix) :]: v
        for k, v in checkpoint["model"].items()
        if k.startswith(prefix) and not k[len(prefix) :].startswith(f"{classifier}.")
    }
    return fileio.save_torch(out, weights)


def pretrain_backbone(work: Path, seed: int) -> Path:
    """Pretrain PRETRAIN_MODEL on the synthetic FathomNet competition (a full fit through the
    engine) and export its backbone; every part reused when already done."""
    from fathom.config import load_config
    from fathom.data.loader import read_data
    from fathom.engine.train import train_run
    from fathom.synth.fathomnet import TRUTH_FILE, generate

    out = work / "pretrained" / f"{PRETRAIN_MODEL}_synth_fathomnet.pth"
    if out.is_file():
        print(f"      reusing {out}")
        return out
    comp = work / "synth_fathomnet"
    if not (comp / TRUTH_FILE).exists():
        generate(comp, dataclasses.replace(PRETRAIN_DATA, seed=seed + 1), progress=False)
    overrides = [f"competition={comp}", f"cache_dir={work / 'cache'}", f"img_size={DATA.size}",
                 f"model={PRETRAIN_MODEL}", "num_workers=0", *PRETRAIN_OVERRIDES]  # fmt: skip
    cfg = load_config("mobilenet", overrides, name="pretrain_synth_fathomnet")
    print(f"      full fit of {cfg.model} on {comp} ({PRETRAIN_DATA.n_train} images, 290 categories, {cfg.epochs} epochs)")  # fmt: skip
    run_dir = train_run(
        cfg, read_data(cfg, need_folds=False), work / "runs", [None], progress=False
    )
    return export_backbone(run_dir, out)


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
    from fathom.data.imagefolder import (
        TRUTH_FILE,
        open_folder,
        read_classes,
        read_folder_data,
        read_folder_split,
    )
    from fathom.engine.train import train_run
    from fathom.synth.imagefolder import generate_folder

    start = time.perf_counter()
    work = demo.workdir
    data_dir = work / "fish"
    n_steps = len(RUNS) + 4
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
    if demo.weights is None:
        print(f"[2/{n_steps}] pretrain: {PRETRAIN_MODEL} on the synthetic FathomNet competition (no ImageNet here)")  # fmt: skip
        backbone_file = pretrain_backbone(work, demo.seed)
        transfer = [f"model={PRETRAIN_MODEL}", f"pretrained={backbone_file}"]
    else:
        print(f"[2/{n_steps}] pretrain: skipped, ImageNet weights given (--weights)")
        backbone_file = None
        transfer = ["pretrained=" + {"hf": "true"}.get(demo.weights, demo.weights)]
    print(_say_weights(demo.weights, backbone_file))

    common = [
        f"competition={data_dir}",
        f"cache_dir={work / 'cache'}",
        f"img_size={DATA.size}",
        "num_workers=0",
    ]
    run_dirs = []
    for step, (name, config, overrides) in enumerate(RUNS, start=3):
        extra = [] if name == "scratch_cnn" else transfer
        if name != "scratch_cnn" and demo.weights is not None:
            name = name.replace("transfer", "effb0")  # another run than the synth-pretrained one
        cfg = load_config(config, common + overrides + extra, name=name)
        print(f"[{step}/{n_steps}] train {name} ({config}.toml: {cfg.model}, {cfg.epochs} epochs"
              + (f", stage 1 {cfg.stage1_epochs}" if cfg.stage1_epochs else "") + ")")  # fmt: skip
        run_dirs.append(train_run(cfg, read_folder_data(cfg), work / "runs", [0], progress=False))

    step = len(RUNS) + 3
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
        print(f"(transfer rows: {PRETRAIN_MODEL} {PRETRAINED_BY}: {backbone_file})")
    print(f"demo took {time.perf_counter() - start:.0f} s")
    return 0
