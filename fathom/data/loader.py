"""What the engine trains on, and how batches of cached images reach the device.

Any reader can feed the engine: it only needs a `TrainData` (a training table with `id`,
`path`, `categories` (tuple of class ids) and `fold`; an eval table with `id` and `path`;
the list of class ids that fixes the output columns). `fathom.data.open_dataset(...).train_data`
builds it for either kind of dataset.

Batches come from the image cache (fathom/cache.py) in one of two ways:
- on the device: the whole uint8 cache is one tensor on the GPU (or in RAM on CPU) and a batch
  is an index into it: no loader, no copies, nothing on the critical path;
- through a DataLoader: workers slice batches out of the memory-mapped cache, for data that
  does not fit on the device.
Either way the batch arrives as uint8 NHWC and is augmented on the device (fathom/augment.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fathom.data.coco import label_matrix
from fathom.errors import FathomError


@dataclass(frozen=True)
class TrainData:
    """A training table (id, path, categories, fold), an eval table (id, path) and the class ids."""

    train: pd.DataFrame
    eval: pd.DataFrame
    class_ids: tuple[int, ...]
    name: str = "data"  # prefix of this data's cache files
    # the supercategory index of each class column (-1: unknown); () = read from the table's
    # `supercategories` column (see supercategory_map); only the supercategory head needs it
    supercat_of: tuple[int, ...] = ()
    # the training images' boxes (fathom.data.coco.read_boxes), read when crop_rate > 0
    boxes: pd.DataFrame | None = None

    def __post_init__(self):
        missing = {"id", "path", "categories", "fold"} - set(self.train.columns)
        if missing:
            raise FathomError(f"training table lacks column(s) {', '.join(sorted(missing))}")
        if {"id", "path"} - set(self.eval.columns):
            raise FathomError("eval table needs columns id and path")


def fold_rows(
    data: TrainData, fold: int | None, holdout: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into data.train) to train on and to validate on for `fold` (None: full fit).

    Training rows holding a `holdout` category are dropped; validation rows are all kept.
    """
    folds = data.train["fold"].to_numpy()
    if fold is None:
        val = np.zeros(len(folds), dtype=bool)
    else:
        present = sorted(set(int(f) for f in folds))
        if fold not in present:
            raise FathomError(f"fold {fold} is not in the folds file (it has folds {present})")
        val = folds == fold
    train = ~val
    if holdout:
        held = set(holdout)
        train &= np.array([not held.intersection(c) for c in data.train["categories"]], dtype=bool)
    return np.flatnonzero(train), np.flatnonzero(val)


def targets(categories, class_ids, task: str) -> np.ndarray:
    """(N, C) float32 0/1 matrix (multilabel) or (N,) int64 class column indices (singlelabel)."""
    if task == "multilabel":
        return label_matrix(categories, class_ids)
    column = {int(c): j for j, c in enumerate(class_ids)}
    labels = np.empty(len(categories), dtype=np.int64)
    for i, row in enumerate(categories):
        if len(row) != 1:
            raise FathomError(f"singlelabel task: image {i} has {len(row)} categories, not one")
        labels[i] = column[int(row[0])]
    return labels


def supercategory_targets(data: TrainData) -> tuple[np.ndarray, np.ndarray]:
    """(the (N, S) 0/1 supercategory targets of the training rows, the supercategory index of
    each class column, -1 where unknown).

    The targets are the table's `supercategories` column as it is (an image's supercategories
    are those of its categories; the reader fills it). The class -> supercategory map is
    `data.supercat_of` when given, else read off the table: the one supercategory shared by
    every row holding the class (a class no row holds, or one that only ever appears beside
    another supercategory's classes, stays -1)."""
    if "supercategories" not in data.train.columns:
        raise FathomError("supercat_weight > 0: the training table has no `supercategories` column")
    rows = [tuple(int(s) for s in r) for r in data.train["supercategories"]]
    known = list(data.supercat_of)
    n_super = max([s for r in rows for s in r] + known + [-1]) + 1
    if n_super < 1:
        raise FathomError("supercat_weight > 0: no training image has a supercategory")
    y = np.zeros((len(rows), n_super), dtype=np.float32)
    for i, r in enumerate(rows):
        y[i, list(r)] = 1.0
    if known:
        if len(known) != len(data.class_ids):
            raise FathomError("TrainData.supercat_of needs one supercategory per class id")
        return y, np.asarray(known, dtype=np.int64)
    column = {int(c): j for j, c in enumerate(data.class_ids)}
    shared: list[set | None] = [None] * len(column)
    for cats, sup in zip(data.train["categories"], rows, strict=True):
        for c in cats:
            j = column[int(c)]
            shared[j] = set(sup) if shared[j] is None else shared[j] & set(sup)
    of = [next(iter(s)) if s is not None and len(s) == 1 else -1 for s in shared]
    return y, np.asarray(of, dtype=np.int64)


# eval probabilities below this are zeroed in a pseudo-label: the long tail of near-zero
# sigmoid outputs is noise, not evidence of an organism
PSEUDO_FLOOR = 0.05


def pseudo_labels(
    pseudo_from: str | Path,
    fold: int | None,
    data: TrainData,
    val_rows: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(eval-table rows to add, their (M, C) soft targets) from the first round's model of the
    same fold: `pseudo_from/fold<k>/eval.npz` (a full fit: `full/eval.npz`).

    Only predictions are read, never eval truth. Honest CV: the first round's fold-k model
    must have validated on exactly this fold's validation images (its oof.npz ids), so it
    never trained on them. Rows whose top probability reaches `threshold` are kept; their
    targets are the probabilities, zeroed below PSEUDO_FLOOR."""
    from fathom import runs

    run = Path(pseudo_from)
    folder = run / runs.fold_label(runs.FULL_FIT if fold is None else fold)
    if fold is not None:
        oof = runs.read_predictions(
            folder / "oof.npz", ("ids",), f"pseudo_from: {run} has not finished fold {fold}"
        )
        mine = data.train["id"].to_numpy().astype(str)[val_rows]
        if set(oof["ids"].tolist()) != set(mine.tolist()):
            raise FathomError(
                f"{folder / 'oof.npz'}: pseudo_from validated fold {fold} on other images than "
                "this run (other folds?): its model may have trained on this fold's validation rows"
            )
    ev = runs.read_predictions(
        folder / "eval.npz", runs.EVAL_KEYS, f"pseudo_from: {run} has no {folder.name} predictions"
    )
    runs.check_categories(ev, data.class_ids, str(folder / "eval.npz"))
    ev = runs.align_rows(ev, data.eval["id"].astype(str).tolist(), str(folder / "eval.npz"))
    probs = ev["probs"].astype(np.float32)
    keep = np.flatnonzero(probs.max(axis=1) >= threshold) if len(probs) else np.zeros(0, int)
    soft = np.where(probs[keep] >= PSEUDO_FLOOR, probs[keep], 0.0).astype(np.float32)
    return keep, soft


def train_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[np.ndarray]:
    """This rank's batches of one shuffled epoch over n rows: same permutation on every rank
    (seeded by seed and epoch), each rank a disjoint slice of every global batch. Incomplete
    global batches are dropped (a batch of one breaks BatchNorm), unless that leaves none."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    step = batch_size * world
    if n < step:
        return [part for part in np.array_split(perm, world)[rank : rank + 1] if len(part)]
    return [
        perm[b + rank * batch_size : b + (rank + 1) * batch_size]
        for b in range(0, n - step + 1, step)
    ]


def shard(n: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """This rank's contiguous share of n rows (for prediction; gathered back in order)."""
    return np.array_split(np.arange(n), world)[rank]


class _BatchDataset(torch.utils.data.Dataset):
    """One item = one whole batch, sliced from the memory-mapped cache (one call per batch,
    not per image: per-sample Python overhead is what limits a loader at thousands of images/s)."""

    def __init__(self, path: Path):
        self.path = path
        self.images = None  # opened lazily in each worker: a memmap must not be pickled

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        if self.images is None:
            self.images = np.load(self.path, mmap_mode="r")
        order = np.argsort(rows)  # read the file forwards, then restore the batch order
        out = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        out[order] = self.images[rows[order]]
        return torch.from_numpy(out)

    def __len__(self) -> int:  # pragma: no cover - only batches from a sampler are used
        return 0


def to_device(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """One host-to-device copy that does not make the host wait: from pinned memory,
    non-blocking (on a CPU, the array itself, no copy)."""
    t = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


# host memory an upload passes through, per buffer (two on a GPU): bounded whatever the cache
UPLOAD_CHUNK_BYTES = 64 * 2**20


def upload(array: np.ndarray, device: torch.device, chunk_bytes: int = UPLOAD_CHUNK_BYTES):
    """A (memory-mapped) array as one tensor on `device`, read chunk by chunk.

    Why not one `pin_memory().to(device)`: that holds the whole cache in host memory twice
    (the read, then the pinned copy), and PyTorch's pinned allocator rounds a block up to a
    power of two and keeps it for the process: a 10.5 GB tile cache pinned 16 GiB of RAM, per
    process. Here host memory is two fixed pinned buffers (one fills while the other is
    copied), whatever the array's size. On a CPU the tensor is the RAM copy itself."""
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    rows = max(1, min(len(array), chunk_bytes // row_bytes))
    dtype = torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype
    out = torch.empty(array.shape, dtype=dtype, device=device)
    gpu = device.type == "cuda"
    if not gpu:  # the tensor is in host memory already: read the file into it, chunk by chunk
        for start in range(0, len(array), rows):
            out.numpy()[start : start + rows] = array[start : start + rows]
        return out
    buffers = [torch.empty((rows, *array.shape[1:]), dtype=dtype, pin_memory=True) for _ in "ab"]
    copied: list = [None] * len(buffers)  # each buffer's copy, finished before it is refilled
    for n, start in enumerate(range(0, len(array), rows)):
        b = n % len(buffers)
        if copied[b] is not None:
            copied[b].synchronize()
        part = array[start : start + rows]
        staged = buffers[b][: len(part)]
        staged.numpy()[...] = part
        out[start : start + len(part)].copy_(staged, non_blocking=True)
        copied[b] = torch.cuda.Event()
        copied[b].record()
    torch.cuda.current_stream(device).synchronize()  # the last copies, before the buffers go
    return out


class _Batches(torch.utils.data.Sampler):
    """The index batches of the current pass; a persistent DataLoader reads them anew each time
    it is iterated, so its workers outlive the pass."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class ImageSource:
    """Batches of cached uint8 images (B, H, W, 3) on `device`, from the device or a DataLoader.

    `on_device`: the whole cache is copied to the device now and stays there. Otherwise a
    DataLoader serves it, made once with persistent workers (not rebuilt every epoch), and
    `held()` puts the cache on the device for one block only (the eval images while predicting,
    so they do not take GPU memory during training)."""

    def __init__(self, path: Path, device: torch.device, on_device: bool, num_workers: int = 0):
        self.path = Path(path)
        self.device = device
        self.num_workers = num_workers
        array = np.load(self.path, mmap_mode="r")
        self.shape = array.shape
        self.tensor = self._load() if on_device else None  # a RAM copy on a CPU
        self._sampler = _Batches()
        self._loader = None

    def _load(self) -> torch.Tensor:
        return upload(np.load(self.path, mmap_mode="r"), self.device)

    @property
    def n_bytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    @contextlib.contextmanager
    def held(self, data_on_device: str = "auto"):
        """The cache on the device for the block when `data_on_device` allows it (auto: when it
        fits now), released after; a source already held stays as it is."""
        hold = self.tensor is None and (
            data_on_device == "yes"
            or (data_on_device == "auto" and fits_on_device(self.n_bytes, self.device))
        )
        if hold:
            self.tensor = self._load()
        try:
            yield self
        finally:
            if hold:
                self.tensor = None

    def batches(self, index_batches: list[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        if self.tensor is not None:
            # every batch's indices in one upload, sliced on the device
            flat = to_device(np.concatenate(index_batches or [np.zeros(0, np.int64)]), self.device)
            start = 0
            for rows in index_batches:
                yield rows, self.tensor[flat[start : start + len(rows)]]
                start += len(rows)
            return
        self._sampler.batches = list(index_batches)
        for rows, batch in zip(index_batches, self._data_loader(), strict=True):
            yield rows, batch.to(self.device, non_blocking=True)

    def _data_loader(self) -> torch.utils.data.DataLoader:
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                _BatchDataset(self.path),
                sampler=self._sampler,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if self.num_workers else None,
                # its own generator: worker seeding must not draw from the global RNG (dropout's),
                # or a run would differ between the two paths and fail to repeat
                generator=torch.Generator().manual_seed(0),
            )
        return self._loader


class JoinedSource:
    """Two image sources as one: rows 0..len(first)-1 are `first`'s, the next `second`'s
    (the training cache, then the eval cache for pseudo-labelled rows). Each batch is read
    from both and put back in its own row order, so no image is cached twice."""

    def __init__(self, first: ImageSource, second: ImageSource):
        self.first, self.second = first, second
        self.device = first.device
        # as an ImageSource: rows x side x side x 3 (both caches hold the same side)
        self.shape = (len(first) + len(second), *first.shape[1:])

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def batches(self, index_batches: list[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        n = len(self.first)
        a = [rows[rows < n] for rows in index_batches]
        b = [rows[rows >= n] - n for rows in index_batches]
        # every batch's way back to its own row order, in one upload for the pass (a copy per
        # step would make each step wait for it)
        backs = [
            np.argsort(np.concatenate([np.flatnonzero(rows < n), np.flatnonzero(rows >= n)]))
            for rows in index_batches
        ]
        flat = to_device(np.concatenate(backs or [np.zeros(0, np.int64)]), self.device)
        parts = zip(self.first.batches(a), self.second.batches(b), strict=True)
        start = 0
        for rows, ((_, xa), (_, xb)) in zip(index_batches, parts, strict=True):
            back = flat[start : start + len(rows)]
            start += len(rows)
            if not len(xb) or not len(xa):
                yield rows, (xa if len(xb) == 0 else xb)
                continue
            yield rows, torch.cat([xa, xb])[back]


def device_budget(device: torch.device) -> int:
    """The bytes of images a device may hold: half of what is free on a GPU (the other half
    for activations, gradients and the optimizer), a quarter of the free RAM on a CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        import os

        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**30
    return free // 4


def fits_on_device(n_bytes: int, device: torch.device) -> bool:
    """Hold a cache on the device when it fits in device_budget."""
    return n_bytes < device_budget(device)


def device_plan(mode: str, parts: dict[str, int], device: torch.device) -> tuple[bool, str]:
    """Whether the images a fold trains on live on the device, decided once for all of them
    together (`parts`: what each takes, in bytes): (hold them, the line that says why not,
    "" when there is nothing to say). `mode` is the config's data_on_device."""
    total = sum(parts.values())
    if mode == "yes":
        return True, ""
    if mode == "no" or total == 0:
        return False, ""
    budget = device_budget(device)
    if total < budget:
        return True, ""
    named = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in parts.items() if v)
    where = "GPU's free memory" if device.type == "cuda" else "free RAM"
    share = "half" if device.type == "cuda" else "a quarter"
    return False, (
        f"the training images ({named}) do not fit in {share} of the {where} "
        f"({budget / 1e9:.2f} GB): the DataLoader reads them from the cache files instead "
        "(data_on_device = yes holds them anyway; a smaller cache_size shrinks them)"
    )
