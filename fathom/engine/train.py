"""The training loop: one fold (or a full fit) of any timm backbone, resumable, with its outputs.

    runs/<exp>/config.json                the resolved config (also inside every checkpoint)
    runs/<exp>/fold<k>/history.csv        one row per epoch
    runs/<exp>/fold<k>/last.pt            everything needed to resume, written after each epoch
    runs/<exp>/fold<k>/best.pt            the weights with the best val MAP@20 (EMA weights with ema)
    runs/<exp>/fold<k>/oof.npz            the fold's validation images, from best.pt
    runs/<exp>/fold<k>/eval.npz           the eval images, from best.pt
    runs/<exp>/full/                      a full fit (no validation): eval.npz only

A killed run resumes from last.pt with the same command and loses at most the epoch in
progress; a finished fold is skipped. Under torchrun every rank runs this same code on its
slice of each batch; rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from tqdm import tqdm

from fathom import fileio
from fathom.config import TrainConfig, config_differences
from fathom.data.augment import Preprocess
from fathom.data.cache import build_cache
from fathom.data.loader import (
    ImageSource,
    TrainData,
    fits_on_device,
    fold_rows,
    targets,
    train_batches,
)
from fathom.engine import distributed
from fathom.engine.losses import build_loss
from fathom.engine.models import (
    FathomModel,
    build_model,
    data_config,
    freeze_norm_statistics,
    init_head_bias,
    set_trainable,
)
from fathom.engine.predict import predict, probabilities, write_predictions
from fathom.errors import FathomError
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


def fold_name(fold: int | None) -> str:
    return "full" if fold is None else f"fold{fold}"


def fold_is_done(out: Path, full: bool) -> bool:
    return (out / "eval.npz").is_file() and (full or (out / "oof.npz").is_file())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_run_config(run_dir: Path, cfg: TrainConfig, ctx: distributed.Dist) -> None:
    """Write runs/<exp>/config.json, or check that the existing one describes the same run."""
    path = run_dir / "config.json"
    if path.is_file():
        import json

        saved = json.loads(path.read_text(encoding="utf-8"))
        diff = config_differences(saved, cfg.to_dict())
        if diff:
            shown = ", ".join(
                f"{k}: {saved.get(k)!r} -> {cfg.to_dict().get(k)!r}" for k in diff[:4]
            )
            raise FathomError(
                f"{path}: this run was made with another config ({shown}); "
                "give the new one another name (--name NEW) or delete the run folder"
            )
    if ctx.is_main:
        fileio.write_json(path, cfg.to_dict())


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


def open_images(
    data: TrainData, cfg: TrainConfig, size: int, device: torch.device, ctx: distributed.Dist
):
    """Image sources for the training and eval tables (rank 0 builds missing caches first)."""
    if ctx.is_main:
        build_cache(data.train, cfg.cache_dir, size, f"{data.name}-train", cfg.num_workers or None)
        if len(data.eval):
            build_cache(
                data.eval, cfg.cache_dir, size, f"{data.name}-eval", cfg.num_workers or None
            )
    distributed.barrier(ctx)
    sources = []
    for table, label in ((data.train, "train"), (data.eval, "eval")):
        if not len(table):
            sources.append(None)
            continue
        path = build_cache(table, cfg.cache_dir, size, f"{data.name}-{label}", progress=False)
        n_bytes = len(table) * size * size * 3
        on_device = cfg.data_on_device == "yes" or (
            cfg.data_on_device == "auto" and fits_on_device(n_bytes, device)
        )
        sources.append(ImageSource(path, device, on_device, cfg.num_workers))
    return sources


def load_checkpoint(path: Path) -> dict:
    # weights_only: a checkpoint from a Kaggle dataset is untrusted input
    return torch.load(path, map_location="cpu", weights_only=True)


def write_history(out: Path, history: list[dict]) -> None:
    columns = None if history else ["epoch", "stage", "train_loss", "lr", "seconds", "images_per_s"]
    fileio.write_csv(out / "history.csv", pd.DataFrame(history, columns=columns))


def train_fold(
    cfg: TrainConfig, data: TrainData, run_dir: str | Path, fold: int | None, progress: bool = True
) -> Path:
    """Train one fold (None: a full fit on every row), then write its predictions. Returns its folder."""
    ctx = distributed.from_env()
    device = distributed.pick_device(cfg.device, ctx)
    distributed.init(ctx, device)
    full = fold is None
    out = Path(run_dir) / fold_name(fold)
    say = print if ctx.is_main else (lambda *a, **k: None)
    if fold_is_done(out, full):
        say(f"{out}: already done (delete the folder to train it again)")
        return out
    seed_everything(cfg.seed)  # the same initial weights on every rank
    train_rows, val_rows = fold_rows(data, fold, cfg.holdout_categories)
    if len(train_rows) < 2:
        raise FathomError(
            f"{fold_name(fold)}: {len(train_rows)} training image(s); need at least 2"
        )
    class_ids = data.class_ids
    y_all = targets(data.train["categories"], class_ids, cfg.task)

    model = build_model(cfg, len(class_ids))
    if cfg.prior_bias:
        y_train = y_all[train_rows]
        prior = (
            y_train.mean(axis=0)
            if cfg.task == "multilabel"
            else np.bincount(y_train, minlength=len(class_ids)) / len(y_train)
        )
        init_head_bias(model, prior, cfg.task)
    dcfg = data_config(model)
    size = cfg.img_size or int(dcfg["input_size"][-1])
    on_gpu = device.type == "cuda"
    amp = cfg.amp and on_gpu
    channels_last = cfg.channels_last and on_gpu
    train_src, eval_src = open_images(data, cfg, cfg.cache_size or size, device, ctx)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    prep = Preprocess(cfg, size, dcfg["mean"], dcfg["std"], device, channels_last)
    loss_fn = build_loss(cfg, y_all[train_rows], len(class_ids)).to(device)
    y_dev = torch.from_numpy(y_all).to(device)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None

    state, resume = TrainState(), None
    if (out / "last.pt").is_file():
        resume = load_checkpoint(out / "last.pt")
        diff = config_differences(resume["config"], cfg.to_dict())
        if diff:
            raise FathomError(
                f"{out / 'last.pt'}: made with another config (differs in {', '.join(diff)})"
            )
        model.load_state_dict(resume["model"])
        if ema is not None:
            ema.module.load_state_dict(resume["ema"])
        state = TrainState(**resume["state"])
        torch.set_rng_state(resume["rng"])
        say(f"{out}: resuming after epoch {state.epoch}")
    else:
        seed_everything(cfg.seed + ctx.rank)  # dropout differs between ranks
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_history(out, state.history)  # drop rows of an epoch that last.pt does not hold

    batches_per_epoch = len(
        train_batches(len(train_rows), cfg.batch_size, cfg.seed, 0, ctx.rank, ctx.world)
    )
    updates_per_epoch = math.ceil(batches_per_epoch / cfg.accumulate)
    stage, opt, sched, step_model = 0, None, None, None
    while not state.finished:
        epoch = state.epoch
        if (1 if epoch < cfg.stage1_epochs else 2) != stage:
            stage = 1 if epoch < cfg.stage1_epochs else 2
            set_trainable(model, stage, cfg.unfreeze_stages)
            opt, sched = make_optimizer(cfg, model, stage, updates_per_epoch)
            if resume is not None and resume["state"]["stage"] == stage:
                opt.load_state_dict(resume["optimizer"])
                sched.load_state_dict(resume["scheduler"])
            else:
                state.updates = 0
            resume = None
            step_model = wrap_for_step(model, cfg, ctx, device)
            sched.step_update(num_updates=state.updates)
            say(
                f"{fold_name(fold)}: stage {stage}, {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters"
            )

        # --- one epoch of training
        t0 = time.perf_counter()
        model.train()
        freeze_norm_statistics(model)
        # augmentation drawn from its own generator: the same on any device, and on resume
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + ctx.rank)
        batches = [
            train_rows[b]
            for b in train_batches(
                len(train_rows), cfg.batch_size, cfg.seed, epoch, ctx.rank, ctx.world
            )
        ]
        loss_sum = torch.zeros((), device=device)
        seen = 0
        opt.zero_grad(set_to_none=True)
        bar = tqdm(train_src.batches(batches), total=len(batches), leave=False, disable=not (progress and ctx.is_main),
                   desc=f"{fold_name(fold)} epoch {epoch + 1}/{cfg.epochs}")  # fmt: skip
        for i, (rows, images) in enumerate(bar):
            x = prep.train(images, gen)
            y = y_dev[torch.from_numpy(rows).to(device)]
            step_now = (i + 1) % cfg.accumulate == 0 or i + 1 == len(batches)
            # accumulating under DDP: skip the gradient all-reduce until the step
            sync = contextlib.nullcontext() if step_now or not ctx.active else step_model.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = step_model(x)["logits"]
                loss = loss_fn(logits, y)
                (loss / cfg.accumulate).backward()
            if step_now:
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(
                        [p for p in model.parameters() if p.requires_grad], cfg.grad_clip
                    )
                opt.step()
                opt.zero_grad(set_to_none=True)
                state.updates += 1
                state.total_updates += 1
                if ema is not None:
                    ema.update(model, step=state.total_updates)
                sched.step_update(num_updates=state.updates)
            loss_sum += loss.detach() * len(rows)  # stays on the device: no sync per step
            seen += len(rows)
        train_loss = float(loss_sum) / max(seen, 1)  # float() waits for the GPU to finish
        train_seconds = time.perf_counter() - t0
        lr = opt.param_groups[0]["lr"]

        # --- validation (with the EMA weights when kept)
        row = {"epoch": epoch + 1, "stage": stage, "train_loss": train_loss}
        if full:
            score = float(epoch)  # no validation: the latest epoch is the best
        else:
            eval_model = ema.module if ema is not None else model
            logits, _ = predict(
                eval_model, train_src, val_rows, prep, cfg.batch_size * 2, amp, False, ctx
            )
            y_val = y_all[val_rows]
            row["val_loss"] = float(
                loss_fn(
                    torch.from_numpy(logits).to(device),
                    y_dev[torch.from_numpy(val_rows).to(device)],
                )
            )
            probs = probabilities(logits, cfg.task)
            onehot = (
                y_val
                if cfg.task == "multilabel"
                else np.eye(len(class_ids), dtype=np.float32)[y_val]
            )
            row["val_map20"] = map_at_k_matrix(probs, onehot)
            if cfg.task == "singlelabel":
                row["val_acc"] = float((probs.argmax(1) == y_val).mean())
            score = distributed.all_agree(ctx, row["val_map20"])
        row |= {
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 3),
            "images_per_s": round(seen * ctx.world / train_seconds, 1),
        }
        sched.step(epoch + 1 - (cfg.stage1_epochs if stage == 2 else 0), score)

        improved = score > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
        else:
            state.bad_epochs += 1
        state.epoch, state.stage = epoch + 1, stage
        state.history.append(row)
        early_stop = not full and cfg.patience > 0 and state.bad_epochs >= cfg.patience
        state.finished = early_stop or state.epoch >= cfg.epochs
        if ctx.is_main:
            # best first, then last: a kill between the two only repeats this epoch
            if improved:
                weights = (ema.module if ema is not None else model).state_dict()
                fileio.save_torch(out / "best.pt", {"config": cfg.to_dict(), "model": weights, "class_ids": list(class_ids),
                                                    "epoch": epoch + 1, "score": score})  # fmt: skip
            fileio.save_torch(out / "last.pt", {
                "config": cfg.to_dict(), "model": model.state_dict(),
                "ema": ema.module.state_dict() if ema is not None else None,
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "state": asdict(state), "rng": torch.get_rng_state(), "class_ids": list(class_ids),
            })  # fmt: skip
            write_history(out, state.history)
        say(_epoch_line(fold, cfg.epochs, row) + ("  early stop" if early_stop else ""))

    # --- predictions from the best checkpoint
    distributed.barrier(ctx)
    best = load_checkpoint(out / "best.pt")
    model.load_state_dict(best["model"])
    if not full:
        logits, feats = predict(
            model, train_src, val_rows, prep, cfg.batch_size * 2, amp, cfg.tta, ctx
        )
        if ctx.is_main:
            truth = (
                y_all[val_rows]
                if cfg.task == "multilabel"
                else np.eye(len(class_ids), dtype=np.float32)[y_all[val_rows]]
            )
            write_predictions(
                out / "oof.npz",
                data.train["id"].to_numpy()[val_rows],
                logits,
                feats,
                class_ids,
                cfg.task,
                truth,
            )
    n_eval = len(data.eval)
    if eval_src is not None:
        logits, feats = predict(
            model, eval_src, np.arange(n_eval), prep, cfg.batch_size * 2, amp, cfg.tta, ctx
        )
    else:
        logits = np.zeros((0, len(class_ids)), np.float32)
        feats = np.zeros((0, model.backbone.num_features), np.float32)
    if ctx.is_main:
        write_predictions(
            out / "eval.npz", data.eval["id"].to_numpy(), logits, feats, class_ids, cfg.task
        )
        say(
            f"{out}: best epoch {state.best_epoch}"
            + ("" if full else f", val MAP@20 {state.best_score:.4f}")
        )
    distributed.barrier(ctx)
    return out


def _epoch_line(fold: int | None, epochs: int, row: dict) -> str:
    parts = [
        f"{fold_name(fold)} epoch {row['epoch']}/{epochs}",
        f"stage {row['stage']}",
        f"train_loss {row['train_loss']:.4f}",
    ]
    for key in ("val_loss", "val_map20", "val_acc"):
        if key in row:
            parts.append(f"{key} {row[key]:.4f}")
    parts += [f"lr {row['lr']:.2e}", f"{row['images_per_s']:.0f} img/s", f"{row['seconds']:.1f}s"]
    return "  ".join(parts)


def train_run(
    cfg: TrainConfig,
    data: TrainData,
    runs_dir: str | Path,
    folds: list[int | None],
    progress: bool = True,
) -> Path:
    """Train the given folds (None = full fit) of the run `runs_dir/<cfg.name>` in turn."""
    ctx = distributed.from_env()
    run_dir = Path(runs_dir) / cfg.name
    check_run_config(run_dir, cfg, ctx)
    for fold in folds:
        train_fold(cfg, data, run_dir, fold, progress)
    return run_dir
