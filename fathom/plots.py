"""An HTML report of one or more runs: PNG plots (matplotlib, Agg) and a few tables.

Plots: category frequency, training curves per fold, per-category AP against frequency, a
model comparison, osd score histograms for in- and out-of-sample images (from the held-out
category runs named in a tuning file), and the top confusions between supercategories.
The numbers come from pure functions (`per_category_ap`, `supercategory_confusions`); the
rest is drawing and writing files.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio


def per_category_ap(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of each category's column over images; NaN without positives."""
    from sklearn.metrics import average_precision_score

    out = np.full(targets.shape[1], np.nan)
    for c in np.flatnonzero(targets.sum(axis=0) > 0):
        out[c] = average_precision_score(targets[:, c], probs[:, c])
    return out


def supercategory_confusions(
    probs: np.ndarray, targets: np.ndarray, supercat_of: np.ndarray, names: list[str]
) -> pd.DataFrame:
    """Counts of (true, predicted) supercategory when an image's top-1 category is wrong.

    The true side is the supercategory of each true category the image holds (an image with
    two organisms counts once for each); pairs within one supercategory are left in: they are
    the fine-grained mistakes.
    """
    top = probs.argmax(axis=1)
    wrong = targets[np.arange(len(top)), top] == 0
    counts: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(wrong):
        pred = names[supercat_of[top[i]]]
        for true in {names[supercat_of[c]] for c in np.flatnonzero(targets[i])}:
            counts[(true, pred)] = counts.get((true, pred), 0) + 1
    frame = pd.DataFrame(
        [{"true": t, "predicted": p, "images": n} for (t, p), n in counts.items()],
        columns=["true", "predicted", "images"],
    )
    return frame.sort_values(
        ["images", "true", "predicted"], ascending=[False, True, True]
    ).reset_index(drop=True)


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


def plot_category_frequency(counts: np.ndarray, out: Path) -> str:
    plt = _plt()
    order = np.sort(counts)[::-1]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    seen = order[order > 0]
    ax.bar(np.arange(len(seen)), seen, width=1.0, color="#2b7bba")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel(f"category, most frequent first ({len(seen)} of {len(counts)} occur in training)")
    ax.set_ylabel("training images")
    ax.set_title("Category frequency (long tail)")
    return _save(fig, out)


def plot_training_curves(histories: dict[str, pd.DataFrame], title: str, out: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for k, (fold, h) in enumerate(histories.items()):
        x = h["epoch"] if "epoch" in h else np.arange(1, len(h) + 1)
        color = f"C{k}"
        if "train_loss" in h:
            axes[0].plot(x, h["train_loss"], color=color, label=f"{fold} train")
        if "val_loss" in h:
            axes[0].plot(x, h["val_loss"], color=color, ls="--", label=f"{fold} val")
        if "val_map20" in h:
            axes[1].plot(x, h["val_map20"], color=color, marker=".", label=fold)
    axes[0].set(xlabel="epoch", ylabel="loss", title=f"{title}: loss (solid train, dashed val)")
    axes[1].set(xlabel="epoch", ylabel="val MAP@20", title=f"{title}: validation MAP@20")
    axes[1].legend(fontsize=7)
    return _save(fig, out)


def plot_per_category_ap(aps: dict[str, np.ndarray], counts: np.ndarray, out: Path) -> str:
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
        xlabel="training images of the category",
        ylabel="OOF average precision",
        title="Per-category AP against frequency",
    )
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_model_comparison(rows: pd.DataFrame, out: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(
        y, rows["MAP@20"], color=["#2b7bba" if k == "model" else "#e08a2c" for k in rows["kind"]]
    )
    for i, v in enumerate(rows["MAP@20"]):
        ax.text(v, i, f" {v:.4f}", va="center", fontsize=8)
    ax.set_yticks(y, rows["name"])
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.0, rows["MAP@20"].max() * 1.2 + 0.02))
    ax.set(
        xlabel="OOF MAP@20 (ensembles with fitted weights: fold-held-out)", title="Model comparison"
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


def plot_confusions(conf: pd.DataFrame, names: list[str], out: Path) -> str:
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
        xlabel="supercategory of the wrong top-1 guess",
        ylabel="true supercategory",
        title="Where top-1 mistakes go",
    )
    fig.colorbar(im, ax=ax, shrink=0.7, label="images")
    return _save(fig, out)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, classes="t")


def write_html(out_dir: Path, title: str, sections: list[tuple[str, str]]) -> Path:
    body = "\n".join(
        f"<section><h2>{html.escape(h)}</h2>\n{content}</section>" for h, content in sections
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.15em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }}
img {{ max-width: 100%; }} table.t {{ border-collapse: collapse; font-size: .9em; margin: .5em 0; }}
table.t td, table.t th {{ padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }}
p.note {{ color: #555; font-size: .9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
    return fileio.write_text(out_dir / "index.html", page)
