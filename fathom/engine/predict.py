"""Prediction: logits, probabilities and pooled features for cached images, with optional
horizontal-flip TTA and tiles; and the `.npz` files that hold them, keyed by image id.

Tiles (`tiles=n`, fathom/data/crops.py): each frame is also predicted as an n x n grid of
overlapping tiles cut from the full-resolution file, and its probabilities become
(1 - tile_blend) * the whole frame's + tile_blend * the maximum over its tiles: a small
organism that one tile shows large enough lifts its category. Only `probs` change: `logits`
and `features` stay the whole frame's, since the osd scorers compare them with OOF rows of
the same model, and a maximum over tiles has no logits or features of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fathom import fileio, runs
from fathom.data.augment import Preprocess
from fathom.data.loader import ImageSource, shard
from fathom.engine import distributed, precision
from fathom.engine.models import feature_width
from fathom.errors import FathomError
from fathom.runs import FULL_FIT


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Sigmoid per category (multilabel) or softmax over categories (singlelabel)."""
    # a copy: logits read back from a prediction file are a read-only map (runs.read_predictions)
    t = torch.from_numpy(np.array(logits, dtype=np.float32))
    p = torch.sigmoid(t) if task == "multilabel" else torch.softmax(t, dim=1)
    return p.numpy()


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    source: ImageSource,
    rows: np.ndarray,
    prep: Preprocess,
    batch_size: int,
    amp: torch.dtype | None = None,
    tta: bool = False,
    ctx: distributed.Dist | None = None,
    extra: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of source rows `rows`, in that order; with TTA, the mean of the plain
    and flipped passes, under autocast to `amp` (precision.autocast_dtype; None: float32), the
    precision the model trained in. Under torchrun each rank predicts a shard and all get the whole.
    A model with the supercategory head also fills `extra["super_logits"]` when `extra` is a dict."""
    ctx = ctx or distributed.Dist()
    was_training = model.training
    model.eval()
    mine = rows[shard(len(rows), ctx.rank, ctx.world)]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    logits, features, supers = [], [], []
    device = source.device
    for _, images in source.batches(batches):
        views = [False, True] if tta else [False]
        out_l, out_f, out_s = 0.0, 0.0, 0.0
        for flip in views:
            with precision.autocast(device, amp):
                out = model(prep.eval(images, hflip=flip))
            out_l = out_l + out["logits"].float()
            out_f = out_f + out["features"].float()
            if "super_logits" in out:
                out_s = out_s + out["super_logits"].float()
        logits.append((out_l / len(views)).cpu().numpy())
        features.append((out_f / len(views)).cpu().numpy())
        if "super_logits" in out:
            supers.append((out_s / len(views)).cpu().numpy())
    model.train(was_training)
    backbone = getattr(model, "backbone", model)
    if not logits:  # an empty shard still needs the right widths to concatenate
        logits = [np.zeros((0, int(backbone.num_classes)), np.float32)]
        features = [np.zeros((0, feature_width(backbone)), np.float32)]
    logits, features = distributed.gather_rows(
        ctx, np.concatenate(logits), np.concatenate(features)
    )
    head = getattr(model, "super_head", None)
    if extra is not None and head is not None:
        mine_s = np.concatenate(supers) if supers else np.zeros((0, head.out_features), np.float32)
        (extra["super_logits"],) = distributed.gather_rows(ctx, mine_s.astype(np.float32))
    return logits.astype(np.float32), features.astype(np.float32)


def rank_with_supercats(
    probs: np.ndarray, super_probs: np.ndarray, supercat_of, a: float
) -> np.ndarray:
    """The `supercat_rank` blend: each category's score p_cat * (1 - a + a * p_super), p_super
    being its supercategory's probability (a category of unknown supercategory, -1, counts
    as one of an unlikely supercategory: p_super = 0).

    Why: a rare category's own output has seen a handful of positives, its supercategory's
    hundreds; the product is P(cat | super) x P(super) tempered by `a`, so a rare category in
    a likely supercategory moves up past common ones of unlikely supercategories. The factor
    is at most 1: scores stay in [0, 1], and a = 0 leaves the probabilities as they are."""
    probs = np.asarray(probs, dtype=np.float32)
    if a == 0:
        return probs
    of = np.asarray(supercat_of, dtype=np.int64)
    sup = np.asarray(super_probs, dtype=np.float32)
    per_cat = np.where(of >= 0, sup[:, np.clip(of, 0, None)], 0.0)
    return (probs * ((1.0 - a) + a * per_cat)).astype(np.float32)


def supercat_outputs(model, super_logits, probs, a: float):
    """(category scores, supercategory probabilities or None) of a model's outputs: the
    `supercat_rank` blend applied when the model has the supercategory head."""
    if super_logits is None or getattr(model, "super_head", None) is None:
        return probs, None
    super_probs = probabilities(super_logits, "multilabel")
    of = model.supercat_of.cpu().numpy()
    return rank_with_supercats(probs, super_probs, of, a), super_probs


def blend_tiles(
    probs: np.ndarray, tile_probs: np.ndarray, n_tiles: int, blend: float
) -> np.ndarray:
    """(1 - blend) * probs + blend * the maximum over each image's tiles; `tile_probs` holds
    `n_tiles` rows per row of `probs`, image by image."""
    best = np.asarray(tile_probs).reshape(len(probs), n_tiles, -1).max(axis=1)
    return ((1 - blend) * np.asarray(probs) + blend * best).astype(np.float32)


def open_tiles(
    table, label: str, cfg, size: int, device: torch.device, ctx: distributed.Dist | None = None
) -> ImageSource:
    """The tiles of `table`'s images (cfg.tiles, cfg.tile_overlap) as an ImageSource, from
    their cache `<label>-tiles<n>` under cfg.cache_dir (built from the original files by one
    process while the others wait on its lock, not in a collective whose timeout a 19 GB
    build could outlast). It goes to the device only while it predicts (ImageSource.held)."""
    from fathom.data.cache import build_cache
    from fathom.data.crops import tile_table

    ctx = ctx or distributed.Dist()
    tiles = tile_table(table, cfg.tiles, cfg.tile_overlap)
    label = f"{label}-tiles{cfg.tiles}"
    path = build_cache(tiles, cfg.cache_dir, size, label, cfg.num_workers or None, ctx.is_main)
    return ImageSource(path, device, on_device=False)


def predict_probs(
    model: torch.nn.Module,
    source: ImageSource,
    rows: np.ndarray,
    prep: Preprocess,
    batch_size: int,
    amp: torch.dtype | None,
    cfg,
    ctx: distributed.Dist | None = None,
    tiles: ImageSource | None = None,
    extra: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs, logits, features) of source rows `rows` with cfg.tta; with `tiles` (open_tiles
    of the same table), probs blended with the maximum over each image's tiles. `extra`
    collects the supercategory head's logits, as `predict` does."""
    logits, feats = predict(model, source, rows, prep, batch_size, amp, cfg.tta, ctx, extra)
    probs = probabilities(logits, cfg.task)
    if tiles is not None:
        n = cfg.tiles**2
        tile_rows = (np.asarray(rows)[:, None] * n + np.arange(n)).ravel()
        with tiles.held(cfg.data_on_device):
            tile_logits, _ = predict(model, tiles, tile_rows, prep, batch_size, amp, cfg.tta, ctx)
        probs = blend_tiles(probs, probabilities(tile_logits, cfg.task), n, cfg.tile_blend)
    return probs, logits, feats


def write_predictions(
    path: Path,
    ids,
    logits: np.ndarray,
    features: np.ndarray,
    class_ids,
    task: str,
    truth: np.ndarray | None = None,
    model=None,
    super_logits: np.ndarray | None = None,
    supercat_rank: float = 0.0,
    probs: np.ndarray | None = None,
) -> Path:
    """One model's predictions in the run folder's .npz format (fathom/runs.py), with the
    probabilities of `task` computed from the logits unless given (blended with tiles); a
    model with the supercategory head adds `super_probs`, and `supercat_rank` blends them into
    `probs` (the raw probabilities stay recoverable as sigmoid(logits))."""
    probs = probabilities(logits, task) if probs is None else probs
    probs, super_probs = supercat_outputs(model, super_logits, probs, supercat_rank)
    return runs.write_predictions(
        path, ids, probs, logits, features, class_ids, truth, super_probs=super_probs
    )


def load_for_prediction(checkpoint: Path, device: torch.device):
    """(model, config) from a best.pt, with the weights it holds (never a download)."""
    from fathom.config import from_dict
    from fathom.engine.models import build_model

    ckpt = fileio.load_torch(checkpoint, "checkpoint")  # untrusted input: tensors only
    missing = [
        k for k in ("config", "model", "class_ids") if not isinstance(ckpt, dict) or k not in ckpt
    ]
    if missing:
        raise FathomError(f"{checkpoint}: not a fathom checkpoint (lacks {', '.join(missing)})")
    if not isinstance(ckpt["config"], dict):
        raise FathomError(f"{checkpoint}: not a fathom checkpoint (its config is not a table)")
    # the weights come from the checkpoint: how the run was initialised is no longer asked
    # (a run from before `pretrained=` was refused as empty still predicts)
    cfg = from_dict({**ckpt["config"], "pretrained": False}, where=str(checkpoint))
    weights = ckpt["model"]
    head = weights.get("super_head.weight") if isinstance(weights, dict) else None
    if head is None:  # a checkpoint without the supercategory head predicts without it
        cfg = cfg.replace(supercat_weight=0.0, supercat_rank=0.0)
        model = build_model(cfg, len(ckpt["class_ids"]))
    else:
        model = build_model(cfg, len(ckpt["class_ids"]), weights["supercat_of"], len(head))
    model.load_state_dict(weights)
    return model.to(device).eval(), cfg, tuple(ckpt["class_ids"])


def default_predictions_path(run_dir, comp_dir) -> Path:
    """predictions/<competition folder name>/<exp>/eval.npz: where `fathom submit --predictions
    predictions/<comp>` looks, and never the run's own eval.npz (`fathom oof` writes that one)."""
    comp_name, exp = Path(comp_dir).resolve().name, Path(run_dir).resolve().name
    return Path("predictions") / comp_name / exp / "eval.npz"


def warn_missing_folds(run_dir: Path, checkpoints: dict[int, Path], n_folds: int) -> None:
    """Warn when some but not all of the run's n_folds folds have a best.pt: an average over
    fewer folds than the run was meant to have is easy to take for the whole. (A run with
    no fold at all, only a full fit, is complete as it is.)"""
    from fathom.engine.models import warn

    folds = [k for k in checkpoints if k != FULL_FIT]
    missing = [k for k in range(n_folds) if k not in checkpoints]
    if not folds or not missing:
        return
    using = "folds " + ", ".join(map(str, folds))
    if FULL_FIT in checkpoints:
        using += " and the full fit"
    named = ", ".join(map(str, missing))
    named = f"fold {named} has" if len(missing) == 1 else f"folds {named} have"
    warn(f"{run_dir}: {named} no best.pt; predicting with {using}")


def run_config(run: runs.Run, checkpoints: dict[int, Path]) -> dict:
    """The run's config.json; for a run folder without one (copied by hand), the config saved
    in one of its checkpoints."""
    if config := run.config():
        return config
    first = next(iter(checkpoints.values()))
    ckpt = fileio.load_torch(first, "checkpoint")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict):
        raise FathomError(f"{first}: not a fathom checkpoint (no config)")
    return ckpt["config"]


def predict_run(
    run_dir,
    comp_dir,
    out: Path | None = None,
    cache_dir="cache",
    device="auto",
    batch_size=None,
    tta: bool | None = None,
    overwrite: bool = False,
    tiles: int | None = None,
    tile_overlap: float | None = None,
    tile_blend: float | None = None,
) -> Path:
    """Every checkpoint of a run on COMP's eval images, in the run-level eval.npz format.

    `out` is the .npz to write (default: `default_predictions_path`); an existing one is
    refused unless `overwrite`. `tta` averages in the horizontal flip; None takes the run's
    config value, and so do `tiles`, `tile_overlap` and `tile_blend` (module docstring).
    Besides the averaged `probs` and `logits`, the file holds one row per
    checkpoint in `fold_probs`, `fold_logits` and `fold_features`, and `folds` names the fold
    of each row: k for fold<k>/best.pt, -1 (FULL_FIT) for full/best.pt, a full fit, which
    has no OOF rows to pair with. `checkpoints` names their folders; `tta` and `tiles` record
    the choices.
    """
    from fathom.data import open_dataset
    from fathom.data.cache import build_cache
    from fathom.data.loader import fits_on_device
    from fathom.engine.models import data_config

    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        # a batch of -4 images slices nothing: an empty eval.npz, "predicted" without a word
        raise FathomError(f"batch size must be a whole number of images >= 1, not {batch_size!r}")
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else default_predictions_path(run_dir, comp_dir)
    if out.exists() and not overwrite:
        raise FathomError(f"{out}: already exists; pass --overwrite to replace it")
    fileio.check_writable(out.parent, "predictions folder")  # before the long work
    fileio.check_writable(cache_dir, "cache folder")
    run = runs.open_run(run_dir)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise FathomError(f"{run_dir}: no fold<k>/best.pt or full/best.pt (train first)")
    run_cfg = run_config(run, checkpoints)
    warn_missing_folds(run_dir, checkpoints, int(run_cfg.get("n_folds", 0)))
    tta = bool(run_cfg.get("tta", False)) if tta is None else tta
    chosen = {"tiles": tiles, "tile_overlap": tile_overlap, "tile_blend": tile_blend}
    # the run's own values where none is given (older runs have none: the defaults)
    chosen = {k: v for k, v in chosen.items() if v is not None}
    chosen = {
        k: run_cfg[k] for k in ("tiles", "tile_overlap", "tile_blend") if k in run_cfg
    } | chosen
    ctx = distributed.from_env()
    dev = distributed.pick_device(device, ctx)
    dataset = open_dataset(comp_dir)
    table = dataset.split("eval")  # a folder dataset's eval images are its test/ folder
    parts = {}  # by fold number, so that `folds` pairs each row with its own OOF rows
    for k, ckpt in checkpoints.items():
        model, cfg, class_ids = load_for_prediction(ckpt, dev)
        cfg = cfg.replace(tta=tta, cache_dir=str(cache_dir), num_workers=0, **chosen)
        cfg.check()  # the prediction-time choices, against the run's task (one line)
        dcfg = data_config(model)
        size = cfg.img_size or int(dcfg["input_size"][-1])
        side = cfg.cache_size or size  # the cache's side, which is what lives on the device
        path = build_cache(table, cache_dir, side, f"{dataset.name}-eval")
        source = None  # the previous checkpoint's images go before these arrive
        source = ImageSource(path, dev, fits_on_device(len(table) * side * side * 3, dev))
        gpu = dev.type == "cuda"
        prep = Preprocess(cfg, size, dcfg["mean"], dcfg["std"], dev, cfg.channels_last and gpu)
        batch = batch_size or cfg.batch_size * 2
        rows = np.arange(len(table))
        amp = precision.autocast_dtype(cfg.amp, dev)
        extra: dict = {}
        tile_src = None
        if cfg.tiles:
            label = f"{dataset.name}-eval"
            tile_src = open_tiles(table, label, cfg, cfg.cache_size or size, dev)
        probs, logits, feats = predict_probs(
            model, source, rows, prep, batch, amp, cfg, None, tile_src, extra
        )
        probs, super_probs = supercat_outputs(
            model, extra.get("super_logits"), probs, cfg.supercat_rank
        )
        parts[k] = {
            "ids": table["id"].to_numpy().astype(str),
            "probs": probs,
            "logits": logits,
            "features": feats,
            "category_ids": np.asarray(class_ids),
        }
        if super_probs is not None:
            parts[k]["super_probs"] = super_probs
        print(
            f"{ckpt.parent.name}: predicted {len(table)} images"
            + (" with flip TTA" if tta else "")
            + (f" and {cfg.tiles}x{cfg.tiles} tiles" if cfg.tiles else "")
        )
    merged = runs.average_eval(parts)
    merged["checkpoints"] = np.asarray([c.parent.name for c in checkpoints.values()], dtype=str)
    merged["tta"] = np.asarray(tta)
    merged["tiles"] = np.asarray(cfg.tiles)
    merged["tile_overlap"] = np.asarray(cfg.tile_overlap)
    merged["tile_blend"] = np.asarray(cfg.tile_blend)
    return fileio.save_npz(out, **merged)
