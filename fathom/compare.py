"""Compare finished runs side by side: one table row per run, and their training histories.

A run folder (`runs/<exp>/`, written by `fathom train`) holds `config.json`, and per fold
`fold<k>/history.csv` (one row per epoch) and `fold<k>/oof.npz` (the fold's validation
predictions). The table's scores are computed here from the OOF probabilities and the
dataset's labels, so runs are compared on exactly the same footing whatever each logged:
single-label runs get accuracy, top-3 accuracy and macro precision / recall / F1 (with the
confusion matrix, per-class report and most confused pairs beside them); multi-label runs
get MAP@20.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.errors import FathomError

# history.csv columns that hold an epoch's duration in seconds, by the names trainers use
TIME_COLUMNS = ("epoch_time_s", "time_s", "seconds", "epoch_time", "time", "elapsed_s")
NOT_PLOTTED = ("epoch", "fold", "stage", "images_per_s", *TIME_COLUMNS)


@dataclass(frozen=True)
class Run:
    """What a run folder holds, read once."""

    path: Path
    name: str
    config: dict
    histories: dict[str, pd.DataFrame]  # fold folder name -> history
    oof_ids: np.ndarray
    oof_probs: np.ndarray
    oof_targets: np.ndarray | None  # (N, C) 0/1 when the engine stored them, else None
    category_ids: np.ndarray
    notes: list[str] = field(default_factory=list)


def fold_dirs(run_dir: Path) -> list[Path]:
    return sorted(
        (p for p in run_dir.glob("fold*") if p.is_dir() and p.name[4:].isdigit()),
        key=lambda p: int(p.name[4:]),
    )


def read_run(run_dir: str | Path) -> Run:
    """Read a run folder's config, histories and OOF predictions (the run-level oof.npz if
    `fathom oof` wrote one, else every fold's oof.npz stitched together)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FathomError(f"{run_dir}: not a run folder (no config.json; `fathom train` writes it)")
    config = fileio.read_json(config_path)
    folds = fold_dirs(run_dir)
    histories = {
        p.name: pd.read_csv(p / "history.csv") for p in folds if (p / "history.csv").is_file()
    }
    if not histories:
        raise FathomError(f"{run_dir}: no fold<k>/history.csv (has the run trained an epoch yet?)")
    sources = (
        [run_dir / "oof.npz"] if (run_dir / "oof.npz").is_file() else [p / "oof.npz" for p in folds]
    )
    parts = [np.load(p) for p in sources if p.is_file()]
    if not parts:
        raise FathomError(f"{run_dir}: no oof.npz (the run has not finished a fold)")
    cat_ids = parts[0]["category_ids"]
    ids = np.concatenate([p["ids"].astype(str) for p in parts])
    probs = np.concatenate([p["probs"] for p in parts]).astype(np.float64)
    targets = None
    if all("targets" in p.files for p in parts):
        targets = np.concatenate([p["targets"] for p in parts])
    _, first = np.unique(ids, return_index=True)  # an id in two folds' oof: keep the first
    keep = np.sort(first)
    notes = [] if len(keep) == len(ids) else [f"{len(ids) - len(keep)} repeated OOF ids dropped"]
    name = str(config.get("name") or run_dir.name)
    kept_targets = None if targets is None else targets[keep]
    return Run(
        run_dir, name, config, histories, ids[keep], probs[keep], kept_targets, cat_ids, notes
    )


def training_seconds(history: pd.DataFrame) -> float | None:
    for column in TIME_COLUMNS:
        if column in history.columns:
            return float(pd.to_numeric(history[column], errors="coerce").sum())
    return None


def single_label_oof(run: Run, labels: dict[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(probs, true class index) of a single-label run's OOF images: the targets stored in
    oof.npz when there, else `labels` (id -> class index) from the dataset."""
    if run.oof_targets is not None:
        return run.oof_probs, run.oof_targets.argmax(axis=1)
    if labels is None:
        raise FathomError(f"{run.path}: oof.npz holds no targets; pass --data (the dataset)")
    known = np.array([uid in labels for uid in run.oof_ids])
    if not known.any():
        raise FathomError(f"{run.path}: none of its OOF ids are images of the dataset it names")
    return run.oof_probs[known], np.array([labels[uid] for uid in run.oof_ids[known]])


def multi_label_scores(run: Run, categories: dict[str, tuple[int, ...]] | None) -> dict:
    from fathom.data.coco import label_matrix
    from fathom.metrics import map_at_k_matrix

    if run.oof_targets is not None:
        return {"map20": map_at_k_matrix(run.oof_probs, run.oof_targets), "n": len(run.oof_ids)}
    if categories is None:
        raise FathomError(f"{run.path}: oof.npz holds no targets; pass --data (the competition)")
    known = np.array([uid in categories for uid in run.oof_ids])
    targets = label_matrix([categories[u] for u in run.oof_ids[known]], run.category_ids)
    return {"map20": map_at_k_matrix(run.oof_probs[known], targets), "n": int(known.sum())}


def summary_row(run: Run, scores: dict) -> dict:
    """One table row: the run's scores, epochs trained and training time."""
    epochs = [len(h) for h in run.histories.values()]
    seconds = [training_seconds(h) for h in run.histories.values()]
    row = {
        "run": run.name,
        "model": run.config.get("model", ""),
        **{k: v for k, v in scores.items() if k != "n"},
        "epochs": max(epochs) if len(set(epochs)) == 1 else "/".join(map(str, epochs)),
        "folds": len(run.histories),
        "train_min": round(sum(seconds) / 60, 2) if all(s is not None for s in seconds) else None,
        "n_oof": scores.get("n", len(run.oof_ids)),
    }
    return row


def plot_histories(runs: list[Run], path: str | Path, fold: str | None = None) -> Path:
    """One panel per numeric history column (loss, metrics, lr), every run as a line.

    The first fold each run has is drawn unless `fold` names one, so a 5-fold run and a
    single-split run are drawn alike.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fathom import fileio

    chosen = []
    for run in runs:
        key = fold if fold in run.histories else next(iter(run.histories))
        chosen.append((run, run.histories[key]))
    columns: list[str] = []
    for _, h in chosen:
        columns += [
            c for c in h.columns
            if c not in NOT_PLOTTED and c not in columns and pd.api.types.is_numeric_dtype(h[c])
        ]  # fmt: skip
    if not columns:
        raise FathomError("the runs' history.csv files hold no numeric column to plot")
    n_cols = min(3, len(columns))
    n_rows = -(-len(columns) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        for run, h in chosen:
            if column in h.columns:
                x = h["epoch"] if "epoch" in h.columns else np.arange(1, len(h) + 1)
                ax.plot(x, h[column], marker=".", label=run.name)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        if column == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def labels_for(data: str | Path) -> tuple[dict, list[str] | None]:
    """Training labels of a dataset: id -> class index and the class names for a folder
    dataset (train + val images); id -> category tuple and None for a Kaggle-layout one."""
    from fathom.data.coco import open_competition, read_split
    from fathom.data.imagefolder import (
        is_folder_dataset,
        labels_of,
        open_folder,
        read_classes,
        read_folder_split,
    )

    if is_folder_dataset(data):
        ds = open_folder(data)
        classes = read_classes(ds)
        table = pd.concat([read_folder_split(ds, s, classes) for s in ("train", "val")])
        labels = dict(zip(table["id"], labels_of(table).tolist(), strict=True))
        return labels, classes["name"].tolist()
    table = read_split(open_competition(data), "train", require_images=False)
    return dict(zip(table["id"], table["categories"], strict=True)), None


def compare_runs(
    run_dirs: list[str | Path], out: str | Path, data: str | None = None, top: int = 3
) -> tuple[pd.DataFrame, list[str]]:
    """Score every run, write OUT/compare.csv, OUT/history.png and, per single-label run,
    OUT/<run>/{confusion.png, per_class.csv, most_confused.csv}. Returns the table and notes
    (the `top` most confused pairs of each single-label run)."""
    from fathom import classification_metrics as cm
    from fathom import fileio

    out = Path(out)
    runs = [read_run(r) for r in run_dirs]
    names = [r.name for r in runs]
    twice = [n for n in names if names.count(n) > 1]
    if twice:
        raise FathomError(f"two runs share the name {twice[0]!r}")
    cache: dict = {}
    rows, notes = [], []
    for r in runs:
        source = data or r.config.get("competition")
        if source not in cache:  # labels (when oof.npz lacks targets) and class names
            cache[source] = labels_for(source) if source and Path(source).is_dir() else (None, None)
        labels, class_names = cache[source]
        notes += [f"{r.name}: {n}" for n in r.notes]
        if r.config.get("task", "multilabel") != "singlelabel":
            rows.append(summary_row(r, multi_label_scores(r, labels)))
            continue
        probs, y = single_label_oof(r, labels)
        rows.append(summary_row(r, cm.summary(probs, y)))
        names_here = class_names or [str(c) for c in r.category_ids]
        matrix = cm.confusion(probs, y)
        cm.plot_confusion_matrix(
            matrix, names_here, out / r.name / "confusion.png", title=f"{r.name}: OOF confusion"
        )
        fileio.write_csv(
            out / r.name / "per_class.csv", cm.per_class_report(probs, y, names_here).round(4)
        )
        pairs = cm.most_confused(matrix, names_here, top=20)
        fileio.write_csv(out / r.name / "most_confused.csv", pairs.round(4))
        notes += [
            f"{r.name}: confuses {t} -> {p} {c}x ({s:.0%} of {t})"
            for t, p, c, s in pairs.head(top).itertuples(index=False)
        ]
    table = pd.DataFrame(rows)
    fileio.write_csv(out / "compare.csv", table)
    plot_histories(runs, out / "history.png")
    return table, notes


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")
