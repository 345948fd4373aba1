"""`fathom tune`: every choice a submission needs, made on out-of-fold predictions and written
to a tuning file that `fathom submit` reads.

- The ensemble (fathom/ensemble.py): plain mean, rank average or fitted weights, chosen by
  fold-held-out MAP@20 (accuracy for a single-label dataset); the frequency prior may join.
- Label sets: a global threshold and per-category thresholds that maximise the per-image F1
  of the predicted sets, scored fold-held-out (multi-label only; the submission itself is
  ranked, so they go to the manifest for users who want sets).
- The osd scorer (fathom/osd.py): every scorer is rated by sAUC on the OOF of runs trained
  with `holdout_categories` (their OOF images holding one are the unseen positives), beside
  a label-free train-vs-eval shift test. The estimate recorded for the chosen scorer is
  measured on rows that did not choose it (2-fold cross-fitting of the choice); `domain`,
  which the held-out-category simulation cannot rate, gets none.

Pure functions over arrays, apart from `tune_runs` (which reads the runs and the dataset) and
`write_tuning`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fathom import fileio
from fathom import osd as osd_lib
from fathom.data import open_dataset
from fathom.data.coco import label_matrix
from fathom.ensemble import fold_held_out, tune_ensemble, weighted_mean
from fathom.errors import FathomError
from fathom.knn import tune_knn
from fathom.metrics import (  # predict_sets, sample_f1: the set rule tune fits and submit applies
    accuracy_matrix,
    map_at_k_matrix,
    matrix_metric,
    metric_label,
    predict_sets,
    sample_f1,
    sauc,
)
from fathom.prior import fold_prior
from fathom.runs import (
    align_rows,
    check_categories,
    check_feature_width,
    check_finite,
    open_run,
)

METRICS: dict[str, tuple[str, Callable]] = {
    "multilabel": ("map20", map_at_k_matrix),
    "singlelabel": ("accuracy", accuracy_matrix),
}
METRIC_NAMES = {"map20": "MAP@20", "accuracy": "accuracy"}


# --- label sets: thresholds that maximise the per-image F1 of the predicted sets


def threshold_grid(n: int = 60) -> np.ndarray:
    """Candidate thresholds, dense near 0 where sigmoid outputs of rare classes live."""
    return np.unique(
        np.concatenate([np.geomspace(1e-3, 0.1, n // 3), np.linspace(0.1, 0.95, n - n // 3)])
    )


def fit_global_threshold(
    probs: np.ndarray, targets: np.ndarray, grid: np.ndarray | None = None
) -> float:
    """The one threshold for every category that maximises sample F1."""
    grid = threshold_grid() if grid is None else grid
    return float(grid[int(np.argmax(global_threshold_f1(probs, targets, grid)))])


def global_threshold_f1(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """`sample_f1(predict_sets(probs, g), targets)` for each g of the grid, the same floats.

    Each image's counts of predicted and of true predicted labels at every threshold come from
    one histogram of where its scores fall in the (sorted) grid, instead of comparing the whole
    matrix once per threshold (issue 19); its F1 and the mean over images are then computed
    as `sample_f1` does. NaN scores (which no threshold reaches) take the plain way.
    """
    probs = np.asarray(probs)
    grid = np.asarray(grid, dtype=np.float64)
    if np.isnan(probs).any() or np.isnan(grid).any() or (np.diff(grid) < 0).any():
        return np.array([sample_f1(predict_sets(probs, g), targets) for g in grid])
    t = np.asarray(targets) > 0
    n_rows, n_grid = len(probs), len(grid)
    # score >= grid[g] exactly when g < bin: count each image's scores per bin, then the
    # scores in bins above g, for every g
    bins = np.searchsorted(grid, probs, side="right") + (n_grid + 1) * np.arange(n_rows)[:, None]
    size = n_rows * (n_grid + 1)

    def reaching(counts):
        per_bin = np.bincount(counts, minlength=size).reshape(n_rows, n_grid + 1)
        return np.cumsum(per_bin[:, ::-1], axis=1)[:, ::-1][:, 1:].T  # (G, N)

    n_pred, tp = reaching(bins.ravel()), reaching(bins[t])
    empty = n_pred == 0  # the at-least-one rule: the top category alone
    top_hit = t[np.arange(n_rows), probs.argmax(axis=1)] if n_rows else np.zeros(0, dtype=bool)
    tp = np.where(empty, top_hit, tp)
    denom = np.where(empty, 1, n_pred) + t.sum(axis=1)
    f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)
    return np.ascontiguousarray(f1).mean(axis=1)


def _row_f1(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray, top_hit: np.ndarray):
    """Each image's F1 from its counts of true and of predicted labels; an image with none
    predicted gets its top category (the at-least-one rule of `predict_sets`)."""
    return np.where(
        n_pred > 0, 2.0 * tp / np.maximum(n_pred + n_true, 1), 2.0 * top_hit / (1 + n_true)
    )


def fit_category_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    start: float,
    min_positives: int = 3,
    passes: int = 2,
    grid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-category thresholds by coordinate ascent on sample F1, from the global one.

    A category with fewer than `min_positives` positive rows keeps `start`: a threshold fitted
    to one or two images is noise. Each move changes one column, so the F1 of every image is
    updated from its running counts instead of being recomputed. Each image has one F1 with
    the category predicted and one without, so a threshold only picks between the two per
    image; and the thresholds of the grid that predict the same images (most of them, for a
    rare category) are scored once (issue 19). Each score is the mean of the same per-image
    F1 vector as when every threshold was scored in full, so the choices are the same.
    """
    grid = threshold_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    t = np.asarray(targets) > 0
    thr = np.full(probs.shape[1], float(start))
    n_true = t.sum(axis=1)
    top = probs.argmax(axis=1)
    top_hit = t[np.arange(len(t)), top]
    positives = t.sum(axis=0)
    fitted = np.flatnonzero(positives >= min_positives)
    # NaN sorts last: it counts as reaching every threshold here, the same for all of them,
    # so equal counts still mean equal sets of predicted images
    ranked = np.sort(probs[:, fitted], axis=0)
    for _ in range(passes):
        raw = probs >= thr  # before the at-least-one rule
        tp_all = (raw & t).sum(axis=1)
        np_all = raw.sum(axis=1)
        for c, column in zip(fitted, ranked.T, strict=True):
            tp_wo = tp_all - (raw[:, c] & t[:, c])
            np_wo = np_all - raw[:, c]
            f1_with = _row_f1(tp_wo + t[:, c], np_wo + 1, n_true, top_hit)
            f1_without = _row_f1(tp_wo, np_wo, n_true, top_hit)
            reached = len(column) - np.searchsorted(column, grid, side="left")
            _, first, which = np.unique(reached, return_index=True, return_inverse=True)
            cand = probs[:, c][None, :] >= grid[first][:, None]  # one row per distinct set
            score = np.where(cand, f1_with, f1_without).mean(axis=1)[which.reshape(-1)]
            best = int(np.argmax(score))
            # keep the current threshold unless a candidate is strictly better
            current = _row_f1(tp_all, np_all, n_true, top_hit).mean()
            if score[best] > current + 1e-12:
                thr[c] = grid[best]
                raw[:, c] = cand[which.reshape(-1)[best]]
                tp_all = tp_wo + (raw[:, c] & t[:, c])
                np_all = np_wo + raw[:, c]
    return thr


@dataclass(frozen=True)
class ThresholdResult:
    global_threshold: float
    category_thresholds: list[float]
    f1: dict  # {"top1", "global", "per_category"} fold-held-out, plus "..._in_sample"


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, fold: np.ndarray) -> ThresholdResult:
    """Global and per-category thresholds, with fold-held-out sample F1 for each."""
    fold = np.asarray(fold)
    n = len(targets)

    def fit(rows):  # both from one global fit: the per-category search starts from it
        g = fit_global_threshold(probs[rows], targets[rows])
        return g, fit_category_thresholds(probs[rows], targets[rows], g)

    def apply(thresholds, rows):
        return np.stack([predict_sets(probs[rows], thr) for thr in thresholds], axis=1)

    held, _ = fold_held_out(fit, apply, fold, n)
    held_g, held_c = held[:, 0], held[:, 1]
    g, c = fit(np.ones(n, dtype=bool))
    return ThresholdResult(
        global_threshold=g,
        category_thresholds=[float(x) for x in c],
        f1={
            "top1": sample_f1(predict_sets(probs, np.inf), targets),
            "global": sample_f1(held_g, targets),
            "per_category": sample_f1(held_c, targets),
            "global_in_sample": sample_f1(predict_sets(probs, g), targets),
            "per_category_in_sample": sample_f1(predict_sets(probs, c), targets),
        },
    )


# --- tuning runs


def competition_of(runs, data=None) -> str:
    """The dataset folder: `data` if given, else the first run config's `competition`."""
    if data:
        return str(data)
    for run in runs:
        if run.config().get("competition"):
            return run.config()["competition"]
    raise FathomError("no --comp given and no run's config.json names its `competition`")


def read_oofs(runs, category_ids) -> list[dict]:
    """The runs' OOF arrays, checked against the dataset's categories and aligned to the first
    run's rows; every run must cover the same images with the same folds."""
    oofs = []
    for run in runs:
        arrays = run.oof()
        check_categories(arrays, category_ids, str(run.path / "oof.npz"))
        oofs.append(arrays)
    ids = oofs[0]["ids"]
    for run, arrays in zip(runs[1:], oofs[1:], strict=True):
        if set(arrays["ids"]) != set(ids):
            raise FathomError(
                f"{run.path / 'oof.npz'}: covers other images than {runs[0].path / 'oof.npz'}"
            )
    oofs = [align_rows(a, ids, str(r.path / "oof.npz")) for a, r in zip(oofs, runs, strict=True)]
    for run, arrays in zip(runs[1:], oofs[1:], strict=True):
        if not np.array_equal(arrays["fold"], oofs[0]["fold"]):
            raise FathomError(
                f"{run.path}: other folds than {runs[0].path}; tuning across them would leak"
            )
    return oofs


def _eval_arrays(run, keys) -> dict:
    """Arrays `keys` of the run's eval.npz as read-only maps (`fileio.load_npz`: a block taken
    from one reads just that block); a missing or damaged file gets `Run.eval`'s one-line
    error."""
    try:
        return fileio.load_npz(run.path / "eval.npz", keys)
    except Exception:  # numpy and zipfile raise several types for a damaged archive
        run.eval()  # which says what is wrong in one line
        raise


def shift_sets(run, oof) -> tuple[np.ndarray, np.ndarray] | None:
    """The shift test's two sets for one run: the OOF features of its first fold model with
    OOF rows (a full fit, fold FULL_FIT, has none), and that model's features of the eval
    images (eval.npz's `fold_features`); None when the eval file holds no features.

    Only that model's block of eval.npz is read, and checked: reading the whole file, every
    model's probabilities, logits and features, was most of the test's time (issue 19)."""
    path = run.path / "eval.npz"
    data = _eval_arrays(run, ("fold_features", "folds"))
    if "fold_features" not in data:
        return None
    folds, features = data.get("folds"), data["fold_features"]
    shape, dtype = features.shape, features.dtype
    if len(shape) != 3 or not np.issubdtype(dtype, np.number):
        raise FathomError(
            f"{path}: `fold_features` holds {dtype} of shape {shape}, expected numbers of "
            "shape (M, N, ...)"
        )
    check_feature_width(run, {"fold_features": np.empty(shape[-1:])}, oof)  # its width alone
    if folds is not None:  # whole numbers, one per model, as `read_predictions` wants them
        whole = np.issubdtype(folds.dtype, np.integer) or (
            np.issubdtype(folds.dtype, np.floating)
            and np.isfinite(folds).all()
            and (folds == folds.round()).all()
        )
        if folds.ndim != 1 or len(folds) != shape[0] or not whole:
            raise FathomError(
                f"{path}: `folds` must be {shape[0]} whole fold number(s), not "
                f"{folds.dtype} of shape {folds.shape}"
            )
    folds = np.unique(oof["fold"]) if folds is None else folds.astype(np.int64)
    with_rows = [k for k, f in enumerate(folds) if (oof["fold"] == f).any()]
    if not with_rows:
        return None
    k = with_rows[0]
    f = int(folds[k])
    reference = oof["features"][oof["fold"] == f]
    if k >= shape[0]:
        raise FathomError(
            f"{path}: `fold_features` holds {shape[0]} model(s), none for fold {f} of the OOF"
        )
    query = np.array(features[k])  # this model's block alone is read from the file
    check_finite({"fold_features": query[None], "folds": np.array([f])}, path)
    return reference, query


def eval_shift(runs, oofs) -> dict:
    """The label-free shift test: how well a fold model's features tell the eval images from
    that fold's OOF (training) images, as a cross-validated AUC averaged over runs.

    One fold model per run (`shift_sets`): a run's fold models measure the same shift to
    within the test's noise (their AUCs differ by about one standard error at FathomNet's
    size), and the decision's standard error is that of one fold model's sets anyway;
    testing all five took most of `fathom tune`."""
    aucs, n_ref, n_query = [], 0, 0
    for run, oof in zip(runs, oofs, strict=True):
        sets = shift_sets(run, oof)
        if sets is None:
            continue
        reference, query = sets
        aucs.append(osd_lib.shift_auc(reference, query))
        n_ref, n_query = len(reference), len(query)
    if not aucs:
        return {"auc": None, "n_reference": 0, "n_query": 0}
    return {"auc": float(np.mean(aucs)), "n_reference": n_ref, "n_query": n_query}


def tune_osd(runs, oofs, held_runs, labels, osd_name=None) -> dict:
    """The osd part of a tuning file: simulated sAUCs on the held-out runs, the shift test,
    the chosen (or named) scorer and its honest estimate."""
    info: dict = {"holdout_runs": [str(r.path) for r in held_runs], "simulated_sauc": {}}
    scores: dict = {}
    if held_runs:
        hcats = {r.holdout_categories() for r in held_runs}
        if len(hcats) != 1 or not next(iter(hcats)):
            raise FathomError(
                "--holdout runs must all have the same non-empty `holdout_categories` in config.json"
            )
        held_cats = next(iter(hcats))
        h_arrays = [r.oof() for r in held_runs]
        h_ids = h_arrays[0]["ids"]
        h_arrays = [
            align_rows(a, h_ids, str(r.path / "oof.npz"))
            for a, r in zip(h_arrays, held_runs, strict=True)
        ]
        unseen = np.array([bool(set(labels[uid]) & set(held_cats)) for uid in h_ids])
        if unseen.all() or not unseen.any():
            raise FathomError(
                f"{held_runs[0].path}: its OOF needs images with and without held-out categories"
            )
        models = [
            osd_lib.ModelRows(
                a["probs"], a["logits"], a["features"], a["fold"], a.get("super_probs")
            )
            for a in h_arrays
        ]
        scores = osd_lib.simulate_scores(models, unseen)
        # for `fathom report`'s histograms, which would otherwise rerun the simulation
        info["_scores"] = {
            "ids": h_ids,
            "unseen": unseen,
            **{name: s for name, s in scores.items() if s is not None},
        }
        info["simulated_sauc"] = {
            name: None if s is None else sauc(unseen, s) for name, s in scores.items()
        }
        for name in osd_lib.SUPER_SCORERS:  # None: the runs have no super_probs to rate it on
            info["simulated_sauc"].setdefault(name, None)
        info["holdout_categories"] = list(held_cats)
        info["n_unseen"] = int(unseen.sum())
        info["n_images"] = len(unseen)
    chosen = osd_name is None
    if chosen:
        scored = {k: v for k, v in info["simulated_sauc"].items() if v is not None}
        if not scored:
            raise FathomError(
                "no --holdout runs to choose the osd scorer on: pass them, or name one with --osd"
            )
        if len(runs) < 2:  # disagreement between ensemble members needs members
            scored.pop("disagreement", None)
        info["shift"] = eval_shift(runs, oofs)
        n_unseen = info["n_unseen"]
        osd_name, info["why"] = osd_lib.choose_scorer(
            scored,
            n_unseen,
            info["n_images"] - n_unseen,
            info["shift"]["auc"],
            info["shift"]["n_reference"],
            info["shift"]["n_query"],
        )
    elif not osd_lib.is_scorer(osd_name):
        raise FathomError(
            f"unknown osd scorer {osd_name!r}; choose from "
            f"{', '.join((*osd_lib.SCORERS, *osd_lib.SUPER_SCORERS))}"
        )
    info["scorer"] = osd_name
    candidates = {
        k: s
        for k, s in scores.items()
        if s is not None and k != "domain" and (k != "disagreement" or len(runs) > 1)
    }
    crossfit = osd_lib.crossfit_choice_sauc(candidates, unseen) if chosen and candidates else None
    info["estimated_sauc"], info["estimate"] = osd_lib.osd_estimate(
        osd_name, info["simulated_sauc"], crossfit, chosen
    )
    return info


def tune_runs(experiments, holdout=(), comp=None, osd_name=None, prior=False, knn=False) -> dict:
    """Everything `fathom tune` decides, as a JSON-ready dict (pure apart from reading the runs).

    With `knn`, every run also joins as a kNN member (fathom/knn.py: its own features read as a
    nearest-neighbour classifier over its banks, the temperature chosen fold-held-out);
    `knn="only"` makes the kNN members the only models.
    With `prior`, the frequency prior joins the ensemble as one more member (its OOF rows are
    the other folds' frequencies), so the weight search can lean on it where models are weak.
    A single-label dataset is tuned on accuracy and has no label sets and no osd.
    """
    runs = [open_run(p) for p in experiments]
    held_runs = [open_run(p) for p in holdout]
    seen: dict[Path, Path] = {}
    for run in runs:  # one run twice would double its weight in every "plain" mean
        key = run.path.resolve()
        if key in seen:
            also = "" if seen[key] == run.path else f" (as {seen[key]} too)"
            raise FathomError(f"{run.path}: named twice{also}; name each run once")
        seen[key] = run.path
    data_dir = competition_of(runs + held_runs, comp)
    dataset = open_dataset(data_dir)
    cats = dataset.categories()
    labels = dataset.labels()
    oofs = read_oofs(runs, cats["id"])
    ids, fold = oofs[0]["ids"], oofs[0]["fold"]
    unknown = [uid for uid in ids if uid not in labels]
    if unknown:
        raise FathomError(
            f"{runs[0].path / 'oof.npz'}: image {unknown[0]} is not a training image of {data_dir}"
        )
    targets = label_matrix([labels[uid] for uid in ids], cats["id"])
    metric_name, metric = METRICS[dataset.task]
    if dataset.kind == "csv":  # a train.csv competition names its own metric
        metric_name = dataset.layout().metric
        metric = matrix_metric(metric_name, new_token=bool(dataset.layout().new_label))
    probs = [a["probs"] for a in oofs]
    members = [{"name": r.name, "path": str(r.path), "kind": "run"} for r in runs]
    if knn:
        if knn == "only":
            probs, members = [], []
        for run, arrays in zip(runs, oofs, strict=True):
            k = tune_knn(run, arrays, targets, metric)
            probs.append(k["probs"])
            members.append(
                {
                    "name": f"{run.name} kNN",
                    "path": str(run.path),
                    "kind": "knn",
                    "run": run.name,
                    "temperature": k["temperature"],
                    "fold_temperatures": k["fold_temperatures"],
                    "cv_by_temperature": k["cv_by_temperature"],
                }
            )
    if prior:
        in_oof = set(ids)
        never_validated = [c for uid, c in labels.items() if uid not in in_oof]
        probs.append(fold_prior(targets, fold, label_matrix(never_validated, cats["id"])))
        members.append({"name": "frequency prior", "path": None, "kind": "prior"})

    ens = tune_ensemble(probs, targets, fold, metric, [m["kind"] != "prior" for m in members])
    result = {
        "competition": str(data_dir),
        "task": dataset.task,
        "experiments": [
            {**m, "cv": metric(p, targets), "weight": w}
            for m, p, w in zip(members, probs, ens.weights, strict=True)
        ],
        "n_images": int(len(ids)),
        "n_folds": int(len(np.unique(fold))),
        "ensemble": {
            "method": ens.method,
            "metric": metric_name,
            "weights": ens.weights,
            "fitted_weights": ens.fitted_weights,
            "scores": ens.scores,
            "fold_weights": ens.fold_weights,
        },
        "thresholds": None,
        "osd": {"scorer": None},
    }
    set_probs = (
        ens.held_out_probs if ens.method == "weighted" else weighted_mean(probs, ens.weights)
    )
    if dataset.kind == "csv":  # the format's own decisions (fathom/formats.py), no osd
        from fathom.formats import tune_format

        in_oof = set(ids)
        always = label_matrix([c for u, c in labels.items() if u not in in_oof], cats["id"])
        result["format"], result["thresholds"] = tune_format(
            dataset.layout(), set_probs, targets, fold, always, tune_thresholds
        )
        return result
    if dataset.task == "singlelabel":
        return result
    thr = tune_thresholds(set_probs, targets, fold)
    result["thresholds"] = {
        "fitted_on": "weighted" if ens.method == "weighted" else "mean",
        "global": thr.global_threshold,
        "per_category": {
            str(int(c)): t for c, t in zip(cats["id"], thr.category_thresholds, strict=True)
        },
        "f1": thr.f1,
    }
    result["osd"] = tune_osd(runs, oofs, held_runs, labels, osd_name)
    return result


def osd_scores_path(tune_path) -> Path:
    """Where a tuning file's simulated osd scores lie: <name>.osd.npz beside it."""
    tune_path = Path(tune_path)
    return tune_path.with_name(f"{tune_path.stem}.osd.npz")


def write_tuning(path, result: dict, overwrite: bool = False) -> Path:
    """The tuning as JSON, and the simulated osd scores (if any) beside it as .npz, named in
    the JSON's `osd.scores_file` (the JSON is written last)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FathomError(f"{path}: already exists (pass --overwrite, or choose another --out)")
    scores = result.get("osd", {}).pop("_scores", None)
    if scores is not None:
        fileio.save_npz(osd_scores_path(path), **scores)
        result["osd"]["scores_file"] = osd_scores_path(path).name
    result["path"] = str(path)
    return fileio.write_json(path, result)


def format_tuning(result: dict) -> str:
    """The tuning as the text `fathom tune` prints."""
    import pandas as pd

    ens = result["ensemble"]
    label = METRIC_NAMES.get(ens["metric"]) or metric_label(ens["metric"])
    lines = [f"{result['n_images']} OOF images, {result['n_folds']} folds"]
    rows = [
        {
            "model": e["name"]
            + (f" (temperature {e['temperature']})" if e.get("kind") == "knn" else ""),
            f"OOF {label}": e["cv"],
            "weight": e["weight"],
        }
        for e in result["experiments"]
    ]
    lines.append(pd.DataFrame(rows).round(4).to_string(index=False))
    m = ens["scores"]
    lines.append(f"\nensemble (OOF {label}; fitted weights scored fold-held-out):")
    table = pd.DataFrame(
        [
            {"method": "mean", label: m["mean"]},
            {"method": "rank average", label: m["rank"]},
            {"method": "fitted weights (held-out)", label: m["weighted"]},
            {"method": "fitted weights (in-sample, optimistic)", label: m["weighted_in_sample"]},
        ]
    )
    lines.append(table.round(4).to_string(index=False))
    lines.append(f"chosen: {ens['method']}  weights {[round(w, 3) for w in ens['weights']]}")
    if result.get("format"):
        from fathom.formats import format_summary

        lines += format_summary(result["format"], result["thresholds"])
    if result["thresholds"]:
        f1 = result["thresholds"]["f1"]
        lines.append(
            f"\nlabel sets (sample F1, held-out): top-1 only {f1['top1']:.4f}   "
            f"global threshold {result['thresholds']['global']:.3f} -> {f1['global']:.4f}   "
            f"per-category -> {f1['per_category']:.4f}"
        )
    o = result["osd"]
    sims = o.get("simulated_sauc") or {}
    if sims:
        lines.append(
            f"\nosd scorers, sAUC on held-out-category OOF ({o['n_unseen']} of {o['n_images']} "
            f"images hold one of {len(o['holdout_categories'])} held-out categories):"
        )
        rows = [
            {"scorer": k, "sAUC": ("n/a" if v is None else round(v, 4))} for k, v in sims.items()
        ]
        lines.append(pd.DataFrame(rows).to_string(index=False))
    shift = (o.get("shift") or {}).get("auc")
    if shift is not None:
        lines.append(f"train-vs-eval shift test (no labels): AUC {shift:.4f} (0.5 = no shift)")
    if o.get("scorer"):
        why = o.get("why")
        lines.append(f"osd scorer: {o['scorer']}" + (f"  ({why})" if why else ""))
        est = o.get("estimated_sauc")
        lines.append(
            f"estimated sAUC: {'none' if est is None else f'{est:.4f}'} ({o.get('estimate', '')})"
        )
    return "\n".join(lines)
