"""Every figure fathom draws, with one matplotlib set-up (Agg, PNG written atomically).

Report figures: category frequency, training curves per fold, per-category AP against
frequency, a model comparison, osd score histograms for in- and out-of-sample images, the top
confusions between supercategories. Compare figures: the runs' training histories side by side
and a single-label run's confusion matrix. The numbers they show are computed elsewhere
(fathom/report.py, fathom/metrics.py); this module only draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio
from fathom.errors import FathomError

# history.csv columns that are no curve: bookkeeping and an epoch's duration
TIME_COLUMNS = ("epoch_time_s", "time_s", "seconds", "epoch_time", "time", "elapsed_s")
NOT_PLOTTED = ("epoch", "fold", "stage", "images_per_s", *TIME_COLUMNS)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log_ticks(axis) -> None:
    """Label a log axis 1, 10, 100 (not 10^0, 10^1) and drop the crowded minor labels."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _save(fig, path: Path) -> str:
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path.name


def plot_category_frequency(counts: np.ndarray, out: Path, noun: str = "category") -> str:
    """Training images per category (`noun`: "class" for a folder dataset), most first."""
    plt = _plt()
    order = np.sort(counts)[::-1]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    seen = order[order > 0]
    ax.bar(np.arange(len(seen)), seen, width=1.0, color="#2b7bba")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(f"{noun}, most frequent first ({len(seen)} of {len(counts)} occur in training)")
    ax.set_ylabel("training images")
    ax.set_title(f"{noun.capitalize()} frequency")
    return _save(fig, out)


def plot_training_curves(histories: dict[str, pd.DataFrame], title: str, out: Path) -> str:
    """Loss per fold (train solid, val dashed) and the validation score: MAP@20 for a
    multi-label run, accuracy for a single-label one (whichever the history holds)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    score = next(
        # a single-label run logs MAP@20 too, but its score is the accuracy
        (
            c
            for c in ("val_acc", "val_accuracy", "val_map20")
            if any(c in h for h in histories.values())
        ),
        None,
    )
    for k, (fold, h) in enumerate(histories.items()):
        x = h["epoch"] if "epoch" in h else np.arange(1, len(h) + 1)
        color = f"C{k}"
        # markers: a one-epoch run is one point per curve, which a line alone does not draw
        if "train_loss" in h:
            axes[0].plot(x, h["train_loss"], color=color, marker=".", label=f"{fold} train")
        if "val_loss" in h:
            axes[0].plot(x, h["val_loss"], color=color, marker=".", ls="--", label=f"{fold} val")
        if score in h:
            axes[1].plot(x, h[score], color=color, marker=".", label=fold)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:  # epochs are whole numbers, also when a run has one or two
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    name = {"val_map20": "MAP@20"}.get(score, "accuracy" if score else "score")
    axes[0].set(xlabel="epoch", ylabel="loss", title=f"{title}: loss (solid train, dashed val)")
    axes[1].set(xlabel="epoch", ylabel=f"val {name}", title=f"{title}: validation {name}")
    if score:
        axes[1].legend(fontsize=7)
    return _save(fig, out)


def plot_per_category_ap(
    aps: dict[str, np.ndarray], counts: np.ndarray, out: Path, noun: str = "category"
) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, ap) in enumerate(aps.items()):
        ok = ~np.isnan(ap)
        jitter = 1 + 0.06 * (k - (len(aps) - 1) / 2)
        ax.scatter(
            counts[ok] * jitter,
            ap[ok],
            s=12,
            alpha=0.7,
            color=f"C{k}",
            label=f"{name} (mean {np.nanmean(ap):.3f})",
        )
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set(
        xlabel=f"training images of the {noun}",
        ylabel="OOF average precision",
        title=f"Per-{noun} AP against frequency",
    )
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_model_comparison(rows: pd.DataFrame, out: Path) -> str:
    """Bars of the score column (MAP@20 or accuracy: the one that is not `name` or `kind`)."""
    metric = next(c for c in rows.columns if c not in ("name", "kind"))
    values = rows[metric].astype(float).fillna(0.0)  # a fitted ensemble that could not be held out
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))
    colours = {"model": "#2b7bba", "kNN member": "#3a9e5a"}  # ensembles: orange
    ax.barh(y, values, color=[colours.get(k, "#e08a2c") for k in rows["kind"]])
    for i, v in enumerate(rows[metric]):
        ax.text(
            0 if pd.isna(v) else v,
            i,
            " n/a" if pd.isna(v) else f" {v:.4f}",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, rows["name"])
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.0, values.max() * 1.2 + 0.02))
    ax.set(
        xlabel=f"OOF {metric} (ensembles with fitted weights: fold-held-out)",
        title="Model comparison",
    )
    return _save(fig, out)


def plot_osd_histograms(
    scores: dict[str, np.ndarray], unseen: np.ndarray, saucs: dict, out: Path
) -> str:
    plt = _plt()
    names = [n for n, s in scores.items() if s is not None]
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, name in zip(axes.flat, names, strict=False):
        s = scores[name]
        ax.hist(s[~unseen], bins=bins, alpha=0.6, density=True, label="in-sample", color="#2b7bba")
        ax.hist(
            s[unseen], bins=bins, alpha=0.6, density=True, label="out-of-sample", color="#d62728"
        )
        ax.set_title(f"{name}: sAUC {saucs.get(name, float('nan')):.3f}", fontsize=9)
        ax.set_xlabel("osd score (rank in fold)", fontsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("osd scores on held-out-category OOF images", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_confusions(
    conf: pd.DataFrame,
    names: list[str],
    out: Path,
    kind: str = "supercategory",
    unit: str = "pairs",
) -> str:
    """`conf`: true, predicted, count rows; `kind` names the axes (supercategory or class),
    `unit` what a count is (an image, or an (image, true supercategory) pair)."""
    plt = _plt()
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(names), len(names)))
    for t, p, n in conf.itertuples(index=False):
        matrix[index[t], index[p]] = n
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(matrix, cmap="Reds")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(
        xlabel=f"{kind} of the wrong top-1 guess",
        ylabel=f"true {kind}",
        title="Where top-1 mistakes go",
    )
    fig.colorbar(im, ax=ax, shrink=0.7, label=unit)
    return _save(fig, out)


def plot_osd_histogram(
    score: np.ndarray, unseen: np.ndarray, name: str, sauc: float | None, out: Path
) -> str:
    """The chosen osd scorer alone, in- against out-of-sample, counts (not densities) so the
    small out-of-sample group reads as small."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    bins = np.linspace(0, 1, 26)
    ax.hist(score[~unseen], bins=bins, alpha=0.6, label=f"in-sample ({int((~unseen).sum())})")
    ax.hist(
        score[unseen],
        bins=bins,
        alpha=0.6,
        color="#d62728",
        label=f"out-of-sample ({int(unseen.sum())})",
    )
    auc = "" if sauc is None or np.isnan(sauc) else f": sAUC {sauc:.3f}"
    ax.set(xlabel="osd score (rank in fold)", ylabel="images", title=f"chosen scorer {name}{auc}")
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_histories(
    histories: dict[str, dict[str, pd.DataFrame]], path: str | Path, fold: str | None = None
) -> Path:
    """One panel per numeric history column (loss, metrics, lr), every run as a line.

    `histories`: run name -> fold name -> history. The first fold each run has is drawn
    unless `fold` names one, so a 5-fold run and a single-split run are drawn alike; the
    legend and the title say which fold that is.
    """
    plt = _plt()
    chosen = []
    for name, per_fold in histories.items():
        key = fold if fold in per_fold else next(iter(per_fold))
        chosen.append((f"{name} ({key})", per_fold[key]))
    columns: list[str] = []
    for _, h in chosen:
        columns += [
            c
            for c in h.columns
            if c not in NOT_PLOTTED and c not in columns and pd.api.types.is_numeric_dtype(h[c])
        ]
    if not columns:
        raise FathomError("the runs' history.csv files hold no numeric column to plot")
    n_cols = min(3, len(columns))
    n_rows = -(-len(columns) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax, column in zip(axes.flat, columns, strict=False):
        for name, h in chosen:
            if column in h.columns:
                x = h["epoch"] if "epoch" in h.columns else np.arange(1, len(h) + 1)
                ax.plot(x, h[column], marker=".", label=name)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        if column == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("one fold of each run, named in the legend (the first it has)", fontsize=10)
    fig.tight_layout()
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix as a PNG (a cell reads: share of the true class)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _plt()

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(5.0, 0.32 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(norm, display_labels=list(class_names))
    # cell values are legible up to ~15 classes; beyond that the colour carries them
    display.plot(
        ax=ax,
        include_values=n <= 15,
        values_format=".2f",
        cmap="Blues",
        xticks_rotation=90,
        colorbar=True,
    )
    ax.set_title(title or "confusion matrix (rows: true class, normalised)")
    fig.tight_layout()
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
