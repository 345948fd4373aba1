"""A kNN member: each model's own pooled features, read as a nearest-neighbour classifier over
the images that model trained on.

A sigmoid head learns a category from its positives, and a category with two or three training
images barely moves it: the head ranks it below the common ones. The features of the same
model often place such an image right beside those two or three. The kNN member scores
category c of an image by the similarity-weighted share of its nearest training images that
hold c (cosine similarity, weights exp((s - s_max) / temperature) over the k nearest), so a
rare category ranks as high as its neighbours are close. The public FathomNet 2023 solutions
used kNN on separately trained contrastive features; this reads the features the classifier
already has, at the cost of one forward pass over each fold model's training images
(`bank.npz`, written by the engine beside best.pt).

Honest by construction: fold k's OOF rows are scored by fold k's model against fold k's bank
(the rows that model trained on, never a held-out one), and so are the eval images, once per
fold model, averaged. The temperature is chosen from `TEMPERATURES` on the OOF, fold-held-out
(each fold's rows are scored with the temperature the other folds chose), so a kNN member's
CV is no more optimistic than a model's.

The neighbour search is written here, and is exactly scikit-learn's NearestNeighbors(metric=
"cosine", algorithm="brute") (a test holds them equal): sklearn 1.9 sends float32 cosine
through its generic chunked pairwise path (copies, a clip, validation per chunk); unit rows,
one BLAS matmul per chunk of query rows and an argpartition of the k nearest search one
FathomNet-sized fold (10,744 eval x 4,760 bank rows, 2,048 wide) in ~1.0 s (1.1-1.3 s
before the k nearest were picked on the similarities, `_nearest`) against sklearn's 2.2-2.9 s
on a quiet 2-core machine, with less memory. The matmul itself is most of what remains:
three backbones' five folds are ~2.2 TFLOP, the floor of `fathom submit`.
The weighting is written here because sklearn's KNeighborsRegressor recomputes the neighbours
for every temperature tried and its `weights` callable gets no way to keep exp() from
underflowing at a small temperature (the shift by the row's nearest distance is what keeps it
finite).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import fileio
from fathom.errors import FathomError
from fathom.metrics import map_at_k_matrix
from fathom.runs import all_finite, fold_dirs, fold_label, read_predictions

TEMPERATURES = (0.01, 0.02, 0.05, 0.1, 0.2)
NEIGHBOURS = 50
BANK_FILE = "bank.npz"
BANK_KEYS = ("ids", "features", "targets", "category_ids")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32; a zero row stays zero, so its cosine similarity to
    everything is 0 (distance 1), as scikit-learn's cosine treats it."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def neighbours(query: np.ndarray, bank: np.ndarray, k: int = NEIGHBOURS, chunk: int = 1024):
    """(cosine distances, bank indices) of each query row's k nearest bank rows, nearest first.

    Chunks of `chunk` query rows keep memory bounded (1,024 x a 6,000-row bank: 25 MB of
    similarities) whatever the number of eval rows; the chunk also fixes how BLAS blocks the
    matmul, and with it the last bit of every similarity, so it stays what it was. The k
    nearest are then picked `SELECT_ROWS` rows at a time (`_nearest`)."""
    bank = unit_rows(bank)
    query = unit_rows(query)
    k = min(k, len(bank))
    dist = np.empty((len(query), k), dtype=np.float32)
    index = np.empty((len(query), k), dtype=np.intp)
    for s in range(0, len(query), chunk):
        sim = query[s : s + chunk] @ bank.T
        for r in range(0, len(sim), SELECT_ROWS):
            block = sim[r : r + SELECT_ROWS]
            dist[s + r : s + r + len(block)], index[s + r : s + r + len(block)] = _nearest(block, k)
    return dist, index


# argpartition's index matrix of 256 rows (10 MB for a 4,760-row bank) is memory the allocator
# reuses; for a 1,024-row chunk (39 MB) it maps fresh pages every time: twice the time
SELECT_ROWS = 256


def _nearest(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, bank indices) of the k most similar bank rows of each row of `sim`, nearest
    first, exactly as a stable sort of np.argpartition(distances, k - 1) orders them.

    The k are found on the similarities themselves (a distance 1 - s, clipped to [0, 2] as
    sklearn does, is monotone in s) and only they become distances: one pass over the matrix
    instead of three. Where distances may tie (at the k-th neighbour or among the k, e.g. an
    all-zero feature row, at distance 1 from every bank row), which bank rows are kept and in
    what order is whatever argpartition and the stable sort made of the full distance rows:
    those rows are searched exactly that way, so the result is the plain search's."""
    n = sim.shape[1]
    if k < n:  # the k + 1 most similar last, the (k + 1)-th of them first
        part = np.argpartition(sim, n - k - 1, axis=1)
        near = part[:, n - k :]
    else:
        near = np.broadcast_to(np.arange(n), sim.shape)
    near_d = _distance(np.take_along_axis(sim, near, axis=1))
    order = np.argsort(near_d, axis=1, kind="stable")
    near_d = np.take_along_axis(near_d, order, axis=1)
    near = np.take_along_axis(near, order, axis=1)
    if k == n:
        return near_d, near
    # a tie among the k, or between the k-th and the next nearest
    next_d = _distance(np.take_along_axis(sim, part[:, n - k - 1 : n - k], axis=1))
    rows = np.flatnonzero(
        (np.diff(near_d, axis=1) == 0).any(axis=1) | (next_d[:, 0] == near_d[:, -1])
    )
    if len(rows):
        d = _distance(sim[rows])
        near[rows] = np.argpartition(d, k - 1, axis=1)[:, :k]
        near_d[rows] = np.take_along_axis(d, near[rows], axis=1)
        order = np.argsort(near_d[rows], axis=1, kind="stable")
        near_d[rows] = np.take_along_axis(near_d[rows], order, axis=1)
        near[rows] = np.take_along_axis(near[rows], order, axis=1)
    return near_d, near


def _distance(similarity: np.ndarray) -> np.ndarray:
    """Cosine distance from similarity, in [0, 2] as sklearn clips it (in place)."""
    np.subtract(1.0, similarity, out=similarity)
    return np.clip(similarity, 0.0, 2.0, out=similarity)


def vote(distances: np.ndarray, index: np.ndarray, bank_targets: np.ndarray, temperature: float):
    """Each query's category scores: its neighbours' label rows, weighted by
    exp(-(d - d_nearest) / temperature); in [0, 1], 1 where every neighbour holds the category."""
    w = np.exp(-(distances - distances[:, :1]) / temperature)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkc->nc", w, np.asarray(bank_targets, dtype=np.float32)[index])


def knn_scores(
    query, bank, bank_targets, temperature: float, k: int = NEIGHBOURS, chunk: int = 256
) -> np.ndarray:
    """Category scores of the query rows (chunked: the neighbours' label rows of 10,000 eval
    images at once would take gigabytes; 256 rows' take 15 MB, memory the allocator reuses
    from chunk to chunk, where 2,048 rows' were fresh pages every time)."""
    out = np.zeros((len(query), np.shape(bank_targets)[1]), dtype=np.float32)
    if len(query) == 0:  # a competition without eval images
        return out
    d, i = neighbours(query, bank, k)
    bank_targets = np.asarray(bank_targets, dtype=np.float32)  # once, not in every chunk's vote
    for s in range(0, len(d), chunk):
        out[s : s + chunk] = vote(d[s : s + chunk], i[s : s + chunk], bank_targets, temperature)
    return out


# --- banks: a fold model's features of the images it trained on


def write_bank(path: Path, ids, features, targets, category_ids) -> Path:
    """Features as float32, as the model computed them (issue 18.3: no rounding where
    predictions are stored; a fold of the real competition: ~4,800 x 1,280 values, 25 MB)."""
    return fileio.save_npz(
        path,
        ids=np.asarray(ids, dtype=str),
        features=np.asarray(features, dtype=np.float32),
        targets=np.asarray(targets, dtype=np.uint8),
        category_ids=np.asarray(category_ids),
    )


def read_bank(model_dir: Path, category_ids) -> dict[str, np.ndarray]:
    path = Path(model_dir) / BANK_FILE
    hint = (
        "a fold trained before fathom wrote kNN banks: run its `fathom train` command again, "
        "which writes the bank of each finished fold from its best.pt without training"
    )
    data = read_predictions(path, BANK_KEYS, hint)
    n, c = len(data["ids"]), len(data["category_ids"])
    if n == 0 or data["features"].ndim != 2 or len(data["features"]) != n:
        raise FathomError(f"{path}: not a kNN bank (no features, or not one row per image)")
    if data["targets"].shape != (n, c):
        raise FathomError(
            f"{path}: `targets` has shape {data['targets'].shape}, expected ({n}, {c})"
        )
    if [int(x) for x in data["category_ids"]] != [int(x) for x in category_ids]:
        raise FathomError(f"{path}: its categories differ from the run's predictions")
    finite(data["features"], path)
    return data


def finite(features: np.ndarray, where) -> np.ndarray:
    """A diverged model's NaN features would stop scikit-learn with a traceback."""
    if not all_finite(np.asarray(features, dtype=np.float32)):
        raise FathomError(f"{where}: non-finite features (did the model diverge?)")
    return features


def check_bank(bank: dict, model_dir, query: np.ndarray, held_ids, fold: int) -> dict:
    """A bank fit to score fold `fold`'s rows: features as wide as the query's, and none of the
    images the fold model was validated on (`held_ids`, its OOF rows). A bank copied from
    another fold's model holds some of them: each would find itself at distance 0 and vote its
    own labels, inflating the member's CV without a word."""
    path = Path(model_dir) / BANK_FILE
    width, want = bank["features"].shape[1], np.shape(query)[1]
    if width != want:
        raise FathomError(
            f"{path}: features {width} wide, but the run's predictions have {want} "
            "(a bank of another model? write it again with the fold's `fathom train` command)"
        )
    leaked = np.isin(bank["ids"], np.asarray(held_ids, dtype=str))
    if leaked.any():
        raise FathomError(
            f"{path}: holds {int(leaked.sum())} of fold {fold}'s validation images (e.g. "
            f"{bank['ids'][leaked][0]}): not the bank of fold {fold}'s model, which never "
            "trained on them (write it again with the fold's `fathom train` command)"
        )
    return bank


# --- the member's OOF and eval scores


def oof_neighbours(run, oof: dict) -> dict[int, tuple]:
    """Per fold k: (its OOF row positions, distances, neighbour indices, fold k's bank labels)."""
    dirs = fold_dirs(run.path)
    out = {}
    for k in np.unique(oof["fold"]):
        if int(k) not in dirs:
            raise FathomError(f"{run.path}: OOF rows of fold {k} but no fold{k}/ folder")
        bank = read_bank(dirs[int(k)], oof["category_ids"])
        rows = np.flatnonzero(oof["fold"] == k)
        query = finite(oof["features"][rows], run.path / "oof.npz")
        check_bank(bank, dirs[int(k)], query, oof["ids"][rows], int(k))
        d, i = neighbours(query, bank["features"])
        out[int(k)] = (rows, d, i, bank["targets"])
    return out


def _vote_rows(parts, temperature: float, shape) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float32)
    for rows, d, i, labels in parts.values():
        out[rows] = vote(d, i, labels, temperature)
    return out


def tune_knn(run, oof: dict, targets: np.ndarray, metric=map_at_k_matrix) -> dict:
    """The kNN member of one run on its OOF rows: the temperature chosen on all rows (what a
    submission uses), each fold's rows scored with the one the other folds chose (`probs`, the
    honest OOF the ensemble is tuned on), and the CV of every temperature tried."""
    parts = oof_neighbours(run, oof)
    shape = oof["probs"].shape
    by_t = {t: _vote_rows(parts, t, shape) for t in TEMPERATURES}
    fold = oof["fold"]

    def best(rows):
        return max(TEMPERATURES, key=lambda t: (metric(by_t[t][rows], targets[rows]), -t))

    held = np.zeros(shape, dtype=np.float32)
    fold_t = {}
    for k in np.unique(fold):
        t = best(fold != k) if len(np.unique(fold)) > 1 else TEMPERATURES[1]
        fold_t[int(k)] = t
        held[fold == k] = by_t[t][fold == k]
    return {
        "temperature": best(np.ones(len(fold), dtype=bool)),
        "fold_temperatures": fold_t,
        "cv_by_temperature": {str(t): metric(p, targets) for t, p in by_t.items()},
        "probs": held,
    }


def eval_knn(run, arrays: dict, temperature: float, oof: dict | None = None) -> np.ndarray:
    """The kNN member on the eval images: each model's eval features (`fold_features`, in the
    order of `folds`) against that model's own bank, averaged over the models. With the run's
    `oof`, each fold model's bank is checked to hold none of that fold's OOF rows."""
    if "fold_features" not in arrays or "folds" not in arrays:
        raise FathomError(
            f"{run.path}: its eval predictions lack `fold_features`/`folds` for the kNN member "
            "(predict again with this version of fathom)"
        )
    scores = []
    for j, k in enumerate(arrays["folds"]):
        bank = read_bank(run.path / fold_label(int(k)), arrays["category_ids"])
        query = finite(arrays["fold_features"][j], f"{run.path}: eval predictions")
        held = oof["ids"][oof["fold"] == k] if oof is not None else ()
        check_bank(bank, run.path / fold_label(int(k)), query, held, int(k))
        scores.append(knn_scores(query, bank["features"], bank["targets"], temperature))
    return np.mean(scores, axis=0).astype(np.float32)
