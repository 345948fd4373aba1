"""The run-folder contract: what the engine leaves in `runs/<exp>/` and how every later stage
reads it. This is the only module that knows the layout.

    runs/<exp>/config.json        the resolved training config (`fathom train`)
    runs/<exp>/fold<k>/           one trained fold: best.pt, last.pt, history.csv,
                                  oof.npz (its validation rows, with `targets`), eval.npz,
                                  bank.npz (best.pt's features of its training images, with
                                  their targets: the kNN member's, fathom/knn.py)
    runs/<exp>/full/              a full fit (no validation rows): best.pt, history.csv, eval.npz,
                                  bank.npz
    runs/<exp>/oof.npz            the folds' OOF rows stitched (`fathom oof`): ids, fold, probs,
                                  logits, features, targets, category_ids; stitched_folds and
                                  stitched_sha256 (the fold files it read: a stitch older than
                                  a fold is refused where it is read)
    runs/<exp>/eval.npz           every checkpoint's eval predictions, stacked (fold_probs,
                                  fold_logits, fold_features, in the order of `folds`) and
                                  averaged (probs, logits)
    runs/<exp>/cv.json            CV MAP@20 overall and per fold

Optional in every prediction file: `super_probs` (N, S), the supercategory head's probabilities
(runs trained with `supercat_weight > 0`; stacked per model as `fold_super_probs`). Files
without it read as before.

In `folds`, a fold model is its fold number k and the full fit is FULL_FIT (-1): it has no
OOF rows, so nothing that pairs eval features with OOF features may use it.

Every prediction file is read through `read_predictions`, which checks shapes, ids and finite
values. The arrays it returns are read-only maps of the file (`fileio.load_npz`: FathomNet's
three eval.npz are 1.4 GB, and copying them was a quarter of `fathom submit`); a stage that
wants to change one in place takes a copy first. A tuning file (`fathom tune`) names runs;
`read_tuning` reads it and `check_tuning` checks it against what `tune` writes. Every problem is a one-line FathomError naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fathom import fileio
from fathom.errors import FathomError

FULL_FIT = -1
# what one trained model leaves in its fold<k>/ or full/ folder (a training kernel keeps these)
MODEL_FILES = ("best.pt", "history.csv", "oof.npz", "eval.npz", "bank.npz")
OOF_KEYS = ("ids", "fold", "probs", "logits", "features", "category_ids")
EVAL_KEYS = ("ids", "probs", "logits", "category_ids")
SUPER_KEYS = ("super_probs",)  # optional: only runs with the supercategory head have it
_FOLD_DIR = re.compile(r"fold(\d+)")


# --- prediction files


def write_predictions(
    path: str | Path,
    ids,
    probs: np.ndarray,
    logits: np.ndarray,
    features: np.ndarray,
    category_ids,
    truth: np.ndarray | None = None,
    super_probs: np.ndarray | None = None,
) -> Path:
    """One model's predictions as .npz (atomically): `ids`, `probs`, `logits`, `features`,
    `category_ids`, and with `truth` also `targets`, the (N, C) 0/1 labels, so OOF scoring
    needs no dataset reader; with `super_probs` also the (N, S) supercategory probabilities."""
    extra = {} if truth is None else {"targets": np.asarray(truth, dtype=np.float32)}
    if super_probs is not None:
        extra["super_probs"] = np.asarray(super_probs, dtype=np.float32)
    return fileio.save_npz(
        path,
        **extra,
        ids=np.asarray([str(i) for i in ids], dtype=str),
        probs=np.asarray(probs, dtype=np.float32),
        logits=np.asarray(logits, dtype=np.float32),
        features=np.asarray(features, dtype=np.float32),
        category_ids=np.asarray(category_ids, dtype=np.int64),
    )


def read_predictions(
    path: str | Path,
    keys: tuple[str, ...] = EVAL_KEYS,
    hint: str = "not written yet",
    only: tuple[str, ...] | None = None,
) -> dict[str, np.ndarray]:
    """A prediction .npz as a dict of arrays, checked: the `keys` are there and probs/logits
    have one row per id and one column per category. With `only`, just those arrays (and the
    `keys`) are read and checked.

    The arrays are read-only views of the file (`fileio.load_npz`): nothing may write into
    them in place; take a copy first."""
    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: missing ({hint})")
    try:
        arrays = fileio.load_npz(path, None if only is None else (*keys, *only))
    except Exception as exc:  # numpy raises several types for a damaged archive
        raise FathomError(f"{path}: cannot read as .npz ({exc})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise FathomError(f"{path}: lacks array(s) {', '.join(missing)}")
    if "ids" in arrays and "category_ids" in arrays:
        arrays["ids"] = arrays["ids"].astype(str)
        check_shapes(arrays, path)
    check_finite(arrays, path)
    return arrays


ROW_KEYS = ("probs", "logits", "targets", "features", "super_probs")  # (N, ...) per image
STACKED_KEYS = ("fold_probs", "fold_logits", "fold_features", "fold_super_probs")  # (M, N, ...)


def check_shapes(arrays: dict[str, np.ndarray], path) -> None:
    """Every per-image array has one row per id (and one column per category where it is a
    category matrix); the stacked per-model ones have one block per model, named by `folds`;
    `fold` and `folds` are whole numbers. A hand-made or truncated file otherwise ends in a
    broadcasting error far from the file, or, for a 1-D `features`, in a silent wrong osd."""
    n, c = len(arrays["ids"]), len(arrays["category_ids"])
    unique, counts = np.unique(arrays["ids"], return_counts=True)
    if len(unique) != n:  # rows are found by id: a second row of an id would be one of them
        twice = unique[counts > 1]
        raise FathomError(
            f"{path}: image {twice[0]} has {counts.max()} rows ({len(twice)} repeated id(s))"
        )

    def bad(key: str, want: str) -> FathomError:
        return FathomError(f"{path}: `{key}` has shape {arrays[key].shape}, expected {want}")

    for key in (*ROW_KEYS, *STACKED_KEYS):
        a = arrays.get(key)
        if a is None:
            continue
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise FathomError(f"{path}: `{key}` holds {a.dtype} values, not numbers")
        stacked = key in STACKED_KEYS
        block = a.shape[1:] if stacked else a.shape
        if a.ndim != (3 if stacked else 2) or block[0] != n:
            raise bad(key, f"({'M, ' if stacked else ''}{n}, ...)")
        if key.removeprefix("fold_") in ("probs", "logits", "targets") and block[1] != c:
            raise bad(key, f"({'M, ' if stacked else ''}{n}, {c})")
    models = {len(arrays[k]) for k in STACKED_KEYS if k in arrays}
    if len(models) > 1:
        raise FathomError(f"{path}: the stacked per-model arrays hold different model counts")
    for key, length in (("fold", n), ("folds", next(iter(models), None))):
        a = arrays.get(key)
        if a is None:
            continue
        whole = np.issubdtype(a.dtype, np.integer) or (
            np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == a.round()).all()
        )
        if a.ndim != 1 or (length is not None and len(a) != length) or not whole:
            raise FathomError(
                f"{path}: `{key}` must be {length if length is not None else 'one'} whole "
                f"fold number(s), not {a.dtype} of shape {a.shape}"
            )
        arrays[key] = a.astype(np.int64)


FINITE_KEYS = ("probs", "logits", "features", "super_probs")


def check_finite(arrays: dict[str, np.ndarray], path) -> None:
    """Refuse NaN or infinite predictions and features (a diverged model) where they are read:
    a NaN member joins an ensemble at its weight and drags it to its score, and NaN features
    make the feature osd scorers a constant. Names the file and the fold of the first bad row."""
    for key in (*FINITE_KEYS, *(f"fold_{k}" for k in FINITE_KEYS)):
        values = arrays.get(key)
        if values is None or not np.issubdtype(values.dtype, np.floating):
            continue
        if all_finite(values):
            continue
        bad = ~np.isfinite(values)
        if key.startswith("fold_"):  # stacked per model: (models, N, ...)
            j, row = (int(x) for x in np.argwhere(bad)[0][:2])
            folds = arrays.get("folds")
            model = fold_label(int(folds[j])) if folds is not None and j < len(folds) else j
            where = f"model {model}, row {row}"
        else:
            row = int(np.argwhere(bad)[0][0])
            fold = arrays.get("fold")
            where = f"fold {int(fold[row])}, row {row}" if fold is not None else f"row {row}"
        raise FathomError(
            f"{path}: non-finite {key} ({int(bad.sum())} NaN or infinite value(s), first at "
            f"{where}); did the model diverge? retrain it (lower lr) or leave the run out"
        )


def all_finite(values: np.ndarray, block: int = 1 << 16) -> bool:
    """np.isfinite(values).all(), a block at a time: the whole bool matrix of a 440 MB
    fold_features is a fresh 110 MB allocation, slower to fault in than the test itself."""
    flat = values.reshape(-1) if values.flags.c_contiguous else values.ravel()
    return all(np.isfinite(flat[s : s + block]).all() for s in range(0, flat.size, block))


file_sha256 = fileio.sha256_file  # oof.npz stitches are checked by their folds' hashes


def stitch_oof(folds: dict[int, dict]) -> dict[str, np.ndarray]:
    """Concatenate the folds' oof.npz contents (each with a `targets` matrix), `fold` added."""
    parts = list(folds.values())
    cats = parts[0]["category_ids"]
    for k, p in folds.items():
        if not np.array_equal(p["category_ids"], cats):
            raise FathomError(
                f"fold {k}: its category columns differ from fold {next(iter(folds))}'s"
            )
    widths = {k: p["features"].shape[1] for k, p in folds.items()}
    if len(set(widths.values())) > 1:
        raise FathomError(
            "the folds' features differ in width ("
            + ", ".join(f"fold {k}: {w}" for k, w in widths.items())
            + "): were they trained with different models?"
        )
    optional = [k for k in SUPER_KEYS if all(k in p for p in parts)]
    out = {
        key: np.concatenate([p[key] for p in parts])
        for key in ("ids", "probs", "logits", "features", "targets", *optional)
    }
    out["fold"] = np.concatenate(
        [np.full(len(p["ids"]), k, dtype=np.int64) for k, p in folds.items()]
    )
    out["category_ids"] = cats
    if len(set(out["ids"].tolist())) != len(out["ids"]):
        raise FathomError(
            "an image is in the validation part of two folds (were the folds changed mid-run?)"
        )
    return out


def average_eval(models: dict[int, dict]) -> dict[str, np.ndarray]:
    """Eval predictions of several checkpoints, keyed by fold number (FULL_FIT for a full fit):
    stacked (fold_*) and averaged (probs, logits), with `folds` naming each stacked row."""
    parts = list(models.values())
    ids = parts[0]["ids"]
    for k, p in models.items():
        if not np.array_equal(p["ids"], ids):
            raise FathomError(f"fold {k}: its eval ids differ from fold {next(iter(models))}'s")
    extra = {}
    if all("super_probs" in p for p in parts):
        extra["super_probs"] = np.mean([p["super_probs"] for p in parts], axis=0).astype(np.float32)
        extra["fold_super_probs"] = np.stack([p["super_probs"] for p in parts]).astype(np.float32)
    return {
        **extra,
        "ids": ids,
        "probs": np.mean([p["probs"] for p in parts], axis=0).astype(np.float32),
        "logits": np.mean([p["logits"] for p in parts], axis=0).astype(np.float32),
        "fold_probs": np.stack([p["probs"] for p in parts]).astype(np.float32),
        "fold_logits": np.stack([p["logits"] for p in parts]).astype(np.float32),
        "fold_features": np.stack([p["features"] for p in parts]).astype(np.float32),
        "category_ids": parts[0]["category_ids"],
        "folds": np.asarray(list(models), dtype=np.int64),
    }


def fold_dirs(run_dir: str | Path) -> dict[int, Path]:
    """A run's fold<k> folders by k, in fold order (fold10 after fold9)."""
    run_dir = Path(run_dir)
    found = {}
    for d in run_dir.iterdir() if run_dir.is_dir() else ():
        m = _FOLD_DIR.fullmatch(d.name)
        if m and d.is_dir():
            found[int(m.group(1))] = d
    return dict(sorted(found.items()))


def model_dirs(run_dir: str | Path) -> dict[int, Path]:
    """Every trained model's folder by fold number: fold<k> as k, full/ as FULL_FIT (last)."""
    dirs = fold_dirs(run_dir)
    if (Path(run_dir) / "full").is_dir():
        dirs[FULL_FIT] = Path(run_dir) / "full"
    return dirs


def fold_label(fold: int) -> str:
    return "full" if fold == FULL_FIT else f"fold{fold}"


# --- a run


@dataclass(frozen=True)
class Run:
    """One experiment's folder and what it holds; every reader of a run goes through it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def config(self) -> dict:
        """The run's config.json ({} when there is none), refused when it is not an object:
        every stage after training reads keys of it."""
        path = self.path / "config.json"
        config = fileio.read_json(path) if path.is_file() else {}
        if not isinstance(config, dict):
            raise FathomError(f"{path}: not a config (expected a JSON object)")
        return config

    def cv(self) -> dict:
        path = self.path / "cv.json"
        return fileio.read_json(path) if path.is_file() else {}

    @property
    def task(self) -> str:
        return self.config().get("task", "multilabel")

    def n_folds(self) -> int | None:
        n = self.config().get("n_folds")
        return int(n) if isinstance(n, int) else None

    def oof(self) -> dict[str, np.ndarray]:
        """The stitched OOF (`fathom oof` writes it), refused when folds have finished since it
        was stitched (`--allow-missing-folds` while training went on), or a stitched fold's
        oof.npz has changed since (the fold was trained again): tuning on it would use a part
        of the images, or another model's predictions, and keep doing so without a word."""
        arrays = read_predictions(
            self.path / "oof.npz", OOF_KEYS, f"`fathom oof {self.path}` writes it"
        )
        newer = self.folds_finished_since(arrays)
        changed = self.folds_changed_since(arrays)
        if newer or changed:
            stitched = ", ".join(str(int(k)) for k in np.unique(arrays["fold"]))
            what = (
                f"fold(s) {', '.join(map(str, newer))} have finished since"
                if newer
                else f"fold(s) {', '.join(map(str, changed))} were trained again since"
            )
            raise FathomError(
                f"{self.path / 'oof.npz'}: stitched fold(s) {stitched}, but {what}; run "
                f"`fathom oof {self.path}` again"
            )
        return arrays

    def folds_finished_since(self, oof: dict[str, np.ndarray]) -> list[int]:
        """Folds with a finished fold<k>/oof.npz that the stitched `oof` (its `fold` column:
        the folds it stitched) lacks. A copy of a run without its fold OOF files (a Kaggle
        dataset) has none."""
        stitched = {int(k) for k in np.unique(oof["fold"])}
        return [
            k
            for k, d in fold_dirs(self.path).items()
            if k not in stitched and (d / "oof.npz").is_file()
        ]

    def folds_changed_since(self, oof: dict[str, np.ndarray]) -> list[int]:
        """Stitched folds whose fold<k>/oof.npz no longer has the SHA-256 `fathom oof` recorded
        (`stitched_folds`, `stitched_sha256`; files from before it recorded them: none)."""
        if "stitched_folds" not in oof or "stitched_sha256" not in oof:
            return []
        dirs = fold_dirs(self.path)
        return [
            int(k)
            for k, digest in zip(oof["stitched_folds"], oof["stitched_sha256"], strict=False)
            if int(k) in dirs
            and (dirs[int(k)] / "oof.npz").is_file()
            and file_sha256(dirs[int(k)] / "oof.npz") != str(digest)
        ]

    def fold_oof(self, fold: int) -> dict[str, np.ndarray]:
        return read_predictions(
            self.path / fold_label(fold) / "oof.npz",
            ("ids", "probs", "logits", "features", "targets", "category_ids"),
            "this fold's training has not finished",
        )

    def oof_so_far(self) -> tuple[dict[str, np.ndarray], list[str]]:
        """The stitched OOF if `fathom oof` wrote it (and no fold has finished since), else the
        finished folds' OOF rows joined
        (to look at a run while it trains), and notes on what was dropped. Only ids, probs and
        category_ids are required; targets, logits and features come along where every fold
        has them."""
        if (self.path / "oof.npz").is_file():
            stitched = read_predictions(self.path / "oof.npz", OOF_KEYS)
            if not self.folds_finished_since(stitched):
                return stitched, []
            # a partial stitch while training went on: the finished folds say more
        done = {k: d for k, d in fold_dirs(self.path).items() if (d / "oof.npz").is_file()}
        if not done:
            raise FathomError(f"{self.path}: no oof.npz (the run has not finished a fold)")
        parts = {
            k: read_predictions(d / "oof.npz", ("ids", "probs", "category_ids"))
            for k, d in done.items()
        }
        ids = np.concatenate([p["ids"] for p in parts.values()])
        _, first = np.unique(ids, return_index=True)  # an id in two folds' oof: keep the first
        keep = np.sort(first)
        optional = [
            k
            for k in ("logits", "features", "targets", *SUPER_KEYS)
            if all(k in p for p in parts.values())
        ]
        out = {
            key: np.concatenate([p[key] for p in parts.values()])[keep]
            for key in ("ids", "probs", *optional)
        }
        out["fold"] = np.concatenate(
            [np.full(len(p["ids"]), k, dtype=np.int64) for k, p in parts.items()]
        )[keep]
        out["category_ids"] = next(iter(parts.values()))["category_ids"]
        dropped = len(ids) - len(keep)
        return out, [f"{dropped} repeated OOF ids dropped"] if dropped else []

    def eval(self, folder: Path | None = None) -> dict[str, np.ndarray]:
        """The run's eval predictions, or those `fathom predict` wrote to folder/eval.npz."""
        path = (Path(folder) if folder else self.path) / "eval.npz"
        return read_predictions(
            path, EVAL_KEYS, f"`fathom oof {self.path}` or `fathom predict` writes it"
        )

    def checkpoints(self) -> dict[int, Path]:
        """Every model's best.pt by fold number (FULL_FIT for full/): what `predict` loads."""
        return {
            k: d / "best.pt" for k, d in model_dirs(self.path).items() if (d / "best.pt").is_file()
        }

    def missing_folds(self, done: list[int] | None = None) -> list[int]:
        """Folds 0..n_folds-1 (config.json) that are not among `done` (default: those with
        an oof.npz)."""
        n = self.n_folds()
        if not n:
            return []
        if done is None:
            done = [k for k, d in fold_dirs(self.path).items() if (d / "oof.npz").is_file()]
        return [k for k in range(n) if k not in done]

    def histories(self) -> dict[str, object]:
        """fold name -> its history.csv as a DataFrame (one row per epoch)."""
        import pandas as pd

        return {
            fold_label(k): pd.read_csv(d / "history.csv")
            for k, d in model_dirs(self.path).items()
            if (d / "history.csv").is_file()
        }

    def holdout_categories(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.config().get("holdout_categories", ()) or ())

    def upload_files(self) -> list[Path]:
        """What a kernel needs from the run: its JSON files, oof.npz (`fathom submit` reads the
        OOF features for its osd scorers) and every model's best.pt, config and kNN bank."""
        if not (self.path / "config.json").is_file():
            raise FathomError(
                f"{self.path}: no config.json (not a run folder written by `fathom train`)"
            )
        files = sorted(p for p in self.path.glob("*.json") if p.is_file())
        files += [p for p in [self.path / "oof.npz"] if p.is_file()]
        checkpoints = list(self.checkpoints().values())
        if not checkpoints:
            raise FathomError(f"{self.path}: no fold<k>/best.pt or full/best.pt to upload")
        beside = [c.parent / n for c in checkpoints for n in ("config.json", "bank.npz")]
        return files + checkpoints + [p for p in beside if p.is_file()]


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise FathomError(f"{path}: no such run folder (`fathom train` writes runs/<exp>/)")
    return Run(path)


def align_rows(
    arrays: dict[str, np.ndarray], ids, where: str, keys=("probs", "logits", "features", "fold")
) -> dict:
    """The arrays reordered to `ids`; every id must be there. Rows already in that order are
    not copied (eval.npz is written in the dataset's eval order: its fold_features alone are
    ~1 GB for three backbones)."""
    index = {uid: i for i, uid in enumerate(arrays["ids"])}
    missing = [uid for uid in ids if uid not in index]
    if missing:
        raise FathomError(f"{where}: has no row for image {missing[0]} ({len(missing)} missing)")
    order = np.array([index[uid] for uid in ids], dtype=int)
    out = dict(arrays)
    out["ids"] = np.asarray(ids, dtype=str)
    if len(order) == len(arrays["ids"]) and (order == np.arange(len(order))).all():
        return out
    for k in (*keys, "targets", *SUPER_KEYS):
        if k in arrays:
            out[k] = arrays[k][order]
    for k in ("fold_probs", "fold_logits", "fold_features", "fold_super_probs"):
        if k in arrays:
            out[k] = arrays[k][:, order]
    return out


def check_feature_width(run: Run, eval_arrays: dict, oof: dict, where=None) -> None:
    """The eval features and the OOF features a feature scorer compares must come from the
    same models: equal widths, or a broadcasting error far from the files."""
    got, want = eval_arrays["fold_features"].shape[-1], oof["features"].shape[1]
    if got != want:
        raise FathomError(
            f"{where or run.path / 'eval.npz'}: eval features are {got} wide, but "
            f"{run.path / 'oof.npz'} has {want} (predicted with another run's models?)"
        )


def check_categories(arrays: dict[str, np.ndarray], category_ids, where: str) -> None:
    got = [int(c) for c in arrays["category_ids"]]
    if got != [int(c) for c in category_ids]:
        raise FathomError(
            f"{where}: category columns differ from the dataset's categories (or their order)"
        )


# --- the tuning file that names runs


def read_tuning(
    path: str | Path, need: tuple[str, ...] = ("experiments", "ensemble", "thresholds", "osd")
) -> dict:
    """A `fathom tune` file, its `path` added, checked against what `tune` writes
    (`check_tuning`): every reader of a tuning file (submit, report, kernel build, upload-weights,
    the kernels) reads it through here, so a hand edit is refused in one line naming the key.
    Members have `kind` "run" (a run folder), "knn" (a run's kNN member) or "prior" (the
    frequency prior, computed from the dataset: no weights, no prediction); a member without
    `kind` (files from before the prior could join) is a run."""
    data = fileio.read_json(path, "no such tuning file (`fathom tune` writes it)")
    check_tuning(data, path, need)
    for e in data["experiments"]:
        e.setdefault("kind", "run")
    data["path"] = str(path)
    return data


MEMBER_KINDS = ("run", "knn", "prior")
ENSEMBLE_METHODS = ("mean", "rank", "weighted")  # fathom/ensemble.py's `combine`


def check_tuning(data, path, need: tuple[str, ...] = ("experiments",)) -> None:
    """Refuse a tuning file that `fathom tune` could not have written, in one line naming the
    file and the key: the blocks in `need` must be there, and every block that is there must
    have the shape its readers index into. (The runs it names are checked where they are read.)
    """

    def bad(key: str, why: str) -> FathomError:
        return FathomError(f"{path}: `{key}` {why} (not as `fathom tune` writes it; tune again)")

    def number(key: str, value, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(key, f"is {value!r}, not a number")
        if not np.isfinite(value) or value < 0 or (positive and value == 0):
            raise bad(
                key, f"is {value!r}, not a {'positive' if positive else 'non-negative'} number"
            )
        return float(value)

    if not isinstance(data, dict):
        raise FathomError(f"{path}: not a tuning file (expected a JSON object)")
    missing = [k for k in need if k not in data]
    if missing:
        raise FathomError(f"{path}: not a tuning file (lacks {', '.join(missing)})")
    members = data.get("experiments")
    if not isinstance(members, list) or not members:
        raise bad("experiments", "is no list of members")
    for i, e in enumerate(members):
        key = f"experiments[{i}]"
        if not isinstance(e, dict):
            raise bad(key, f"is {e!r}, not a member object")
        if not isinstance(e.get("name"), str) or not e["name"].strip():
            raise bad(f"{key}.name", f"is {e.get('name')!r}, not a name")
        kind = e.get("kind", "run")
        if kind not in MEMBER_KINDS:
            raise bad(f"{key}.kind", f"is {kind!r}, not one of {', '.join(MEMBER_KINDS)}")
        if kind != "prior" and (not isinstance(e.get("path"), str) or not e["path"].strip()):
            raise bad(f"{key}.path", f"is {e.get('path')!r}, not the path of a run folder")
        if kind == "knn":
            if "temperature" not in e:
                raise bad(f"{key}.temperature", "is missing (a kNN member needs it)")
            number(f"{key}.temperature", e["temperature"], positive=True)
            if "run" in e and not isinstance(e["run"], str):
                raise bad(f"{key}.run", f"is {e['run']!r}, not a run name")
    if "ensemble" in data:
        ens = data["ensemble"]
        if not isinstance(ens, dict):
            raise bad("ensemble", f"is {ens!r}, not an object")
        # the CV of the method is what a submission's manifest records: asked for with the
        # ensemble (submit, report); a kernel build or an upload only passes the file on
        for k in ("method", "weights", *(("scores",) if "ensemble" in need else ())):
            if k not in ens:
                raise bad(f"ensemble.{k}", "is missing")
        if ens["method"] not in ENSEMBLE_METHODS:
            raise bad(
                "ensemble.method",
                f"is {ens['method']!r}, not one of {', '.join(ENSEMBLE_METHODS)}",
            )
        weights = ens["weights"]
        if not isinstance(weights, list):
            raise bad("ensemble.weights", f"is {weights!r}, not a list of numbers")
        if len(weights) != len(members):
            raise bad(
                "ensemble.weights",
                f"has {len(weights)} weight(s) for {len(members)} member(s) in `experiments`",
            )
        if sum(number(f"ensemble.weights[{i}]", w) for i, w in enumerate(weights)) <= 0:
            raise bad("ensemble.weights", "are all zero (no member would count)")
        if "scores" in ens:
            if not isinstance(ens["scores"], dict) or ens["method"] not in ens["scores"]:
                raise bad(f"ensemble.scores.{ens['method']}", "is missing (the CV of the method)")
            number(f"ensemble.scores.{ens['method']}", ens["scores"][ens["method"]])
    thresholds = data.get("thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, dict):
            raise bad("thresholds", f"is {thresholds!r}, not an object or null")
        if "global" in thresholds:
            number("thresholds.global", thresholds["global"])
        for k in ("per_category", "f1"):
            if k in thresholds and not isinstance(thresholds[k], dict):
                raise bad(f"thresholds.{k}", f"is {thresholds[k]!r}, not an object")
    if "osd" in data:
        from fathom.osd import is_scorer

        osd = data["osd"]
        if not isinstance(osd, dict):
            raise bad("osd", f"is {osd!r}, not an object")
        if "scorer" not in osd:
            raise bad("osd.scorer", "is missing (null for a single-label dataset)")
        scorer = osd["scorer"]
        if scorer is not None and (not isinstance(scorer, str) or not is_scorer(scorer)):
            raise bad("osd.scorer", f"is {scorer!r}, not an osd scorer")
        # what `fathom report` reads of the osd block
        runs_ = osd.get("holdout_runs", [])
        if not isinstance(runs_, list) or not all(isinstance(r, str) and r for r in runs_):
            raise bad("osd.holdout_runs", f"is {runs_!r}, not a list of run folders")
        cats = osd.get("holdout_categories", [])
        if not isinstance(cats, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in cats
        ):
            raise bad("osd.holdout_categories", f"is {cats!r}, not a list of category ids")
        for k in ("simulated_sauc",):
            if osd.get(k) is not None and not isinstance(osd[k], dict):
                raise bad(f"osd.{k}", f"is {osd[k]!r}, not an object")
        name = osd.get("scores_file")
        if name is not None and (
            not isinstance(name, str) or not name or name.startswith(".") or "/" in name
        ):  # a file beside the tuning file, never a path out of its folder
            raise bad("osd.scores_file", f"is {name!r}, not a file name beside it")
    if "competition" in data and (
        not isinstance(data["competition"], str) or not data["competition"].strip()
    ):
        raise bad("competition", f"is {data['competition']!r}, not a competition folder")
    if data.get("task", "multilabel") not in ("multilabel", "singlelabel"):
        raise bad("task", f"is {data['task']!r}, not multilabel or singlelabel")


def is_run_member(member: dict) -> bool:
    return member.get("kind", "run") == "run"


def member_run(member: dict) -> str | None:
    """The name of the run folder a member reads: its own for a model, the model's for a kNN
    member (kind "knn": the same run's features and banks); None for the prior."""
    kind = member.get("kind", "run")
    if kind == "prior":
        return None
    return member.get("run", member["name"]) if kind == "knn" else member["name"]


def member_key(member: dict) -> str | None:
    """What identifies the run folder a member reads: its resolved path (two runs may share a
    folder name, runs/a and other/a); None for the prior."""
    if member_run(member) is None:
        return None
    return str(Path(member["path"]).expanduser().resolve())


def run_folders(tuning: dict) -> list[dict]:
    """The run folders the tuning reads, once each, as {"name", "path"}: those of its models
    and of its kNN members (the frequency prior needs none: no weights, no prediction).
    A folder is one folder by its resolved path (`member_key`), not by its name: runs/a and
    other/a are two."""
    seen: dict[str, dict] = {}
    for e in tuning["experiments"]:
        key = member_key(e)
        if key is not None and key not in seen:
            seen[key] = {"name": member_run(e), "path": e["path"]}
    return list(seen.values())


def run_members(tuning: dict) -> list[dict]:
    """`run_folders`, for what places runs by their name (a Kaggle dataset's runs/<name>, the
    kernels): two folders of one name are refused there, since one would stand for both."""
    folders = run_folders(tuning)
    names = [f["name"] for f in folders]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        paths = ", ".join(f["path"] for f in folders if f["name"] == twice)
        raise FathomError(
            f"{tuning.get('path', 'the tuning file')}: two runs named {twice!r} ({paths}); "
            "a dataset holds runs by name: rename one run folder and tune again"
        )
    return folders
