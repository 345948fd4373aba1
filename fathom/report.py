"""`fathom report` and `fathom compare`: what a set of runs did, as an HTML page of plots or
as a table side by side.

- `build_report`: OUT/index.html with category frequency, training curves per fold,
  per-category OOF AP against frequency, a model comparison (with the ensembles of a tuning
  file), osd score histograms for in- and out-of-sample images (the held-out-category runs
  the tuning names) and the top confusions between supercategories.
- `compare_runs`: one table row per run, scored from its OOF probabilities and the dataset's
  labels so runs are compared on the same footing whatever each logged: single-label runs get
  accuracy, top-3 accuracy and macro precision / recall / F1 (with the confusion matrix, a
  per-class report and the most confused pairs beside them); multi-label runs get MAP@20.

Runs are read through fathom/runs.py, datasets through fathom.data.open_dataset; figures come
from fathom/plots.py. The numbers are pure functions here (`per_category_ap`,
`supercategory_confusions`, `summary_row`).
"""

from __future__ import annotations

import datetime
import html
from pathlib import Path

import numpy as np
import pandas as pd

from fathom import fileio, plots
from fathom import metrics as cm
from fathom import osd as osd_lib
from fathom.data import open_dataset
from fathom.data.coco import label_matrix
from fathom.ensemble import combine
from fathom.errors import FathomError
from fathom.metrics import map_at_k_matrix, matrix_metric, metric_label
from fathom.runs import align_rows, check_categories, open_run, read_tuning
from fathom.tune import METRIC_NAMES, METRICS, competition_of

# --- numbers


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
    # "pairs", not "images": an image with organisms of two supercategories counts twice
    frame = pd.DataFrame(
        [{"true": t, "predicted": p, "pairs": n} for (t, p), n in counts.items()],
        columns=["true", "predicted", "pairs"],
    )
    return frame.sort_values(
        ["pairs", "true", "predicted"], ascending=[False, True, True]
    ).reset_index(drop=True)


def worst_mistakes(probs: np.ndarray, targets: np.ndarray, n: int = 12) -> np.ndarray:
    """Rows whose top-1 guess is wrong, the most confident first: the mistakes worth a look."""
    top = probs.argmax(axis=1)
    wrong = np.flatnonzero(targets[np.arange(len(top)), top] == 0)
    return wrong[np.argsort(-probs[wrong, top[wrong]], kind="stable")][:n]


def ensemble_reason(tuning: dict, label: str) -> str:
    """Why `fathom tune` kept its ensemble method, from the figures it stored."""
    ens = tuning["ensemble"]
    names = {"mean": "plain mean", "rank": "rank average", "weighted": "fitted weights"}
    scores = ens.get("scores", {})
    figures = ", ".join(
        f"{names[k]} {scores[k]:.4f}"
        for k in ("mean", "rank", "weighted")
        if isinstance(scores.get(k), int | float)
    )
    return (
        f"{names.get(ens['method'], ens['method'])}: the best OOF {label} of {figures} "
        "(fitted weights scored fold-held-out; ties go to the simpler method)"
    )


GALLERY_SIZE = 12


def thumbnail(src: Path, out_dir: Path, key: str, size: int = 160) -> str | None:
    """A small PNG copy of an image under OUT/thumbs/ (so the page is light and moves with its
    folder); its path relative to OUT, or None when the image is not on this machine."""
    from PIL import Image

    src = Path(src)
    if not src.is_file():
        return None
    name = "thumbs/" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key) + ".png"
    with Image.open(src) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        with fileio.atomic_path(out_dir / name) as tmp:
            image.save(tmp, format="PNG")
    return name


def gallery(items: list[tuple[str, Path, str]], out_dir: Path, empty: str) -> str:
    """A grid of (key, image path, caption) thumbnails, or `empty` when none can be shown."""
    figures = []
    for key, path, caption in items:
        src = thumbnail(path, out_dir, key)
        if src:
            figures.append(
                f'<figure><img src="{html.escape(src)}" alt="{html.escape(key)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    if not figures:
        return f'<p class="note">{html.escape(empty)}</p>'
    return '<div class="gallery">' + "".join(figures) + "</div>"


def html_table(frame: pd.DataFrame) -> str:
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
h3 {{ font-size: .95em; margin: 1em 0 .3em; }}
img {{ max-width: 100%; }} table.t {{ border-collapse: collapse; font-size: .9em; margin: .5em 0; }}
table.t td, table.t th {{ padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }}
p.note {{ color: #555; font-size: .9em; }}
div.gallery {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }}
figure {{ margin: 0; font-size: .75em; color: #444; }} figure img {{ display: block; width: 160px; }}
dl.summary {{ display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }}
dl.summary dt {{ font-weight: 600; }} dl.summary dd {{ margin: 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
    return fileio.write_text(out_dir / "index.html", page)


# --- the report page


def build_report(run_paths, out_dir, tune_path=None, comp=None, progress=True) -> Path:
    """Write the page and its plots for runs on a dataset of either kind; return index.html.

    A single-label dataset's page scores models by accuracy and has no osd section; its
    "supercategories" are the classes themselves, so the last section is the class confusions.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    runs = [open_run(p) for p in run_paths]
    tuning = read_tuning(tune_path) if tune_path else None
    data_dir = comp or (tuning or {}).get("competition") or competition_of(runs, None)
    dataset = open_dataset(data_dir)
    cats = dataset.categories()
    train = dataset.split("train", require_images=False, categories=cats)
    labels = dict(zip(train["id"], train["categories"], strict=True))
    paths = dict(zip(train["id"], train["path"], strict=True))
    cat_name = dict(zip(cats["id"], cats["name"], strict=True))

    def named(categories) -> str:
        return ", ".join(str(cat_name.get(int(c), c)) for c in categories)

    counts = label_matrix(train["categories"], cats["id"]).sum(axis=0)
    names = list(dict.fromkeys(cats["supercat"]))
    supercat_of = cats["supercat_id"].to_numpy()
    metric_name, metric = METRICS[dataset.task]
    label = METRIC_NAMES[metric_name]
    if dataset.kind == "csv":  # a train.csv competition's own metric
        lay = dataset.layout()
        metric, label = matrix_metric(lay.metric, bool(lay.new_label)), metric_label(lay.metric)
    sections = []
    steps = tqdm(total=7 + len(runs), desc="report", unit="plot", disable=not progress)
    singlelabel = dataset.task == "singlelabel"
    kind = "class" if singlelabel else "supercategory"

    noun = "class" if singlelabel else "category"
    png = plots.plot_category_frequency(counts, out_dir / "category_frequency.png", noun)
    n_img = len(train)
    sections.append(
        (
            f"{noun.capitalize()} frequency",
            f'<p class="note">{n_img} training images; {int((counts > 0).sum())} of '
            f"{len(counts)} {'classes' if singlelabel else 'categories'} occur; the most "
            f"frequent is in {int(counts.max())} "
            f'images ({counts.max() / n_img:.0%}).</p><img src="{png}">',
        )
    )
    steps.update()
    picked = np.random.default_rng(0).permutation(n_img)[:GALLERY_SIZE]
    sections.append(
        (
            "Sample training images",
            gallery(
                [(train["id"][i], train["path"][i], named(train["categories"][i])) for i in picked],
                out_dir,
                "the training images are not on this machine (`fathom images` fetches them)",
            ),
        )
    )
    steps.update()

    oofs, ids, curves, cv_scores = [], None, [], {}
    for run in runs:
        arrays = run.oof()
        check_categories(arrays, cats["id"], str(run.path / "oof.npz"))
        ids = arrays["ids"] if ids is None else ids
        oofs.append(align_rows(arrays, ids, str(run.path / "oof.npz")))
        histories = run.histories()
        # the page's metric (accuracy for a single-label run, whose cv.json leads with
        # MAP@20), per fold and overall, from the OOF rows themselves
        run_targets = label_matrix([labels[uid] for uid in arrays["ids"]], cats["id"])
        folds = arrays["fold"] if "fold" in arrays else np.zeros(len(run_targets), dtype=int)
        per_fold = []
        for k in np.unique(folds):
            rows = folds == k
            per_fold.append(
                {"fold": str(k), label: metric(arrays["probs"][rows], run_targets[rows])}
            )
        cv_scores[run.name] = metric(arrays["probs"], run_targets)
        cv_table = html_table(
            pd.DataFrame(per_fold + [{"fold": "all (OOF)", label: cv_scores[run.name]}])
        )
        title = f"<h3>{html.escape(run.name)}</h3>{cv_table}"
        if histories:
            png = plots.plot_training_curves(
                histories, run.name, out_dir / f"curves_{run.name}.png"
            )
            curves.append(f'{title}<img src="{png}">')
        else:
            curves.append(f"{title}<p class=note>no fold&lt;k&gt;/history.csv</p>")
        steps.update()
    sections.append(("Training curves per fold", "\n".join(curves)))

    targets = label_matrix([labels[uid] for uid in ids], cats["id"])
    probs = [o["probs"] for o in oofs]
    aps = {run.name: per_category_ap(p, targets) for run, p in zip(runs, probs, strict=True)}
    png = plots.plot_per_category_ap(aps, counts, out_dir / "per_category_ap.png", noun)
    sections.append(
        (
            f"Per-{noun} AP",
            f'<p class="note">OOF average precision of each {noun} that has OOF positives, '
            f'against how often it occurs in training.</p><img src="{png}">',
        )
    )
    steps.update()

    rows = [
        {"name": run.name, "kind": "model", label: metric(p, targets)}
        for run, p in zip(runs, probs, strict=True)
    ]
    ens_probs = combine("mean", probs, [1.0] * len(probs))
    if tuning:
        m = tuning["ensemble"]["scores"]
        rows += [  # the runs' kNN members (`tune --knn`): their fold-held-out OOF figure
            {"name": e["name"], "kind": "kNN member", label: e["cv"]}
            for e in tuning["experiments"]
            if e.get("kind") == "knn"
        ]
        rows += [
            {"name": "ensemble: mean", "kind": "ensemble", label: m["mean"]},
            {"name": "ensemble: rank average", "kind": "ensemble", label: m["rank"]},
            {"name": "ensemble: fitted weights", "kind": "ensemble", label: m["weighted"]},
        ]
        tuned_names = [e["name"] for e in tuning["experiments"]]
        if tuned_names == [r.name for r in runs]:
            ens_probs = combine(tuning["ensemble"]["method"], probs, tuning["ensemble"]["weights"])
    elif len(runs) > 1:
        rows.append(
            {"name": "ensemble: mean", "kind": "ensemble", label: metric(ens_probs, targets)}
        )
    comparison = pd.DataFrame(rows)
    png = plots.plot_model_comparison(comparison, out_dir / "model_comparison.png")
    extra = ""
    if tuning and tuning.get("thresholds"):
        f1, thr = tuning["thresholds"]["f1"], tuning["thresholds"]["global"]
        extra = html_table(
            pd.DataFrame(
                [
                    {"label sets": "top-1 only", "sample F1 (held-out)": f1["top1"]},
                    {
                        "label sets": f"global threshold {thr:.3f}",
                        "sample F1 (held-out)": f1["global"],
                    },
                    {
                        "label sets": "per-category thresholds",
                        "sample F1 (held-out)": f1["per_category"],
                    },
                ]
            )
        )
    sections.append(
        (
            "Model comparison",
            f'<img src="{png}">{html_table(comparison.drop(columns="kind"))}{extra}',
        )
    )
    steps.update()

    if dataset.task == "multilabel":
        sections.append(
            (
                "osd scores: in- and out-of-sample",
                _osd_section(tuning, labels, out_dir, paths, named),
            )
        )
    steps.update()

    conf = supercategory_confusions(ens_probs, targets, supercat_of, names)
    unit = "images" if singlelabel else "pairs"
    if singlelabel:  # one label an image: a (image, true class) pair is an image
        conf = conf.rename(columns={"pairs": "images"})
    png = plots.plot_confusions(
        conf, names, out_dir / f"{kind}_confusions.png", kind=kind, unit=unit
    )
    between = conf[conf["true"] != conf["predicted"]]
    total, within = int(conf[unit].sum()), int(conf[unit].sum() - between[unit].sum())
    if singlelabel:
        note = (
            "Images whose top-1 OOF guess (of the ensemble) is wrong, by true and guessed class: "
            f"the table lists the most frequent pairs of classes ({total} mistakes in all)."
        )
    else:
        note = (
            "Images whose top-1 OOF guess (of the ensemble) is wrong, counted once per "
            "supercategory of the organisms they hold, so an image with two counts twice: "
            f"{total} (image, true supercategory) pairs, {within} of them within the true "
            "supercategory (the diagonal of the map); the table lists the top pairs between two."
        )
    sections.append(
        (
            f"Top confusions between {'classes' if singlelabel else 'supercategories'}",
            f'<p class="note">{note}</p>{html_table(between.head(10))}<img src="{png}">',
        )
    )
    steps.update()
    worst = worst_mistakes(ens_probs, targets)
    top = ens_probs.argmax(axis=1)
    sections.append(
        (
            "Worst mistakes",
            '<p class="note">OOF images whose top-1 guess of the ensemble is wrong, the most '
            "confident first.</p>"
            + gallery(
                [
                    (
                        ids[i],
                        paths.get(ids[i], ""),
                        f"true: {named(labels[ids[i]])}; guessed: "
                        f"{named([cats['id'].iloc[top[i]]])} ({ens_probs[i, top[i]]:.2f})",
                    )
                    for i in worst
                ],
                out_dir,
                "no wrong top-1 guess, or the images are not on this machine",
            ),
        )
    )
    steps.update()
    steps.close()
    sections.insert(
        0,
        (
            "Summary",
            summary_html(runs, tuning, data_dir, dataset.task, label, len(train), cv_scores),
        ),
    )
    title = "fathom report: " + ", ".join(r.name for r in runs)
    return write_html(out_dir, title, sections)


def summary_html(
    runs, tuning: dict | None, data_dir, task: str, label: str, n_train: int, cv_scores: dict
) -> str:
    """What the page is about, before any plot: when, which data, which runs with which
    settings, and what `fathom tune` chose and why."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kind = "single-label folder dataset" if task == "singlelabel" else "multi-label competition"
    rows = []
    for run in runs:
        config = run.config()
        rows.append(
            {
                "run": run.name,
                "model": config.get("model", ""),
                "img_size": config.get("img_size", ""),
                "epochs": config.get("epochs", ""),
                "folds": len(run.histories()),
                "loss": config.get("loss", ""),
                f"OOF {label}": cv_scores.get(run.name),
            }
        )
    items = [
        ("written", now),
        ("dataset", f"{html.escape(str(data_dir))} ({kind}, {n_train} training images)"),
    ]
    if tuning:
        items.append(("tuning file", html.escape(str(tuning.get("path", "")))))
        items.append(("ensemble", html.escape(ensemble_reason(tuning, label))))
        osd = tuning.get("osd") or {}
        if osd.get("scorer"):
            why = f" ({osd['why']})" if osd.get("why") else ""
            items.append(("osd scorer", f"<b>{html.escape(osd['scorer'])}</b>{html.escape(why)}"))
        elif task != "singlelabel":
            items.append(("osd scorer", "none chosen (tune without --holdout)"))
    else:
        items.append(("ensemble", "plain mean of the runs (no --tune file: nothing was chosen)"))
    listing = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="summary">{listing}</dl>{html_table(pd.DataFrame(rows))}'


def stored_osd_scores(tuning: dict) -> dict | None:
    """The simulated osd scores `fathom tune` stored beside its file (`ids` and one array per
    scorer), or None when there are none to read."""
    name = tuning["osd"].get("scores_file")
    if not name or not tuning.get("path"):
        return None
    path = Path(tuning["path"]).with_name(name)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.pop("unseen", None)
    arrays["ids"] = arrays["ids"].astype(str)
    return {k: arrays[k] for k in ["ids", *(n for n in osd_lib.SCORERS if n in arrays)]}


def _osd_section(tuning: dict | None, labels: dict, out_dir: Path, paths=None, named=str) -> str:
    """The chosen scorer's histogram, every osd scorer's, on the tuning's held-out-category
    runs, and the images the chosen (or best simulated) scorer finds most out-of-sample."""
    if not (tuning and tuning["osd"].get("holdout_runs")):
        return '<p class="note">Pass --tune with a tuning file that used --holdout runs to see these.</p>'
    held = [open_run(p) for p in tuning["osd"]["holdout_runs"]]
    h_arrays = [r.oof() for r in held]
    h_ids = h_arrays[0]["ids"]
    h_arrays = [align_rows(a, h_ids, str(r.path)) for a, r in zip(h_arrays, held, strict=True)]
    held_cats = set(tuning["osd"]["holdout_categories"])
    unseen = np.array([bool(set(labels[uid]) & held_cats) for uid in h_ids])
    stored = stored_osd_scores(tuning)
    if stored is not None and np.array_equal(stored.pop("ids"), h_ids):
        scores = stored
    else:  # a tuning file from before the scores were stored, or other runs since
        models = [
            osd_lib.ModelRows(a["probs"], a["logits"], a["features"], a["fold"]) for a in h_arrays
        ]
        scores = osd_lib.simulate_scores(models, unseen)
    saucs = tuning["osd"]["simulated_sauc"]
    png = plots.plot_osd_histograms(scores, unseen, saucs, out_dir / "osd_histograms.png")
    chosen = tuning["osd"]["scorer"]
    parts = chosen.split("+")
    if all(scores.get(p) is not None for p in parts):
        # `a+b` averages the parts' ranks, as `fathom tune` scores the eval images with it
        scores = {**scores, chosen: osd_lib.to_unit(np.mean([scores[p] for p in parts], axis=0))}
    simulated = {n: v for n, v in saucs.items() if v is not None and scores.get(n) is not None}
    shown = (
        chosen
        if scores.get(chosen) is not None
        else max(simulated, key=simulated.get, default=None)
    )
    if scores.get(chosen) is not None:
        one = plots.plot_osd_histogram(
            scores[chosen],
            unseen,
            chosen,
            cm.sauc(unseen, scores[chosen]),
            out_dir / "osd_chosen.png",
        )
        chosen_part = f'<img src="{one}">'
        if "domain" in parts:
            chosen_part += (
                '<p class="note">domain was chosen for the shift between the training and the '
                "eval images, which held-out categories do not reproduce: these images cannot "
                "show what it does on the eval set.</p>"
            )
    else:
        chosen_part = (
            f'<p class="note">The chosen scorer, {html.escape(chosen)}, has no simulated scores '
            "here; below, every simulated scorer.</p>"
        )
    gallery_part = ""
    if shown and paths is not None:
        order = np.argsort(-scores[shown], kind="stable")[:GALLERY_SIZE]
        gallery_part = f"<h3>Most out-of-sample by {html.escape(shown)}</h3>" + gallery(
            [
                (
                    h_ids[i],
                    paths.get(h_ids[i], ""),
                    f"osd {scores[shown][i]:.2f}, "
                    f"{'out-of-sample' if unseen[i] else 'in-sample'}: "
                    f"{named(labels[h_ids[i]])}",
                )
                for i in order
            ],
            out_dir,
            "the images are not on this machine",
        )
    return (
        f'<p class="note">{int(unseen.sum())} of {len(unseen)} OOF images of the held-out run(s) '
        f"hold one of {len(held_cats)} categories their models never trained on. Chosen scorer: "
        f"<b>{html.escape(chosen)}</b>.</p>{chosen_part}"
        f'<h3>Every scorer</h3><img src="{png}">{gallery_part}'
    )


# --- compare


def training_seconds(history: pd.DataFrame) -> float | None:
    for column in plots.TIME_COLUMNS:
        if column in history.columns:
            return float(pd.to_numeric(history[column], errors="coerce").sum())
    return None


def summary_row(name: str, config: dict, histories: dict, n_oof: int, scores: dict) -> dict:
    """One table row: the run's scores, epochs trained and training time."""
    epochs = [len(h) for h in histories.values()]
    seconds = [training_seconds(h) for h in histories.values()]
    return {
        "run": name,
        "model": config.get("model", ""),
        **{k: v for k, v in scores.items() if k != "n"},
        "epochs": max(epochs) if len(set(epochs)) == 1 else "/".join(map(str, epochs)),
        "folds": len(histories),
        "train_min": round(sum(seconds) / 60, 2) if all(s is not None for s in seconds) else None,
        "n_oof": scores.get("n", n_oof),
    }


def oof_targets(run, oof: dict, labels: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, their 0/1 target matrix): the targets stored in oof.npz when there, else
    the dataset's labels (id -> category ids) for the OOF ids it knows."""
    if "targets" in oof:
        return np.arange(len(oof["ids"])), oof["targets"]
    if labels is None:
        raise FathomError(f"{run.path}: oof.npz holds no targets; pass --data (the dataset)")
    known = np.flatnonzero([uid in labels for uid in oof["ids"]])
    if not len(known):
        raise FathomError(f"{run.path}: none of its OOF ids are images of the dataset it names")
    return known, label_matrix([labels[oof["ids"][i]] for i in known], oof["category_ids"])


def compare_runs(
    run_dirs: list[str | Path], out: str | Path, data: str | None = None, top: int = 3
) -> tuple[pd.DataFrame, list[str]]:
    """Score every run, write OUT/compare.csv, OUT/history.png and, per single-label run,
    OUT/<run>/{confusion.png, per_class.csv, most_confused.csv}. Returns the table and notes
    (the `top` most confused pairs of each single-label run)."""
    out = Path(out)
    loaded = []
    for run_dir in run_dirs:
        run = open_run(run_dir)
        config = run.config()
        if not config:
            raise FathomError(
                f"{run.path}: not a run folder (no config.json; `fathom train` writes it)"
            )
        histories = run.histories()
        if not histories:
            raise FathomError(
                f"{run.path}: no fold<k>/history.csv (has the run trained an epoch yet?)"
            )
        oof, notes = run.oof_so_far()
        loaded.append((run, str(config.get("name") or run.name), config, histories, oof, notes))
    names = [name for _, name, *_ in loaded]
    twice = [n for n in names if names.count(n) > 1]
    if twice:
        raise FathomError(f"two runs share the name {twice[0]!r}")
    datasets: dict = {}
    rows, notes = [], []
    for run, name, config, histories, oof, run_notes in loaded:
        source = data or config.get("competition")
        if source not in datasets:  # labels (when oof.npz lacks targets) and class names
            ds = open_dataset(source) if source and Path(source).is_dir() else None
            datasets[source] = (
                (ds.labels(), ds.categories()["name"].tolist()) if ds else (None, None)
            )
        labels, class_names = datasets[source]
        notes += [f"{name}: {n}" for n in run_notes]
        rows_kept, targets = oof_targets(run, oof, labels)
        probs = oof["probs"][rows_kept].astype(np.float64)
        if config.get("task", "multilabel") != "singlelabel":
            scores = {"map20": map_at_k_matrix(probs, targets), "n": len(rows_kept)}
            rows.append(summary_row(name, config, histories, len(oof["ids"]), scores))
            continue
        y = targets.argmax(axis=1)
        rows.append(summary_row(name, config, histories, len(oof["ids"]), cm.summary(probs, y)))
        names_here = class_names or [str(c) for c in oof["category_ids"]]
        matrix = cm.confusion(probs, y)
        plots.plot_confusion_matrix(
            matrix, names_here, out / name / "confusion.png", title=f"{name}: OOF confusion"
        )
        fileio.write_csv(
            out / name / "per_class.csv", cm.per_class_report(probs, y, names_here).round(4)
        )
        pairs = cm.most_confused(matrix, names_here, top=20)
        fileio.write_csv(out / name / "most_confused.csv", pairs.round(4))
        notes += [
            f"{name}: confuses {t} -> {p} {c}x ({s:.0%} of {t})"
            for t, p, c, s in pairs.head(top).itertuples(index=False)
        ]
    table = pd.DataFrame(rows)
    fileio.write_csv(out / "compare.csv", table)
    histories = {name: h for _, name, _, h, _, _ in loaded}
    plots.plot_histories(histories, out / "history.png")
    drawn = ", ".join(f"{name} {next(iter(h))}" for name, h in histories.items())
    notes.append(f"history.png draws one fold of each run (the first it has): {drawn}")
    return table, notes


def format_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")
