"""How close fathom's training step comes to a bare timm loop, on the same device.

(a) a bare timm loop: random tensors already on the device, the same model, batch, precision
    and memory format; images/s after warm-up;
(b) fathom's real training: image files on disk -> `fathom cache` -> its loader (or the cache
    held on the device) -> batched augmentation -> the training step, as `train_fold` runs it;
    images/s of the training part of the last epoch, as history.csv records it.
Prints both and the ratio b/a (the target on a GPU: >= 0.95). Mixed precision as fathom picks
it (`--amp auto`: bf16 on compute capability >= 8.0, fp16 with a GradScaler below).

    python scripts/bench_train.py --model resnet50 --img-size 224 --batch 128          # a GPU
    python scripts/bench_train.py --model fathom_cnn --img-size 32 --batch 32 \\
        --n-images 256 --source-size 128x96 --epochs 2                                  # a CPU
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.optim import create_optimizer_v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.config import TrainConfig  # noqa: E402
from fathom.data.loader import TrainData  # noqa: E402
from fathom.engine import precision  # noqa: E402
from fathom.engine.models import build_model  # noqa: E402
from fathom.engine.train import train_fold  # noqa: E402

N_CLASSES = 290


def bare_loop(cfg: TrainConfig, steps: int, warmup: int, device: torch.device) -> float:
    """Images/s of a plain timm training loop on random tensors already on the device."""
    gpu = device.type == "cuda"
    model = build_model(cfg, N_CLASSES).backbone.to(device)
    memory_format = torch.channels_last if gpu and cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    step_model = torch.compile(model) if cfg.compile else model
    # the optimizer fathom uses (timm's factory), so (a) and (b) differ only in the data path
    opt = create_optimizer_v2(model, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x = torch.randn(cfg.batch_size, 3, cfg.img_size, cfg.img_size, device=device).contiguous(
        memory_format=memory_format
    )
    y = (torch.rand(cfg.batch_size, N_CLASSES, device=device) < 0.01).float()
    dtype = precision.autocast_dtype(cfg.amp, device)  # what fathom's step uses
    scaler = precision.grad_scaler(device, dtype)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for i in range(warmup + steps):
        if i == warmup:
            if gpu:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with precision.autocast(device, dtype):
            loss = loss_fn(step_model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    if gpu:
        torch.cuda.synchronize()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def _write_image(job) -> None:
    path, width, height, seed = job
    from PIL import Image

    rng = np.random.default_rng(seed)
    # smooth gradients plus noise: JPEG-compresses like a photo, not like pure noise
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * rng.uniform(
        100, 255, 3
    )
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_data(root: Path, n: int, width: int, height: int, workers: int) -> TrainData:
    """n JPEG files of width x height with random labels; fold 0 is a small validation set."""
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(root / f"img{i:05d}.jpg"), width, height, i) for i in range(n)]
    with Pool(workers) as pool:
        pool.map(_write_image, jobs, chunksize=8)
    rng = np.random.default_rng(0)
    n_val = max(n // 16, 2)
    train = pd.DataFrame(
        {
            "id": [f"img{i:05d}" for i in range(n)],
            "path": [j[0] for j in jobs],
            "categories": [
                tuple(sorted({int(c) for c in rng.integers(1, N_CLASSES + 1, 2)})) for _ in range(n)
            ],
            "fold": [0] * n_val + [1] * (n - n_val),
        }
    )
    return TrainData(
        train, train[["id", "path"]].head(n_val), tuple(range(1, N_CLASSES + 1)), name="bench"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="resnet50")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--cache-size", type=int, default=0, help="cached side (default: img_size)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="timed steps of the bare loop")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--n-images", type=int, default=4096, help="image files for (b)")
    p.add_argument("--source-size", default="1920x1080", help="WxH of the image files")
    p.add_argument("--epochs", type=int, default=3, help="epochs of (b); the last is reported")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="cache and loader processes")
    p.add_argument("--data-on-device", default="auto", choices=["auto", "yes", "no"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp", default="auto", choices=precision.AMP_CHOICES, help="mixed precision")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", help="keep files here (default: a temp folder)")
    args = p.parse_args()

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else args.device.replace("auto", "cpu")
    )
    # the settings fathom's training sets (train_fold calls it too): (a) and (b) alike
    precision.configure_cuda(device)
    width, height = (int(v) for v in args.source_size.lower().split("x"))
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fathom_bench_"))
    cfg = TrainConfig(
        name="bench",
        model=args.model,
        img_size=args.img_size,
        cache_size=args.cache_size,
        batch_size=args.batch,
        epochs=args.epochs,
        drop_rate=0.0,
        amp=args.amp,
        compile=args.compile,
        device=str(device),
        cache_dir=str(work / "cache"),
        num_workers=args.workers,
        data_on_device=args.data_on_device,
        scheduler="none",
        seed=0,
    )
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else os.cpu_count()} "
        f"{'GPU' if device.type == 'cuda' else 'CPU cores'}), torch threads {torch.get_num_threads()}"
    )
    print(
        f"model {cfg.model}, {cfg.img_size} px, batch {cfg.batch_size}, "
        f"{precision.name(precision.autocast_dtype(cfg.amp, device))}"
        f"{', channels_last' if device.type == 'cuda' and cfg.channels_last else ''}"
        f"{', torch.compile' if cfg.compile else ''}"
    )

    a = bare_loop(cfg, args.steps, args.warmup, device)
    print(f"(a) bare timm loop, random tensors on the device: {a:,.1f} images/s")

    t0 = time.perf_counter()
    data = make_data(work / "images", args.n_images, width, height, args.workers)
    print(f"    wrote {args.n_images} {width}x{height} JPEGs in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    from fathom.data.cache import build_cache

    build_cache(
        data.train, cfg.cache_dir, cfg.cache_size or cfg.img_size, "bench-train", args.workers
    )
    dt = time.perf_counter() - t0
    print(
        f"    fathom cache: {args.n_images / dt:,.0f} images/s decoded and resized on {args.workers} processes"
    )
    train_fold(cfg, data, work / "runs", fold=0, progress=False)
    history = pd.read_csv(work / "runs" / "fold0" / "history.csv")
    b = float(history["images_per_s"].iloc[-1])
    print(
        f"(b) fathom training step from image files (cache + loader + augmentation), epoch {len(history)}: {b:,.1f} images/s"
    )
    print(f"ratio b/a = {b / a:.3f}")


if __name__ == "__main__":
    main()
