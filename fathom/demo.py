"""`fathom demo`: the whole flow on a synthetic competition, on CPU, scored against its hidden
truth; and (`--kind folder`) the single-label folder study.

Both call the same library functions the subcommands call, in the order a user would run
them, and reuse every finished stage on a rerun (each stage checks for its output first).

The folder study: scratch CNN vs transfer stage 1 (frozen pretrained backbone, head only) vs
two-stage transfer (stage 2 unfreezes the last blocks at a lower LR): the three packaged
`fish_*` configs, cut to CPU size, trained through the same engine as the multi-label flow,
compared by `fathom compare`, each turned into an `id,label` submission by `fathom tune` +
`fathom submit` and scored on the hidden test labels. No ImageNet weights can be downloaded
here, so without `--weights` the transfer runs start from a backbone that fathom pretrains
itself on a different task: a full fit of the synthetic FathomNet competition (multi-label, 290
categories, the same shape/colour/texture drawing vocabulary). Its weights, head dropped, go
to a file that the transfer configs load through the engine's `pretrained = "<path>"`.
EfficientNet-B0 is too slow for that on a CPU, so the demo's transfer backbone is
MobileNetV3-Small (x0.5); with `--weights` the runs use EfficientNet-B0 and the given ImageNet
weights, as the packaged configs do.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom import osd as osd_lib
from fathom.config import TrainConfig, load_config
from fathom.data import open_dataset, read_data
from fathom.data.folds import assign_folds, spread_report
from fathom.data.imagefolder import TRUTH_FILE as FOLDER_TRUTH
from fathom.data.imagefolder import open_folder, read_classes
from fathom.engine.threads import FoldJob, StageClock, cpu_count, run_folds
from fathom.metrics import sauc
from fathom.oof import write_oof
from fathom.prior import write_prior
from fathom.report import build_report, compare_runs, format_table
from fathom.runs import read_tuning
from fathom.score import score_files
from fathom.submit import ensemble_eval, eval_osd, make
from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate
from fathom.synth.imagefolder import FolderSynthConfig, generate_folder
from fathom.tune import format_tuning, tune_runs, write_tuning

# The multi-label demo's members (issue 12's measurements, `scripts/demo_seeds.py`): the scratch
# CNN at 32 and at 48 px, both with the supercategory head, each also read as a kNN member on
# its own features (`tune --knn`, fathom/knn.py). lr 1e-3: at 3e-3 the CNN's CV moved by up to
# 0.06 from one training seed to the next. Two similar CNN heads barely ensemble (they fail on
# the same rare categories); their kNN members rank the rare categories the heads cannot, and
# ensemble. Each member trains with its own seed (the first the config's, the next one more):
# members of one seed share their initial luck and batch order, and fail alike. Over training
# seeds 42, 1, 2 the ensemble's CV MAP@20 was 0.5855 +- 0.0079 against its best member's
# (48 px kNN) 0.5737 +- 0.0061, and eval MAP@20 0.410, 2.1x the frequency prior's.
# From random init: no download.
SUPERCAT = ("supercat_weight=0.5", "supercat_rank=0.3")
DEMO_MODELS = (
    ("cnn", "default", (*SUPERCAT, "epochs=12", "lr=1e-3")),
    ("cnn48", "default", (*SUPERCAT, "epochs=10", "img_size=48", "lr=1e-3")),
)
# 3 folds, not 5: each fold model trains on 2/3 of the images and there are fewer of them,
# which halves the training time of the demo.
DEMO_FOLDS = 3
# The held-out-category run costs a training run: one model on one fold only.
HOLDOUT_MODEL = "cnn"  # the held-out run's features are those of the first member
HOLDOUT_FOLDS = (0,)
HOLDOUT_SHARE = 0.2  # about this share of training images hold a held-out category

# The time estimate printed at the start, from CPU seconds measured on the project's 2-core
# machine (AMD EPYC, AVX512-BF16), one torch thread per fold: a fold model costs about
# CPU_S_PER_PIXEL_EPOCH x epochs x img_size^2 (600 training images, 300 validated each
# epoch, then its OOF, eval and bank predictions), plus a worker's start; the stages after
# training (oof, tune, submit, score, report) about REST_CPU_S in all, on one core.
CPU_S_PER_PIXEL_EPOCH = {"bf16": 1.9e-3, "off": 2.3e-3}
FOLD_START_CPU_S = 3.0
REST_CPU_S = 40.0


def cpu_amp() -> str:
    """`bf16` where the CPU computes in bf16 natively (AVX512-BF16, AMX), else `off`. On this
    project's machine a 48 px fold of the demo's CNN took 0.65-0.78x float32's CPU time
    (32 px: about the same), the same fold reached the same validation MAP@20 (0.4957
    against 0.4956), and the whole demo cut its CPU time from 332 s to about 298 s; without
    the instructions bf16 is emulated, and slower than float32."""
    import torch

    native = [
        getattr(torch.cpu, f, None) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    return "bf16" if any(f is not None and f() for f in native) else "off"


def estimate_seconds(costs: list[float], workers: int, amp: str) -> float:
    """Wall seconds the demo should take on `workers` idle cores: fold models of these costs
    (epochs x img_size^2) shared out between them, then the stages after training."""
    train = sum(FOLD_START_CPU_S + CPU_S_PER_PIXEL_EPOCH[amp] * cost for cost in costs)
    return train / max(1, min(workers, len(costs) or 1)) + REST_CPU_S


def _pending_costs(runs: Path) -> list[float]:
    """The cost of each fold model the demo still has to train (a finished run is reused)."""
    costs = []
    for name, config, extra in DEMO_MODELS:
        cfg = load_config(config, list(extra), name=name)
        cost = cfg.epochs * cfg.img_size**2
        if not (runs / name / "cv.json").exists():
            costs += [cost] * DEMO_FOLDS
        if name == HOLDOUT_MODEL and not (runs / f"{name}-holdout" / "cv.json").exists():
            costs += [cost] * len(HOLDOUT_FOLDS)
    return costs


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{max(10, round(seconds, -1)):.0f} s"
    return f"{seconds / 60:.1f} minutes"


def _stage(n: int, total: int, text: str, clock: StageClock | None = None, name: str = "") -> None:
    if clock is not None:
        clock.begin(name or text.split(":")[0])
    print(f"\n[{n}/{total}] {text}", flush=True)


def _fold_job(config: str, args, name: str, work: Path, fold: int) -> FoldJob:
    """`fathom train CONFIG ARGS... --name NAME --fold FOLD` as a job for a fold worker, its
    output to WORKDIR/logs/NAME-foldK.log; its cost is epochs x pixels."""
    cfg = load_config(config, list(args), name=name)
    log = work / "logs" / f"{name}-fold{fold}.log"
    cost = cfg.epochs * max(cfg.img_size, 1) ** 2
    return FoldJob(config, tuple(args), name, str(work / "runs"), fold, str(log), cost)


def _build_caches(jobs: list[FoldJob]) -> None:
    """Every image cache the jobs read, built here first: fold workers started together
    must not each build the same one."""
    from fathom.data.cache import build_cache

    done = set()
    for job in jobs:
        cfg = load_config(job.config, list(job.overrides), name=job.name)
        size = cfg.cache_size or cfg.img_size
        if not size or (cfg.competition, size) in done:
            continue  # img_size 0: the model's own size, known once it is built (the worker)
        done.add((cfg.competition, size))
        data = read_data(cfg)
        build_cache(data.train, cfg.cache_dir, size, f"{data.name}-train")
        if len(data.eval):
            build_cache(data.eval, cfg.cache_dir, size, f"{data.name}-eval")


def _say_fold_done(job: FoldJob, seconds: dict) -> None:
    fold_dir = Path(job.runs) / job.name / f"fold{job.fold}"
    history = (
        pd.read_csv(fold_dir / "history.csv") if (fold_dir / "history.csv").is_file() else None
    )
    line = f"{job.name} fold{job.fold}: {seconds['wall_s']:.0f} s (CPU {seconds['cpu_s']:.0f} s)"
    if history is not None and len(history) and "val_map20" in history:
        best = history.loc[history["val_map20"].idxmax()]
        line += (
            f", {len(history)} epochs, best val MAP@20 {best['val_map20']:.4f} "
            f"(epoch {int(best['epoch'])})"
        )
    print(f"{line}; log {job.log}", flush=True)


def run_multilabel(work, seed: int = 0, train_seed: int | None = None) -> pd.DataFrame:
    """The multi-label flow on a synthetic FathomNet-like competition; returns the score table.
    `seed` makes the competition; `train_seed` (default: the config's) the first model's
    initial weights and batch order, and `train_seed + i` those of the i-th."""
    t0 = time.perf_counter()
    clock = StageClock()
    total = 9
    amp = cpu_amp()
    work = Path(work)
    comp_dir, runs, subs = work / "competition", work / "runs", work / "submissions"
    folds_path = work / "folds" / f"mlskf{DEMO_FOLDS}.csv"
    common = [
        f"competition={comp_dir}",
        f"folds={folds_path}",
        f"n_folds={DEMO_FOLDS}",
        f"cache_dir={work / 'cache'}",
        "device=cpu",
        f"amp={amp}",
    ]
    first_seed = TrainConfig.seed if train_seed is None else train_seed
    cores = cpu_count()
    estimate = estimate_seconds(_pending_costs(runs), cores, amp)
    print(
        f"fathom demo: about {_minutes(estimate)} on {cores} idle core(s) "
        f"({'bf16' if amp == 'bf16' else 'float32'}), longer while other programs use them; "
        f"everything goes under {work}"
    )

    _stage(1, total, "synth: a synthetic competition in the Kaggle layout", clock)
    if not (comp_dir / "category_key.csv").exists():
        generate(comp_dir, SynthConfig(seed=seed))
        print(f"wrote {comp_dir}")
    else:
        print(f"reusing {comp_dir}")

    _stage(2, total, f"folds: multilabel-stratified {DEMO_FOLDS}-fold", clock)
    train = open_dataset(comp_dir).split("train")
    if not folds_path.exists():
        folds = assign_folds(train, DEMO_FOLDS, 42)
        fileio.write_csv(folds_path, folds)
        print(spread_report(train, folds, DEMO_FOLDS, 42).to_string(index=False))
    else:
        print(f"reusing {folds_path}")

    names = [n for n, _, _ in DEMO_MODELS]
    held_name = f"{HOLDOUT_MODEL}-holdout"
    held = osd_lib.choose_holdout_categories(
        train["categories"].tolist(), share=HOLDOUT_SHARE, seed=seed
    )
    jobs = []
    for i, (name, config, extra) in enumerate(DEMO_MODELS):
        if not (runs / name / "cv.json").exists():
            args = (*common, *extra, f"seed={first_seed + i}")
            jobs += [_fold_job(config, args, name, work, k) for k in range(DEMO_FOLDS)]
    if not (runs / held_name / "cv.json").exists():
        config, extra = next((c, e) for n, c, e in DEMO_MODELS if n == HOLDOUT_MODEL)
        hold = "holdout_categories=" + ",".join(map(str, held))
        hold_seed = f"seed={first_seed + names.index(HOLDOUT_MODEL)}"
        args = (*common, *extra, hold, hold_seed)
        jobs += [_fold_job(config, args, held_name, work, k) for k in HOLDOUT_FOLDS]
    workers = min(cpu_count(), len(jobs)) or 1
    _stage(
        3,
        total,
        f"train: {', '.join(names)} on each of {DEMO_FOLDS} folds, and {held_name} (fold "
        f"{', '.join(map(str, HOLDOUT_FOLDS))}, some categories never shown: it chooses the "
        f"osd scorer honestly); {workers} fold(s) at a time, one per core",
        clock,
        "train",
    )
    if jobs:
        _build_caches(jobs)
        clock.begin(f"train: {len(jobs)} fold models")
        print(
            f"{len(jobs)} fold models, {workers} at a time; each writes its epochs to "
            f"{work / 'logs'}/<run>-fold<k>.log (follow one with tail -f)",
            flush=True,
        )
        run_folds(jobs, workers, done=_say_fold_done)
    else:
        print(f"reusing {', '.join(str(runs / n) for n in [*names, held_name])}")

    _stage(4, total, "oof: stitch each run's folds, CV MAP@20", clock)
    for name in names:
        if not (runs / name / "cv.json").exists():
            cv = write_oof(runs / name)
        else:
            cv = fileio.read_json(runs / name / "cv.json")
        print(f"{name}: CV MAP@20 {cv['map20']:.4f} (out-of-fold prior {cv['prior_map20']:.4f})")
    if not (runs / held_name / "cv.json").exists():
        # one fold is all the osd simulation needs: stitch it on purpose
        write_oof(runs / held_name, allow_missing=True)

    _stage(
        5,
        total,
        "tune: ensemble of the models and their kNN members (the frequency prior may join), "
        "label-set thresholds, osd scorer",
        clock,
        "tune",
    )
    tune_path = runs / "tune.json"
    if not tune_path.exists():
        result = tune_runs(
            [runs / n for n in names], [runs / held_name], comp_dir, prior=True, knn=True
        )
        write_tuning(tune_path, result)
    tuning = read_tuning(tune_path)
    print(format_tuning(tuning))
    scorer = tuning["osd"]["scorer"]

    # No `fathom predict` stage: training already predicted the eval images with each fold's
    # best.pt (fold<k>/eval.npz) and `oof` averaged them into runs/<exp>/eval.npz, the file
    # `fathom submit` reads. Predicting them again would give the same numbers; `fathom predict`
    # is for another competition folder's eval images (a Kaggle kernel's hidden test).
    preds = None

    _stage(
        6,
        total,
        "submit: validated CSVs + manifests (each model alone, and the ensemble)",
        clock,
        "submit: tune each member",
    )
    entries = []
    # each member alone (a model's head, or its kNN member): same osd scorer, its own tuning
    alone = [(n, n, False) for n in names] + [(f"{n}-knn", n, "only") for n in names]
    for sub_name, name, knn in alone:
        path = runs / f"tune-{sub_name}.json"
        if not path.exists():
            one = tune_runs([runs / name], [runs / held_name], comp_dir, osd_name=scorer, knn=knn)
            write_tuning(path, one)
        entries.append((sub_name, read_tuning(path)))
    entries.append(("ensemble", tuning))
    clock.begin("submit: write CSVs")
    for sub_name, tun in entries:
        if (subs / f"{sub_name}.csv").exists():
            print(f"reusing {subs / sub_name}.csv")
            continue
        make(tun, sub_name, comp_dir, preds, None, subs)
        print(f"wrote {subs / sub_name}.csv and .json")
    prior_path = subs / "prior.csv"
    if not prior_path.exists():
        write_prior(comp_dir, prior_path)

    _stage(
        7,
        total,
        "score against the hidden eval truth (the only stage that reads it)",
        clock,
        "score",
    )
    truth_path = comp_dir / TRUTH_FILE
    rows = []
    for sub_name, tun in entries:
        s = score_files(subs / f"{sub_name}.csv", truth_path)
        ens = tun["ensemble"]
        rows.append(
            {
                "model": sub_name,
                "CV MAP@20": ens["scores"][ens["method"]],
                "eval MAP@20": s["map20"],
                "est. sAUC": tun["osd"]["estimated_sauc"],  # none for `domain`: see tune.py
                "eval sAUC": s["sauc"],
                "score": s["score"],
            }
        )
    s = score_files(prior_path, truth_path)
    rows.append(
        {
            "model": "frequency prior",
            "CV MAP@20": np.nan,
            "eval MAP@20": s["map20"],
            "est. sAUC": 0.0,
            "eval sAUC": s["sauc"],
            "score": s["score"],
        }
    )
    table = pd.DataFrame(rows)

    _stage(
        8,
        total,
        "every osd scorer: sAUC on held-out-category OOF and the shift test chose it; eval sAUC is a diagnostic",
        clock,
        "osd diagnostic",
    )
    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False).set_index("id")
    ens = ensemble_eval(tuning, comp_dir, preds)
    flag = truth.loc[ens["ids"], "osd"].astype(int).to_numpy()
    diag = []
    combined = (scorer,) if "+" in scorer else ()
    for name in (*osd_lib.SCORERS, *combined):
        diag.append(
            {
                "osd scorer": name,
                "held-out-category sAUC": tuning["osd"]["simulated_sauc"].get(name),
                "eval sAUC": sauc(flag, eval_osd(ens, name)),
                "chosen": "<-" if name == scorer else "",
            }
        )
    print(pd.DataFrame(diag).round(4).to_string(index=False))

    report_dir = work / "report"
    _stage(
        9,
        total,
        f"report: fathom report {' '.join(str(runs / n) for n in names)} --tune {tune_path} "
        f"--out {report_dir}",
        clock,
        "report",
    )
    if not (report_dir / "index.html").is_file():
        build_report([runs / n for n in names], report_dir, tune_path, comp_dir, progress=False)
    clock.end()

    print("\nwhere the time went (CPU s: this process and its workers; cores = CPU s / wall s):")
    print(clock.table())
    print(
        f"\nscore table ({time.perf_counter() - t0:.0f} s this run; CV = OOF, fitted ensemble "
        "weights fold-held-out):"
    )
    print(table.round(4).to_string(index=False, na_rep="-"))
    print("\nopen:")
    print(f"  report      {report_dir / 'index.html'}")
    print(f"  submission  {subs / 'ensemble.csv'} (its manifest: {subs / 'ensemble.json'})")
    print(f"  runs        {runs} (training logs: {work / 'logs'})")
    return table


# --- the single-label folder study


# (run name, packaged config, CPU-sized overrides): epochs cut so the demo takes ~4 minutes
RUNS = (
    ("scratch_cnn", "fish_scratch", ["epochs=8", "lr=3e-3"]),
    # a frozen backbone's epochs cost ~1 s each at 32 px, so the head gets more of them
    ("transfer_frozen", "fish_effb0_frozen", ["epochs=12", "lr=1e-2"]),
    # MobileNetV3-Small's last stages are small: stage 2 unfreezes three, not two
    (
        "transfer_two_stage",
        "fish_effb0_finetune",
        ["epochs=16", "stage1_epochs=6", "stage1_lr=1e-2", "lr=5e-3", "unfreeze_stages=3"],
    ),
)
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
    # ImageNet weights for efficientnet_b0: a file, or "hf" (the HF cache)
    weights: str | None = None


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
    from fathom.engine.train import train_run

    out = work / "pretrained" / f"{PRETRAIN_MODEL}_synth_fathomnet.pth"
    if out.is_file():
        print(f"      reusing {out}")
        return out
    comp = work / "synth_fathomnet"
    if not (comp / TRUTH_FILE).exists():
        generate(comp, dataclasses.replace(PRETRAIN_DATA, seed=seed + 1), progress=False)
    overrides = [
        f"competition={comp}",
        f"cache_dir={work / 'cache'}",
        f"img_size={DATA.size}",
        f"model={PRETRAIN_MODEL}",
        "num_workers=0",
        *PRETRAIN_OVERRIDES,
    ]
    cfg = load_config("mobilenet", overrides, name="pretrain_synth_fathomnet")
    print(
        f"      full fit of {cfg.model} on {comp} ({PRETRAIN_DATA.n_train} images, "
        f"290 categories, {cfg.epochs} epochs)"
    )
    run_dir = train_run(
        cfg, read_data(cfg, need_folds=False), work / "runs", [None], progress=False
    )
    return export_backbone(run_dir, out)


def _submit(run_dir: Path, data_dir: Path, out_dir: Path) -> dict:
    """The run's `id,label` submission the way a user makes one (`fathom oof`, `fathom tune`,
    `fathom submit`), scored on the hidden test labels."""
    tune_path = run_dir / "tune.json"
    if not (run_dir / "oof.npz").exists():
        write_oof(run_dir)
    if not tune_path.exists():
        write_tuning(tune_path, tune_runs([run_dir], comp=data_dir))
    make(read_tuning(tune_path), run_dir.name, data_dir, out_dir=out_dir, overwrite=True)
    return score_files(out_dir / f"{run_dir.name}.csv", open_dataset(data_dir).truth_file)


def run_folder_demo(demo: FolderDemo) -> pd.DataFrame:
    from fathom.engine.train import train_run

    start = time.perf_counter()
    work = demo.workdir
    data_dir = work / "fish"
    n_steps = len(RUNS) + 4
    if not (data_dir / FOLDER_TRUTH).exists():
        print(
            f"[1/{n_steps}] synth: writing a 31-class folder dataset (11:1 imbalance) to {data_dir}"
        )
        generate_folder(data_dir, dataclasses.replace(DATA, seed=demo.seed))
    else:
        print(f"[1/{n_steps}] synth: reusing {data_dir}")
    classes = read_classes(open_folder(data_dir))
    counts = classes["n_train"]
    print(
        f"      {len(classes)} classes, {counts.sum()} train images ({counts.min()} to {counts.max()} per class)"
    )
    if demo.weights is None:
        print(
            f"[2/{n_steps}] pretrain: {PRETRAIN_MODEL} on the synthetic FathomNet competition "
            "(no ImageNet here)"
        )
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
        stage1 = f", stage 1 {cfg.stage1_epochs}" if cfg.stage1_epochs else ""
        print(
            f"[{step}/{n_steps}] train {name} ({config}.toml: {cfg.model}, {cfg.epochs} epochs{stage1})"
        )
        run_dirs.append(train_run(cfg, read_data(cfg), work / "runs", [0], progress=False))

    step = len(RUNS) + 3
    print(
        f"[{step}/{n_steps}] compare: fathom compare {' '.join(map(str, run_dirs))} --out {work / 'compare'}"
    )
    table, notes = compare_runs(run_dirs, work / "compare")
    scores = [_submit(d, data_dir, work / "submissions") for d in run_dirs]
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
    return table
