"""The training loop: one fold (or a full fit) of any timm backbone, resumable, with its outputs.

    runs/<exp>/config.json                the resolved config (also inside every checkpoint)
    runs/<exp>/fold<k>/history.csv        one row per epoch (columns below)
    runs/<exp>/fold<k>/last.pt            everything needed to resume, written after each epoch
    runs/<exp>/fold<k>/best.pt            the weights with the best validation score (EMA
                                          weights with ema): MAP@20, or accuracy for a
                                          single-label task
    runs/<exp>/fold<k>/oof.npz            the fold's validation images, from best.pt
    runs/<exp>/fold<k>/eval.npz           the eval images, from best.pt
    runs/<exp>/full/                      a full fit (no validation): eval.npz only

history.csv: epoch, stage; train_loss and val_loss, both the category loss alone (without the
supercategory head's term, which validation has no use for; train_loss is the mean over the
epoch's steps, of the augmented and mixed batches, pseudo-labelled rows weighted by
pseudo_weight); val_map20 (and val_acc for a single-label task) of the weights best.pt would
keep; lr (the head's group), seconds, images_per_s.

A killed run resumes from last.pt with the same command and loses at most the epoch in
progress; a finished fold is skipped. Under torchrun every rank runs this same code on its
slice of each batch; rank 0 alone writes files.

`train_fold` is the whole story of one fold; the functions below it are its steps, in the
order it calls them. What a fold trains and validates on (rows, targets, caches, and whether
they live on the device) is built on the data side, by fathom/data/fold_data.py. A resumed run must repeat an uninterrupted one bit for bit, so every
step draws from the global torch RNG in the same order as before it was split out.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from timm.optim import create_optimizer_v2, param_groups_layer_decay
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from tqdm import tqdm

from fathom import fileio
from fathom.config import TrainConfig, config_differences
from fathom.data.augment import Preprocess
from fathom.data.crops import FoldCrops
from fathom.data.fold_data import fold_images, fold_labels
from fathom.data.loader import ImageSource, TrainData, to_device, train_batches
from fathom.engine import distributed, precision
from fathom.engine.losses import build_loss, supercat_loss, weighted_rows_loss
from fathom.engine.models import (
    FathomModel,
    build_model,
    data_config,
    feature_width,
    freeze_norm_statistics,
    init_head_bias,
    init_super_bias,
    set_trainable,
)
from fathom.engine.predict import (
    open_tiles,
    predict,
    predict_probs,
    probabilities,
    write_predictions,
)
from fathom.errors import FathomError
from fathom.knn import BANK_FILE, write_bank
from fathom.metrics import map_at_k_matrix


@dataclass
class TrainState:
    """Runtime state of one fold's training (saved in last.pt; never on the config)."""

    epoch: int = 0  # epochs completed
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    stage: int = 0  # stage of the last completed epoch
    updates: int = 0  # optimizer steps in the current stage (drives the lr schedule)
    total_updates: int = 0  # optimizer steps overall (drives the EMA warm-up)
    finished: bool = False
    history: list[dict] = field(default_factory=list)

    def end_epoch(self, row: dict, score: float, cfg: TrainConfig, full: bool) -> tuple[bool, bool]:
        """Book a finished epoch; returns (improved, early_stop)."""
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, row["epoch"], 0
        else:
            self.bad_epochs += 1
        self.epoch, self.stage = row["epoch"], row["stage"]
        self.history.append(row)
        early_stop = not full and cfg.patience > 0 and self.bad_epochs >= cfg.patience
        self.finished = early_stop or self.epoch >= cfg.epochs
        return improved, early_stop


@dataclass
class Fold:
    """What one fold's epochs work with. Rebuilt from the config and data on every start,
    never saved: last.pt holds only what cannot be rebuilt (weights, optimizer, TrainState)."""

    cfg: TrainConfig
    data: TrainData
    fold: int | None
    out: Path
    ctx: distributed.Dist
    device: torch.device
    amp: torch.dtype | None  # the autocast dtype (precision.autocast_dtype); None: float32
    scaler: torch.amp.GradScaler  # loss scaling under fp16; disabled (a pass-through) otherwise
    train_rows: np.ndarray
    val_rows: np.ndarray
    y_all: np.ndarray  # targets of every training-table row, host side for the metrics
    y_dev: torch.Tensor  # the same on the device, indexed per batch without a copy
    model: FathomModel
    ema: ModelEmaV3 | None
    prep: Preprocess
    loss_fn: torch.nn.Module
    train_src: ImageSource
    eval_src: ImageSource | None
    updates_per_epoch: int
    say: Callable[..., None]
    # issue 12: supercategory targets of every training-table row (None: no supercategory
    # head), and the first pseudo-labelled row index (rows from here on are eval images)
    super_dev: torch.Tensor | None = None
    n_labelled: int = 0
    n_pseudo: int = 0
    crops: FoldCrops | None = None  # crop_rate > 0: box crops mixed into the epochs

    @property
    def name(self) -> str:
        return fold_name(self.fold)

    @property
    def full(self) -> bool:
        return self.fold is None

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights that are validated, kept as best.pt and predicted with."""
        return self.ema.module if self.ema is not None else self.model


@dataclass
class Stage:
    """The optimizer side of one training stage: a new stage gets a new optimizer."""

    number: int
    opt: torch.optim.Optimizer
    sched: Any
    step_model: torch.nn.Module


def train_run(
    cfg: TrainConfig,
    data: TrainData,
    runs_dir: str | Path,
    folds: list[int | None],
    progress: bool = True,
) -> Path:
    """Train the given folds (None = full fit) of the run `runs_dir/<cfg.name>` in turn.

    runs/<exp>/config.json is written only once a fold has really started (model built, data
    read): a start that fails (a mistyped model name) must not freeze a config that would
    then refuse the corrected command as "another config"."""
    ctx = distributed.from_env()
    run_dir = Path(runs_dir) / fileio.plain_name(cfg.name, "run name")
    check_run_config(run_dir, cfg)
    if ctx.is_main:  # before the long work, not after its first epoch
        fileio.check_writable(run_dir if run_dir.is_dir() else Path(runs_dir), "runs folder")
        fileio.check_writable(cfg.cache_dir, "cache folder")
    for fold in folds:
        train_fold(
            cfg, data, run_dir, fold, progress, on_start=lambda: write_run_config(run_dir, cfg, ctx)
        )
    return run_dir


def train_fold(
    cfg: TrainConfig,
    data: TrainData,
    run_dir: str | Path,
    fold: int | None,
    progress: bool = True,
    on_start: Callable[[], None] | None = None,
) -> Path:
    """Train one fold (None: a full fit on every row), then write its predictions. Returns its
    folder. `on_start` is called once the fold's model and data are set up."""
    ctx = distributed.from_env()
    device = distributed.pick_device(cfg.device, ctx)
    precision.check_gpu(cfg.amp, cfg.compile, device)
    precision.configure_cuda(device)
    distributed.init(ctx, device)
    out = Path(run_dir) / fold_name(fold)
    with precision.gpu_errors(str(out), device, cfg.batch_size):
        return _train_fold(cfg, data, out, fold, ctx, device, progress, on_start)


def _train_fold(
    cfg: TrainConfig,
    data: TrainData,
    out: Path,
    fold: int | None,
    ctx: distributed.Dist,
    device: torch.device,
    progress: bool,
    on_start: Callable[[], None] | None,
) -> Path:
    """The story of one fold: set-up, epochs, predictions (train_fold puts the device checks
    and the one-line GPU errors around it)."""
    say = print if ctx.is_main else (lambda *a, **k: None)
    if fold_is_done(out, full=fold is None):
        if not (out / BANK_FILE).is_file():  # finished before fathom wrote kNN banks
            with fold_lock(out, ctx):
                f = set_up_fold(cfg, data, fold, out, ctx, device, say)
                f.model.load_state_dict(load_checkpoint(out / "best.pt", ("model",))["model"])
                write_fold_bank(f, cfg.batch_size * 2)
            say(f"{out}: already done; wrote its kNN bank ({BANK_FILE}) from best.pt")
            return out
        say(f"{out}: already done (delete the folder to train it again)")
        return out
    with fold_lock(out, ctx):
        f = set_up_fold(cfg, data, fold, out, ctx, device, say)
        if on_start is not None:
            on_start()
        state, resume = start_or_resume(f)
        stage, diverged = None, Divergence(f)
        while not state.finished:
            number = stage_of(cfg, state.epoch)
            if stage is None or stage.number != number:
                stage = begin_stage(f, number, state, resume)
                resume = None  # its optimizer state belongs to the stage it was saved in only

            t0 = time.perf_counter()
            train_loss, seen = train_one_epoch(f, stage, state, progress, diverged)
            train_seconds = time.perf_counter() - t0
            lr = stage.opt.param_groups[0]["lr"]
            scores = {} if f.full else validate(f)
            # a full fit has nothing to validate on, so its latest epoch counts as its best
            score = (
                float(state.epoch)
                if f.full
                else distributed.all_agree(ctx, scores[score_column(cfg.task)])
            )
            row = {"epoch": state.epoch + 1, "stage": stage.number, "train_loss": train_loss}
            row |= scores | {
                "lr": lr,
                "seconds": round(time.perf_counter() - t0, 3),
                "images_per_s": round(seen * ctx.world / train_seconds, 1),
            }
            # the schedule counts epochs within its stage: stage 2 started its own at zero
            stage.sched.step(row["epoch"] - (cfg.stage1_epochs if stage.number == 2 else 0), score)
            improved, early_stop = state.end_epoch(row, score, cfg, f.full)
            save_state(f, stage, state, improved)
            say(_epoch_line(fold, cfg.epochs, row) + ("  early stop" if early_stop else ""))

        write_fold_predictions(f, state)
        return out


# --- the steps of train_fold, in order


def set_up_fold(
    cfg: TrainConfig,
    data: TrainData,
    fold: int | None,
    out: Path,
    ctx: distributed.Dist,
    device: torch.device,
    say: Callable[..., None],
) -> Fold:
    """Rows, model, images, preprocessing and loss of one fold: the same on every rank and on
    every resume. The fold's data comes from fathom/data/fold_data.py, in its two steps."""
    seed_everything(cfg.seed)  # the same initial weights on every rank
    labels = fold_labels(data, cfg, fold)
    n_classes = len(data.class_ids)
    model = build_model(cfg, n_classes, labels.supercat_of, labels.n_super)
    if cfg.prior_bias:
        y_train = labels.y_all[labels.train_rows]
        prior = (
            y_train.mean(axis=0)
            if cfg.task == "multilabel"
            else np.bincount(y_train, minlength=n_classes) / len(y_train)
        )
        init_head_bias(model, prior, cfg.task)
        if labels.y_super is not None:
            init_super_bias(model, labels.y_super[labels.train_rows].mean(axis=0))
    dcfg = data_config(model)
    size = cfg.img_size or int(dcfg["input_size"][-1])
    channels_last = cfg.channels_last and device.type == "cuda"
    amp = precision.autocast_dtype(cfg.amp, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # after the model: whether the images fit is judged on what the model leaves free
    images = fold_images(data, cfg, labels, cfg.cache_size or size, device, ctx.is_main, say)
    batches_per_epoch = len(
        train_batches(len(images.train_rows), cfg.batch_size, cfg.seed, 0, ctx.rank, ctx.world)
    )
    return Fold(
        cfg=cfg,
        data=data,
        fold=fold,
        out=out,
        ctx=ctx,
        device=device,
        amp=amp,
        scaler=precision.grad_scaler(device, amp),
        train_rows=images.train_rows,
        val_rows=labels.val_rows,
        y_all=labels.y_all,
        y_dev=torch.from_numpy(images.targets).to(device),
        model=model,
        # the EMA copy is made after the move, so it lives on the device beside the model
        ema=ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None,
        prep=Preprocess(cfg, size, dcfg["mean"], dcfg["std"], device, channels_last),
        # labelled rows only
        loss_fn=build_loss(cfg, labels.y_all[labels.train_rows], n_classes).to(device),
        train_src=images.train_src,
        eval_src=images.eval_src,
        updates_per_epoch=math.ceil(batches_per_epoch / cfg.accumulate),
        say=say,
        super_dev=None
        if images.super_targets is None
        else torch.from_numpy(images.super_targets).to(device),
        n_labelled=images.n_labelled,
        n_pseudo=images.n_pseudo,
        crops=images.crops,
    )


def start_or_resume(f: Fold) -> tuple[TrainState, dict | None]:
    """A fresh TrainState, or last.pt's with its weights and RNG restored. The resume dict is
    returned so that the stage it was saved in can take back its optimizer state."""
    cfg, last = f.cfg, f.out / "last.pt"
    state, resume = TrainState(), None
    if last.is_file():
        resume = load_checkpoint(last, RESUME_KEYS)
        diff = config_differences(resume["config"], cfg.to_dict())
        if diff:
            raise FathomError(f"{last}: made with another config (differs in {', '.join(diff)})")
        f.model.load_state_dict(resume["model"])
        if resume.get("scaler") and f.scaler.is_enabled():  # fp16's loss scale goes on
            f.scaler.load_state_dict(resume["scaler"])
        if f.ema is not None:
            f.ema.module.load_state_dict(resume["ema"])
        state = TrainState(**resume["state"])
        restore_rng(resume, f.device)
        f.say(f"{f.out}: resuming after epoch {state.epoch}")
    else:
        seed_everything(cfg.seed + f.ctx.rank)  # dropout differs between ranks
    if f.ctx.is_main:
        f.out.mkdir(parents=True, exist_ok=True)
        write_history(f.out, state.history)  # drop rows of an epoch that last.pt does not hold
    return state, resume


def rng_state(device: torch.device) -> dict:
    """The generators dropout and drop-path draw from: the CPU's, and on a GPU every CUDA
    device's (there the masks come from the device's own generator, not the CPU's)."""
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    return {"rng": torch.get_rng_state(), "cuda_rng": cuda}


def restore_rng(ckpt: dict, device: torch.device) -> None:
    """Put back what rng_state saved. A checkpoint from before the CUDA states were saved
    (no `cuda_rng`) restores the CPU's alone, as it always did; states of GPUs this machine
    does not have are left out."""
    torch.set_rng_state(ckpt["rng"])
    cuda = ckpt.get("cuda_rng")
    if cuda and device.type == "cuda":
        torch.cuda.set_rng_state_all(list(cuda)[: torch.cuda.device_count()])


def stage_of(cfg: TrainConfig, epoch: int) -> int:
    return 1 if epoch < cfg.stage1_epochs else 2


def begin_stage(f: Fold, number: int, state: TrainState, resume: dict | None) -> Stage:
    """Unfreeze what stage `number` trains and build its optimizer; on resume into the stage
    last.pt was saved in, continue that optimizer and schedule where they stopped."""
    cfg, model = f.cfg, f.model
    set_trainable(model, number, cfg.unfreeze_stages)
    opt, sched = make_optimizer(cfg, model, number, f.updates_per_epoch)
    if resume is not None and resume["state"]["stage"] == number:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
    else:
        state.updates = 0
    # wrapped after set_trainable: DDP registers only the parameters that need gradients
    step_model = wrap_for_step(model, cfg, f.ctx, f.device)
    sched.step_update(num_updates=state.updates)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    f.say(f"{f.name}: stage {number}, {trainable:,} trainable parameters")
    return Stage(number, opt, sched, step_model)


# a run stops once this many steps in a row had a loss that is not finite (or, under fp16,
# once the loss scaler skipped every step of an epoch): it has diverged, and training on
# would only end in a "finished" run of nan weights
NONFINITE_STEPS = 20


class Divergence:
    """Counts non-finite losses in a row, across epochs, on the device (no host sync per
    step); looked at every NONFINITE_STEPS steps and at the end of each epoch."""

    def __init__(self, f: Fold):
        self.name, self.scaler = f.name, f.scaler
        self.streak = torch.zeros((), dtype=torch.long, device=f.device)
        # where the current streak began, both 1-based
        self.first_epoch = torch.zeros((), dtype=torch.long, device=f.device)
        self.first_step = torch.zeros((), dtype=torch.long, device=f.device)

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.epoch, self.n_batches, self.steps = epoch + 1, n_batches, 0
        # a run of fewer steps than NONFINITE_STEPS stops after a whole epoch of them
        self.limit = min(NONFINITE_STEPS, n_batches)
        self.scale = self.scaler.get_scale() if self.scaler.is_enabled() else None

    def add(self, i: int, loss: torch.Tensor, step_now: bool) -> None:
        bad = ~torch.isfinite(loss.detach())
        starts = bad & (self.streak == 0)
        # Python numbers go to the kernel as arguments: no host-to-device copy
        self.first_epoch = torch.where(starts, self.epoch, self.first_epoch)
        self.first_step = torch.where(starts, i + 1, self.first_step)
        self.streak = (self.streak + 1) * bad
        self.steps += int(step_now)
        if (i + 1) % NONFINITE_STEPS == 0 or i + 1 == self.n_batches:
            self.check(i)

    def check(self, i: int) -> None:
        streak = int(self.streak)  # waits for the GPU: every NONFINITE_STEPS steps only
        if streak >= self.limit:
            epoch, step = int(self.first_epoch), int(self.first_step)
            raise FathomError(
                f"{self.name} epoch {epoch}, step {step}: the loss was not finite for "
                f"{streak} steps in a row (the run diverged): lower lr, set grad_clip, or use "
                "amp = bf16 / off; last.pt keeps the last finished epoch"
            )
        # fp16's first steps may overflow while its scale settles: judged over enough steps
        if i + 1 == self.n_batches and self.scale is not None and self.steps >= NONFINITE_STEPS:
            # a skipped step halves the scale: halved at every step, none was taken
            if self.scaler.get_scale() <= self.scale * 0.5**self.steps:
                raise FathomError(
                    f"{self.name} epoch {self.epoch}: fp16 gradients overflowed at every step "
                    f"({self.steps} steps, all skipped by the loss scaler): use amp = bf16 "
                    "(compute capability 8.0 and up) or amp = off, or lower lr"
                )


def train_one_epoch(
    f: Fold, stage: Stage, state: TrainState, progress: bool, diverged: Divergence | None = None
) -> tuple[float, int]:
    """One pass over this rank's batches of epoch `state.epoch`; returns (mean loss, images).
    FathomError once the loss has not been finite for NONFINITE_STEPS steps (`diverged`
    carries the count from epoch to epoch)."""
    cfg, ctx, model, epoch = f.cfg, f.ctx, f.model, state.epoch
    model.train()
    freeze_norm_statistics(model)
    # augmentation drawn from its own generator: the same on any device, and on resume
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + ctx.rank)
    # with crops, the epoch's samples are some whole images and some crops (as many in all)
    rows = f.train_rows if f.crops is None else f.crops.epoch_rows(f.train_rows, cfg.seed, epoch)
    batches = [
        rows[b]
        for b in train_batches(len(rows), cfg.batch_size, cfg.seed, epoch, ctx.rank, ctx.world)
    ]
    if f.n_pseudo:  # labelled rows first in each batch, so the loss weighs the two parts apart
        n = f.n_labelled
        batches = [np.concatenate([b[b < n], b[b >= n]]) for b in batches]
    if f.crops is not None:
        batches = f.crops.epoch_batches(batches)  # each batch: whole images first, then crops
    # the epoch's rows and augmentation in one upload each (pinned, non-blocking), sliced per
    # step on the device: a step never waits for a small host-to-device copy
    sizes = [len(b) for b in batches]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    aug = f.prep.draw(sizes, gen).to(f.device)
    rows_dev = to_device(np.concatenate(batches), f.device)
    loss_sum = torch.zeros((), device=f.device)
    seen = 0
    diverged = diverged or Divergence(f)
    diverged.start_epoch(epoch, len(batches))
    stage.opt.zero_grad(set_to_none=True)
    bar = tqdm(
        f.train_src.batches(batches) if f.crops is None else f.crops.batches(f.train_src, batches),
        total=len(batches),
        leave=False,
        disable=not (progress and ctx.is_main),
        desc=f"{f.name} epoch {epoch + 1}/{cfg.epochs}",
    )
    for i, (rows, images) in enumerate(bar):
        part = slice(int(starts[i]), int(starts[i + 1]))
        x = f.prep.train(images, aug[part])
        y = f.y_dev[rows_dev[part]]
        if f.prep.mixing:  # Mixup / CutMix: images and targets alike, targets now soft
            x, y = f.prep.mix(x, y, aug[part], len(f.data.class_ids))
        step_now = (i + 1) % cfg.accumulate == 0 or i + 1 == len(batches)
        # accumulating under DDP: skip the gradient all-reduce until the step
        sync = (
            contextlib.nullcontext() if step_now or not ctx.active else stage.step_model.no_sync()
        )
        with sync:
            with precision.autocast(f.device, f.amp):
                out = stage.step_model(x)
            loss, category = batch_loss(f, out, y, rows, rows_dev[part])
            f.scaler.scale(loss / cfg.accumulate).backward()
        if step_now:
            if cfg.grad_clip > 0:
                f.scaler.unscale_(stage.opt)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], cfg.grad_clip
                )
            # under fp16 a step with inf/nan gradients is skipped and the scale lowered
            f.scaler.step(stage.opt)
            f.scaler.update()
            stage.opt.zero_grad(set_to_none=True)
            state.updates += 1
            state.total_updates += 1
            if f.ema is not None:
                f.ema.update(model, step=state.total_updates)
            stage.sched.step_update(num_updates=state.updates)
        diverged.add(i, loss, step_now)
        loss_sum += category.detach() * len(rows)  # stays on the device: no sync per step
        seen += len(rows)
    return float(loss_sum) / max(seen, 1), seen  # float() waits for the GPU to finish


def batch_loss(
    f: Fold, out: dict, y: torch.Tensor, rows: np.ndarray, rows_dev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the step's loss, its category part), in float32 whatever the autocast: the category
    loss (pseudo rows, last in the batch, weighted by pseudo_weight), plus supercat_weight x
    the supercategory BCE on the labelled rows (a pseudo row has no supercategory truth).
    history.csv's train_loss is the category part, on the terms of val_loss."""
    n_first = len(rows) if not f.n_pseudo else int((rows < f.n_labelled).sum())
    logits = out["logits"].float()
    loss = category = weighted_rows_loss(f.loss_fn, logits, y, n_first, f.cfg.pseudo_weight)
    if f.super_dev is not None:
        if n_first:
            target = f.super_dev[rows_dev[:n_first]]
            loss = loss + f.cfg.supercat_weight * supercat_loss(
                out["super_logits"][:n_first], target
            )
        else:  # keep the head in the graph (DDP expects every parameter to get a gradient)
            loss = loss + 0.0 * out["super_logits"].sum()
    return loss, category


def validate(f: Fold) -> dict[str, float]:
    """val_loss, val_map20 (and val_acc for singlelabel) of the weights best.pt would keep.
    Always one plain pass: `tta` is a prediction-time choice, and epochs must be compared
    on the same footing whatever it is."""
    cfg = f.cfg
    logits, _ = predict(
        f.eval_model, f.train_src, f.val_rows, f.prep, cfg.batch_size * 2, f.amp, False, f.ctx
    )
    y_val = f.y_all[f.val_rows]
    scores = {
        "val_loss": float(
            f.loss_fn(
                torch.from_numpy(logits).to(f.device),
                f.y_dev[torch.from_numpy(f.val_rows).to(f.device)],
            )
        )
    }
    probs = probabilities(logits, cfg.task)
    scores["val_map20"] = map_at_k_matrix(probs, one_hot(y_val, len(f.data.class_ids), cfg.task))
    if cfg.task == "singlelabel":
        scores["val_acc"] = float((probs.argmax(1) == y_val).mean())
    return scores


def save_state(f: Fold, stage: Stage, state: TrainState, improved: bool) -> None:
    """best.pt when the epoch improved, then last.pt and history.csv (rank 0 only)."""
    if not f.ctx.is_main:
        return
    config, class_ids = f.cfg.to_dict(), list(f.data.class_ids)
    # best first, then last: a kill between the two only repeats this epoch
    if improved:
        fileio.save_torch(
            f.out / "best.pt",
            {
                "config": config,
                "model": f.eval_model.state_dict(),
                "class_ids": class_ids,
                "epoch": state.epoch,
                "score": state.best_score,
            },
        )
    fileio.save_torch(
        f.out / "last.pt",
        {
            "config": config,
            "model": f.model.state_dict(),
            "ema": f.ema.module.state_dict() if f.ema is not None else None,
            "optimizer": stage.opt.state_dict(),
            "scheduler": stage.sched.state_dict(),
            "scaler": f.scaler.state_dict(),  # {} unless fp16
            "state": asdict(state),
            # the RNG after this epoch, so that a resumed run's dropout draws what this one would
            **rng_state(f.device),
            "class_ids": class_ids,
        },
    )
    write_history(f.out, state.history)


def write_fold_predictions(f: Fold, state: TrainState) -> None:
    """oof.npz (validation rows, with their targets) and eval.npz from best.pt, not from the
    last epoch: with early stopping or a noisy fold the two differ."""
    cfg, ctx = f.cfg, f.ctx
    distributed.barrier(ctx)  # rank 0 has written best.pt
    f.model.load_state_dict(load_checkpoint(f.out / "best.pt", ("model",))["model"])
    class_ids, batch = f.data.class_ids, cfg.batch_size * 2
    size = f.train_src.shape[1]
    if not f.full:
        extra: dict = {}
        # tiles (cfg.tiles) for OOF and eval alike, so that tuning sees what is submitted
        tiles = fold_tiles(f, f.data.train, "train", size)
        probs, logits, feats = predict_probs(
            f.model, f.train_src, f.val_rows, f.prep, batch, f.amp, cfg, ctx, tiles, extra
        )
        if ctx.is_main:
            truth = one_hot(f.y_all[f.val_rows], len(class_ids), cfg.task)
            ids = f.data.train["id"].to_numpy()[f.val_rows]
            write_predictions(
                f.out / "oof.npz",
                ids,
                logits,
                feats,
                class_ids,
                cfg.task,
                truth,
                f.model,
                extra.get("super_logits"),
                cfg.supercat_rank,
                probs,
            )
    write_fold_bank(f, batch)
    n_eval = len(f.data.eval)
    extra, probs = {}, None
    if f.eval_src is not None:
        tiles = fold_tiles(f, f.data.eval, "eval", size)
        # the eval images take device memory only now, while they are predicted
        with f.eval_src.held(cfg.data_on_device):
            probs, logits, feats = predict_probs(
                f.model, f.eval_src, np.arange(n_eval), f.prep, batch, f.amp, cfg, ctx, tiles, extra
            )
    else:  # a competition without eval images still gets an (empty) eval.npz
        logits = np.zeros((0, len(class_ids)), np.float32)
        feats = np.zeros((0, feature_width(f.model.backbone)), np.float32)
    if ctx.is_main:
        ids = f.data.eval["id"].to_numpy()
        write_predictions(
            f.out / "eval.npz",
            ids,
            logits,
            feats,
            class_ids,
            cfg.task,
            None,
            f.model,
            extra.get("super_logits"),
            cfg.supercat_rank,
            probs,
        )
        f.say(
            f"{f.out}: best epoch {state.best_epoch}"
            + ("" if f.full else f", val {metric_name(cfg.task)} {state.best_score:.4f}")
        )
    distributed.barrier(ctx)  # no rank starts the next fold before the files exist


def write_fold_bank(f: Fold, batch: int) -> None:
    """bank.npz: best.pt's features of the labelled images this model trained on (pseudo-
    labelled eval rows and box crops left out) with their targets, for the kNN member
    (fathom/knn.py). Before eval.npz, which marks the fold done."""
    rows = f.train_rows[f.train_rows < f.n_labelled]
    _, feats = predict(f.model, f.train_src, rows, f.prep, batch, f.amp, f.cfg.tta, f.ctx)
    if f.ctx.is_main:
        write_bank(
            f.out / BANK_FILE,
            f.data.train["id"].to_numpy()[rows],
            feats,
            one_hot(f.y_all[rows], len(f.data.class_ids), f.cfg.task),
            f.data.class_ids,
        )


# --- helpers


def fold_tiles(f: Fold, table: pd.DataFrame, split: str, size: int) -> ImageSource | None:
    """The tiles of a split's images when cfg.tiles asks for them (their cache built now)."""
    if not f.cfg.tiles:
        return None
    return open_tiles(table, f"{f.data.name}-{split}", f.cfg, size, f.device, f.ctx)


def score_column(task: str) -> str:
    """The history column that picks best.pt, drives early stopping and the plateau schedule:
    the task's own metric."""
    return "val_map20" if task == "multilabel" else "val_acc"


def metric_name(task: str) -> str:
    return "MAP@20" if task == "multilabel" else "accuracy"


def fold_name(fold: int | None) -> str:
    return "full" if fold is None else f"fold{fold}"


def fold_is_done(out: Path, full: bool) -> bool:
    return (out / "eval.npz").is_file() and (full or (out / "oof.npz").is_file())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def one_hot(y: np.ndarray, n_classes: int, task: str) -> np.ndarray:
    """(N, C) 0/1 targets: multilabel targets already are; singlelabel class indices expand."""
    return y if task == "multilabel" else np.eye(n_classes, dtype=np.float32)[y]


@contextlib.contextmanager
def fold_lock(out: Path, ctx: distributed.Dist):
    """Hold an exclusive lock on the fold while it trains: a second process training the same
    fold at once would interleave its checkpoints with this one's (rank 0 holds it for all
    ranks). The lock file stays; the lock dies with its process, so kill -9 never leaves a
    stale one."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no flock, no guard
        fcntl = None
    if not ctx.is_main or fcntl is None:
        yield
        return
    lock_path = out.parent / f".{out.name}.lock"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a")  # noqa: SIM115 - held open for the whole fold
    except OSError as exc:
        raise fileio.os_error(exc, lock_path) from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FathomError(
                f"{out}: another process is training this fold now (it holds {lock_path}); "
                "wait for it to finish or stop it, then run again"
            ) from None
        yield
    finally:
        fh.close()  # releases the lock


def check_run_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Check that an existing runs/<exp>/config.json describes the same run (reads only)."""
    path = run_dir / "config.json"
    if path.is_file():
        saved = fileio.read_json(path)
        if not isinstance(saved, dict):
            raise FathomError(f"{path}: not a config (expected a JSON object)")
        diff = config_differences(saved, cfg.to_dict())
        if diff:
            shown = ", ".join(
                f"{k}: {saved.get(k)!r} -> {cfg.to_dict().get(k)!r}" for k in diff[:4]
            )
            raise FathomError(
                f"{path}: this run was made with another config ({shown}); "
                "give the new one another name (--name NEW) or delete the run folder"
            )


def write_run_config(run_dir: Path, cfg: TrainConfig, ctx: distributed.Dist) -> None:
    """Freeze runs/<exp>/config.json once a fold has started (checked again: another process
    may have frozen a different one meanwhile)."""
    check_run_config(run_dir, cfg)
    if ctx.is_main:
        fileio.write_json(run_dir / "config.json", cfg.to_dict())


class NoSchedule:
    """A constant learning rate, with the scheduler interface the loop calls."""

    def step_update(self, num_updates: int, metric=None) -> None:
        pass

    def step(self, epoch: int, metric=None) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def make_optimizer(cfg: TrainConfig, model: FathomModel, stage: int, updates_per_epoch: int):
    """Optimizer and lr schedule for one stage (timm's factories), over the trainable parameters."""
    lr = cfg.stage1_lr if stage == 1 else cfg.lr
    epochs = cfg.stage1_epochs if stage == 1 else cfg.epochs - cfg.stage1_epochs
    # stage 1 trains the head alone, which layer decay leaves at the full lr anyway
    if cfg.layer_decay > 0 and stage == 2:
        opt = layer_decay_optimizer(cfg, model, lr)
    else:
        opt = create_optimizer_v2(
            model, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
        )
    if cfg.scheduler == "none":
        return opt, NoSchedule()
    warmup = min(cfg.warmup_epochs, max(epochs - 1, 0))
    common = dict(num_epochs=epochs, warmup_epochs=warmup, warmup_lr=lr / 100, min_lr=cfg.min_lr)
    if cfg.scheduler == "plateau":
        sched, _ = create_scheduler_v2(
            opt,
            sched="plateau",
            patience_epochs=cfg.plateau_patience,
            decay_rate=0.1,
            plateau_mode="max",
            **common,
        )
    else:  # per-update cosine, so warm-up and decay are smooth however few the epochs
        sched, _ = create_scheduler_v2(
            opt, sched="cosine", step_on_epochs=False, updates_per_epoch=updates_per_epoch, **common
        )
    return opt, sched


def layer_decay_optimizer(cfg: TrainConfig, model: FathomModel, lr: float):
    """timm's layer-wise lr decay over the trainable parameters: the head at `lr`, each layer
    below it (the backbone's `group_matcher`, fine-grained) at layer_decay times the one above.

    Given the backbone, not the wrapper: timm finds the layers by the backbone's group_matcher,
    and its parameters are all the wrapper's. The groups go head first, so that the history's
    lr column (group 0) is still the head's. timm's cosine schedule scales each group by its
    `lr_scale`; the plateau one reads it only while warming up and the constant one never, so
    for them the scale goes into each group's own lr here instead (plateau's warm-up then
    climbs from lr / 100 to each group's scaled lr)."""
    groups = param_groups_layer_decay(
        model.backbone,
        weight_decay=cfg.weight_decay,
        layer_decay=cfg.layer_decay,
        no_weight_decay_list=getattr(model.backbone, "no_weight_decay", set)(),
    )
    groups += head_groups(model, cfg.weight_decay)
    groups.sort(key=lambda g: -g["lr_scale"])  # stable: layers keep their order within a scale
    if cfg.scheduler != "cosine":
        groups = [
            {k: v for k, v in g.items() if k != "lr_scale"} | {"lr": lr * g["lr_scale"]}
            for g in groups
        ]
    return create_optimizer_v2(
        groups, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )


def head_groups(model: FathomModel, weight_decay: float) -> list[dict]:
    """The trainable parameters outside the backbone (the supercategory head) as parameter
    groups at the head's full lr: timm's layer groups see the backbone only, and a parameter
    in no group gets gradients but never a step. Biases without weight decay, as timm does."""
    params = [
        (n, p)
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith("backbone.")
    ]
    decay = [p for n, p in params if p.ndim > 1]
    no_decay = [p for n, p in params if p.ndim <= 1]
    return [
        {"params": ps, "weight_decay": wd, "lr_scale": 1.0}
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0))
        if ps
    ]


def wrap_for_step(
    model: torch.nn.Module, cfg: TrainConfig, ctx: distributed.Dist, device: torch.device
):
    """The module the training step calls: DDP under torchrun (wrapped after freezing, since DDP
    registers only parameters that need gradients), then torch.compile if asked."""
    step_model = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        step_model = torch.compile(step_model)
    return step_model


RESUME_KEYS = ("config", "model", "ema", "optimizer", "scheduler", "state", "rng")


def load_checkpoint(path: Path, keys: tuple[str, ...] = ("model",)) -> dict:
    """A checkpoint holding `keys`; a damaged or foreign file is a one-line FathomError.
    (fileio.load_torch reads with weights_only: a checkpoint from a Kaggle dataset is
    untrusted input.)"""
    ckpt = fileio.load_torch(path, "checkpoint")
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise FathomError(
            f"{path}: not a fathom checkpoint (lacks {', '.join(missing)}; delete it to start over)"
        )
    return ckpt


def write_history(out: Path, history: list[dict]) -> None:
    columns = None if history else ["epoch", "stage", "train_loss", "lr", "seconds", "images_per_s"]
    fileio.write_csv(out / "history.csv", pd.DataFrame(history, columns=columns))


def _epoch_line(fold: int | None, epochs: int, row: dict) -> str:
    parts = [
        f"{fold_name(fold)} epoch {row['epoch']}/{epochs}",
        f"stage {row['stage']}",
        f"train_loss {row['train_loss']:.4f}",
    ]
    # a single-label run's MAP@20 (a reciprocal rank) stays in history.csv, out of its line
    shown = ("val_loss", "val_acc") if "val_acc" in row else ("val_loss", "val_map20")
    for key in shown:
        if key in row:
            parts.append(f"{key} {row[key]:.4f}")
    parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.0f} img/s", f"{row['seconds']:.1f}s"]
    return "  ".join(parts)
