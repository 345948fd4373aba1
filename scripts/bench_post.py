"""The post-training stages (oof, tune, submit, report) at FathomNet's real size, timed.

Builds, without drawing an image, a competition folder of FathomNet's size (290 categories,
5,950 training and 10,744 eval images: category_key.csv, train.csv, the COCO jsons) and run
folders in the run-folder contract (fathom/runs.py) as 5-fold training would leave them:
three backbones with 1,024-, 2,048- and 1,280-d pooled features (densenet121, resnet50,
efficientnet_b0) and a held-out-category run. Predictions and features are constructed, not
trained: a model puts logit mass on the true categories; features are a ReLU of a
low-dimensional mix of the image's organisms plus noise, and the deep eval images are moved
along a shared direction (another background). Then it times each stage as the commands run
it, and the parts this issue sped up against the old implementation (kept below) on the same
data:

    python scripts/bench_post.py                  # ~2-3 minutes on 2 cores (the build is most)
    python scripts/bench_post.py --old-stages     # also every stage on the old code (~20 min)
    python scripts/bench_post.py --workdir /tmp/bp --keep   # reuse the built files next time
    python scripts/bench_post.py --scale          # time and peak memory as rows and members grow

Target (issue 10): every stage under 30 s on a 2-core machine. With --scale (issue 19): tune
and submit, the kNN members included, under 30 s at FathomNet's size with three backbones,
growing no worse than linearly with the members and the eval rows.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom import fileio  # noqa: E402
from fathom import metrics as metrics_lib  # noqa: E402
from fathom import osd as osd_lib  # noqa: E402
from fathom.knn import BANK_FILE, write_bank  # noqa: E402
from fathom.runs import write_predictions  # noqa: E402
from fathom.synth.fathomnet import TRUTH_FILE  # noqa: E402

N_CATEGORIES = 290
BACKBONES = {"d121": 1024, "r50": 2048, "effb0": 1280}
LATENT = 48


# --- the old implementations (before issue 10 part 8), for the ratios


def old_ap_at_k_matrix(scores, targets, k=metrics_lib.K):
    """Per-row AP@k by a stable sort of every column (what ap_at_k_matrix did)."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(targets, top, axis=1).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    n_true = targets.sum(axis=1)
    denom = np.minimum(n_true, k).astype(np.float64)
    return np.where(n_true > 0, (precision * hits).sum(axis=1) / np.maximum(denom, 1), 0.0)


def _old_domain_classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced")
    )


def old_shift_auc(reference, query, n_splits=5, seed=0):
    """Cross-validated AUC of the classifier on the full-width features."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.concatenate([reference, query]).astype(np.float64)
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(query))])
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    proba = cross_val_predict(_old_domain_classifier(), x, y, cv=cv, method="predict_proba")
    return float(roc_auc_score(y, proba[:, 1]))


def old_domain_score(reference, query, n_splits=5, seed=0):
    """The cross-fitted domain classifier on the full-width features."""
    ref = np.asarray(reference, dtype=np.float64)
    qry = np.asarray(query, dtype=np.float64)
    n_splits = max(2, min(n_splits, len(qry)))
    part = np.random.default_rng(seed).permutation(len(qry)) % n_splits
    out = np.zeros(len(qry))
    for s in range(n_splits):
        train_q = qry[part != s]
        x = np.concatenate([ref, train_q])
        y = np.concatenate([np.zeros(len(ref)), np.ones(len(train_q))])
        model = _old_domain_classifier().fit(x, y)
        out[part == s] = model.predict_proba(qry[part == s])[:, 1]
    return out


def old_mahalanobis_distance(reference, query):
    """scikit-learn's LedoitWolf: a D x D covariance, its pseudo-inverse, N x D x D products."""
    from sklearn.covariance import LedoitWolf

    ref = np.asarray(reference, dtype=np.float64)
    return LedoitWolf().fit(ref).mahalanobis(np.asarray(query, dtype=np.float64))


@contextlib.contextmanager
def old_code():
    """Every stage on the old code paths: full sorts, full-width classifiers, sklearn's
    Mahalanobis, and a report that reruns the osd simulation."""
    from fathom import ensemble, oof, report

    saved = [
        (metrics_lib, "ap_at_k_matrix", old_ap_at_k_matrix),
        (oof, "ap_at_k_matrix", old_ap_at_k_matrix),
        (osd_lib, "shift_auc", old_shift_auc),
        (osd_lib, "domain_score", old_domain_score),
        (osd_lib, "mahalanobis_distance", old_mahalanobis_distance),
        (report, "stored_osd_scores", lambda *a, **k: None),
    ]
    funcs = dict(osd_lib.FEATURE_FUNCS)
    osd_lib.FEATURE_FUNCS.update(domain=old_domain_score, mahalanobis=old_mahalanobis_distance)
    originals = [(mod, name, getattr(mod, name)) for mod, name, _ in saved if hasattr(mod, name)]
    for mod, name, new in saved:
        setattr(mod, name, new)
    _ = ensemble  # map_at_k_matrix reads metrics.ap_at_k_matrix at call time
    try:
        yield
    finally:
        for mod, name, fn in originals:
            setattr(mod, name, fn)
        osd_lib.FEATURE_FUNCS.clear()
        osd_lib.FEATURE_FUNCS.update(funcs)


# --- the real-size files


def _uuid(rng) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _labels(rng, n, weights, rare_weights=None, deep=None):
    """1-3 categories per image (68/24/8%), drawn by `weights` (deep rows: `rare_weights`)."""
    out = []
    for i in range(n):
        w = rare_weights if deep is not None and deep[i] else weights
        k = rng.choice([1, 2, 3], p=[0.68, 0.24, 0.08])
        out.append(sorted(set(rng.choice(N_CATEGORIES, size=k, p=w).tolist())))
    return out


def build_competition(root: Path, n_train: int, n_eval: int, seed: int = 0) -> dict:
    """category_key.csv, train.csv and the COCO jsons (no image files): what tune, submit
    and report read. Returns the label matrices and which eval images are deep."""
    rng = np.random.default_rng(seed)
    seen = rng.permutation(N_CATEGORIES)[:240]
    train_w = np.zeros(N_CATEGORIES)
    train_w[seen] = 1.0 / np.arange(1, len(seen) + 1) ** 1.1
    train_w /= train_w.sum()
    deep_w = np.where(train_w > 0, 0.2 / len(seen), 0.8 / (N_CATEGORIES - len(seen)))
    deep_w /= deep_w.sum()
    deep = rng.random(n_eval) < 0.4
    train_labels = _labels(rng, n_train, train_w)
    eval_labels = _labels(rng, n_eval, train_w, deep_w, deep)
    cat_ids = np.arange(1, N_CATEGORIES + 1)
    supers = [f"group{s}" for s in np.repeat(np.arange(20), 15)[:N_CATEGORIES]]
    categories = [
        {"id": int(c), "name": f"{supers[i]} sp. {c}", "supercategory": supers[i]}
        for i, c in enumerate(cat_ids)
    ]
    ids = {
        split: [_uuid(rng) for _ in range(n)] for split, n in (("train", n_train), ("eval", n_eval))
    }
    for split in ("train", "eval"):
        images = [
            {"id": i + 1, "file_name": f"{uid}.png", "width": 32, "height": 32}
            for i, uid in enumerate(ids[split])
        ]
        coco = {"images": images, "annotations": [], "categories": categories}
        fileio.write_json(root / "object_detection" / f"{split}.json", coco)
    rows = [
        {"id": uid, "categories": str([float(cat_ids[c]) for c in labels])}
        for uid, labels in zip(ids["train"], train_labels, strict=True)
    ]
    fileio.write_csv(root / "multilabel_classification" / "train.csv", pd.DataFrame(rows))
    key = pd.DataFrame({"id": cat_ids, "name": [c["name"] for c in categories], "supercat": supers})
    truth = pd.DataFrame(
        {
            "id": ids["eval"],
            "categories": [" ".join(str(cat_ids[c]) for c in row) for row in eval_labels],
            "osd": deep.astype(int),
        }
    )
    fileio.write_csv(root / TRUTH_FILE, truth)  # the hidden answers, for `fathom score`
    fileio.write_csv(root / "category_key.csv", key)

    def matrix(labels):
        y = np.zeros((len(labels), N_CATEGORIES), dtype=np.float32)
        for i, row in enumerate(labels):
            y[i, row] = 1.0
        return y

    return {
        "ids": ids,
        "y_train": matrix(train_labels),
        "y_eval": matrix(eval_labels),
        "deep": deep,
        "cat_ids": cat_ids,
    }


def _outputs(rng, y, learned, quality, embed, proj, shift=None):
    """Probs, logits and features of one model on the rows of `y`."""
    y = y * learned
    logits = -5.0 + quality * 7.0 * y + rng.normal(0, 1.2, y.shape)
    z = y @ embed + 0.8 * rng.standard_normal((len(y), LATENT))
    if shift is not None:
        z += shift
    feats = np.maximum(z @ proj + 0.4 * rng.standard_normal((len(y), proj.shape[1])), 0.0)
    return 1 / (1 + np.exp(-logits)), logits, feats


def build_run(
    runs: Path,
    comp: Path,
    name: str,
    dim: int,
    data: dict,
    quality: float,
    seed: int,
    holdout=(),
    n_folds: int = 5,
    with_eval: bool = True,
    with_bank: bool = False,
) -> Path:
    """runs/<name>/ as `fathom train` leaves it: config.json and fold<k>/ with oof.npz
    (targets included), eval.npz, history.csv, a stand-in best.pt and (`with_bank`) the kNN
    bank.npz."""
    rng = np.random.default_rng(seed)
    root = runs / name
    cat_ids = data["cat_ids"]
    learned = (data["y_train"].sum(axis=0) > 0) & ~np.isin(cat_ids, holdout)
    embed = rng.normal(0, 1, (N_CATEGORIES, LATENT)) * learned[:, None]
    proj = rng.normal(0, 1, (LATENT, dim)) / np.sqrt(LATENT) + 0.3
    shift = 1.5 * rng.normal(0, 1, LATENT)
    fold = np.arange(len(data["y_train"])) % n_folds
    train_ids = np.asarray(data["ids"]["train"])
    deep = data["deep"][:, None].astype(np.float64)
    for k in range(n_folds):
        rows = fold == k
        probs, logits, feats = _outputs(rng, data["y_train"][rows], learned, quality, embed, proj)
        d = root / f"fold{k}"
        write_predictions(
            d / "oof.npz", train_ids[rows], probs, logits, feats, cat_ids, data["y_train"][rows]
        )
        if with_eval:
            probs, logits, feats = _outputs(
                rng, data["y_eval"], learned, quality, embed, proj, deep * shift
            )
            write_predictions(d / "eval.npz", data["ids"]["eval"], probs, logits, feats, cat_ids)
        if with_bank:  # the kNN member's bank: features of the rows fold k trained on
            rest = ~rows
            _, _, bank_feats = _outputs(rng, data["y_train"][rest], learned, quality, embed, proj)
            write_bank(d / BANK_FILE, train_ids[rest], bank_feats, data["y_train"][rest], cat_ids)
        (d / "best.pt").write_bytes(f"{name}-{k}".encode())
        history = pd.DataFrame(
            {
                "epoch": [1, 2],
                "train_loss": [0.5, 0.3],
                "val_loss": [0.6, 0.5],
                "val_map20": [0.3, 0.4],
            }
        )
        fileio.write_csv(d / "history.csv", history)
    config = {
        "name": name,
        "competition": str(comp),
        "n_folds": n_folds,
        "holdout_categories": [int(c) for c in holdout],
        "model": name,
    }
    fileio.write_json(root / "config.json", config)
    return root


QUALITY = {"d121": 0.75, "r50": 0.8, "effb0": 0.7}


def build(
    work: Path,
    n_train: int,
    n_eval: int,
    n_holdout: int,
    backbones: dict[str, int] = BACKBONES,
    banks: bool = False,
) -> tuple[Path, list, list]:
    """The competition and the runs (one per backbone; a name `r50-2` is r50's second run,
    another seed) under `work`, or those already there."""
    comp, runs = work / "comp", work / "runs"
    if (comp / "category_key.csv").is_file() and (runs / "done").is_file():
        names = fileio.read_json(runs / "done")
        return comp, [runs / n for n in names["runs"]], [runs / n for n in names["held"]]
    shutil.rmtree(work, ignore_errors=True)
    data = build_competition(comp, n_train, n_eval)
    quality = {name: QUALITY[name.split("-")[0]] for name in backbones}
    run_dirs = [
        build_run(runs, comp, name, dim, data, quality[name], seed=i + 1, with_bank=banks)
        for i, (name, dim) in enumerate(backbones.items())
    ]
    counts = data["y_train"].sum(axis=0)
    rows = [np.flatnonzero(r) for r in data["y_train"]]
    held = osd_lib.choose_holdout_categories(rows, share=0.2)
    held_ids = [int(data["cat_ids"][c]) for c in held if counts[c] > 0]
    held_dirs = [
        build_run(
            runs,
            comp,
            f"{name}-holdout",
            dim,
            data,
            quality[name],
            seed=10 + i,
            holdout=held_ids,
            with_eval=False,
        )
        for i, (name, dim) in enumerate(list(backbones.items())[:n_holdout])
    ]
    fileio.write_json(
        runs / "done", {"runs": [p.name for p in run_dirs], "held": [p.name for p in held_dirs]}
    )
    return comp, run_dirs, held_dirs


# --- timing


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def stages(comp: Path, run_dirs, held_dirs, out: Path, osd: str | None) -> dict[str, float]:
    """Each post-training stage as its command runs it; seconds by stage."""
    from fathom.oof import write_oof
    from fathom.report import build_report
    from fathom.runs import read_tuning
    from fathom.submit import make
    from fathom.tune import tune_runs, write_tuning

    secs = {}
    secs["oof"], _ = timed(lambda: [write_oof(d) for d in [*run_dirs, *held_dirs]])
    tune_path = out / "tune.json"
    t, result = timed(tune_runs, run_dirs, held_dirs, comp, None, True)
    secs["tune"] = t + timed(write_tuning, tune_path, result, True)[0]
    tuning = read_tuning(tune_path)
    secs["submit"], _ = timed(make, tuning, "bench", comp, None, osd, out / "sub", True)
    secs["report"], _ = timed(build_report, run_dirs, out / "report", tune_path, comp, False)
    print(f"  tuned osd scorer: {result['osd']['scorer']} ({result['osd'].get('why')})")
    print(f"  submit scored osd with: {osd or result['osd']['scorer']}")
    return secs


# --- --scale: time and peak memory per stage as the rows and the members grow


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stage_in_child(stage: str, comp, run_dirs, held_dirs, out, osd) -> tuple[float, float, float]:
    """One stage (oof, tune with the kNN members, submit) in this fresh process: (wall
    seconds, CPU seconds of all its threads, peak resident memory above the process's own
    after its imports, MB)."""
    from fathom.oof import write_oof
    from fathom.runs import read_tuning
    from fathom.submit import make
    from fathom.tune import tune_runs, write_tuning

    before = _max_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    tune_path = Path(out) / "tune.json"
    if stage == "oof":
        for d in [*run_dirs, *held_dirs]:
            write_oof(d)
    elif stage == "tune":
        result = tune_runs(run_dirs, held_dirs, comp, None, prior=True, knn=True)
        write_tuning(tune_path, result, True)
    elif stage == "submit":
        make(read_tuning(tune_path), "bench", comp, None, osd, Path(out) / "sub", True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, max(0.0, _max_rss_mb() - before)


def run_stages(comp, run_dirs, held_dirs, out: Path, osd) -> dict[str, tuple]:
    """oof, tune (kNN members included) and submit, each in its own process, so that each
    stage's peak memory is its own (ru_maxrss only ever grows)."""
    from multiprocessing import get_context

    found = {}
    for stage in ("oof", "tune", "submit"):
        with get_context("spawn").Pool(1) as pool:
            found[stage] = pool.apply(stage_in_child, (stage, comp, run_dirs, held_dirs, out, osd))
        wall, cpu, mb = found[stage]
        print(f"  {stage}: {wall:.1f} s, CPU {cpu:.1f} s, peak +{mb:.0f} MB", flush=True)
    return found


SCALE_DIMS = {"d121": 128, "r50": 256, "effb0": 160}  # 1/8 of the real widths


def scale(work: Path, args) -> None:
    """Three scenarios against their baseline, same code, same machine, one run:
    FathomNet's size (3 backbones at their real widths, each with its kNN member: the 30 s
    target); twice the members (6 runs); 10x the eval rows, at 1/8 of the feature widths
    (so that 10x fits in memory), against 1x at those widths."""
    n_train, n_eval, rows = args.n_train, args.n_eval, args.rows_factor
    doubled = {**BACKBONES, **{f"{n}-2": d for n, d in BACKBONES.items()}}
    scenarios = [
        ("size", "FathomNet's size: 3 runs + kNN", n_eval, BACKBONES),
        ("members", "2x members: 6 runs + kNN", n_eval, doubled),
        ("rows1", "1x eval rows (1/8 widths)", n_eval, SCALE_DIMS),
        ("rows", f"{rows}x eval rows (1/8 widths)", n_eval * rows, SCALE_DIMS),
    ]
    scenarios = [s for s in scenarios if s[0] in args.scenarios]
    found = {}
    for key, title, n, backbones in scenarios:
        t, (comp, run_dirs, held_dirs) = timed(
            build, work / key, n_train, n, args.n_holdout, backbones, True
        )
        print(f"{title}: {n_train} OOF + {n} eval rows, built in {t:.0f} s", flush=True)
        found[key] = run_stages(comp, run_dirs, held_dirs, work / key / "out", args.osd)
    print(
        "\nCPU s: user+sys of the stage's process, all its threads (what the stage costs, "
        "whatever else runs)"
    )
    print("| scenario | stage | wall s | CPU s | peak MB | vs its baseline: CPU, memory (linear) |")
    print("|---|---|---|---|---|---|")
    against = {"members": ("size", 2), "rows": ("rows1", rows)}
    for key, title, _, _ in scenarios:
        for stage, (wall, cpu, mb) in found[key].items():
            ratio = ""
            if key in against and against[key][0] in found:
                base, linear = against[key]
                _, b_cpu, b_mb = found[base][stage]
                ratio = f"{cpu / b_cpu:.1f}x, {mb / max(b_mb, 1):.1f}x ({linear}x)"
            over = " OVER 30 s" if key == "size" and stage != "oof" and wall > 30 else ""
            print(f"| {title} | {stage} | {wall:.1f}{over} | {cpu:.1f} | {mb:.0f} | {ratio} |")


def parts(run_dirs, held_dirs, tune_path: Path) -> list[tuple[str, float, float]]:
    """(part, old seconds, new seconds) on one unit of the real-size work each."""
    from fathom import report
    from fathom.ensemble import weighted_mean
    from fathom.runs import open_run, read_tuning

    rows = []
    runs = [open_run(p) for p in run_dirs]
    oofs = [r.oof() for r in runs]
    probs = weighted_mean([o["probs"] for o in oofs], [0.3, 0.4, 0.3])
    targets = oofs[0]["targets"]
    t_old, a = timed(lambda: [old_ap_at_k_matrix(probs, targets) for _ in range(20)])
    t_new, b = timed(lambda: [metrics_lib.ap_at_k_matrix(probs, targets) for _ in range(20)])
    assert np.array_equal(a[0], b[0])
    rows.append(("MAP@20, 20 calls on 5,950 x 290", t_old, t_new))

    big = max(range(len(runs)), key=lambda i: oofs[i]["features"].shape[1])
    ev = runs[big].eval()
    ref = oofs[big]["features"][oofs[big]["fold"] == ev["folds"][0]]
    qry = ev["fold_features"][0]
    dim = ref.shape[1]
    for name, old, new in (
        ("shift test", old_shift_auc, osd_lib.shift_auc),
        ("domain scorer", old_domain_score, osd_lib.domain_score),
        ("mahalanobis scorer", old_mahalanobis_distance, osd_lib.mahalanobis_distance),
    ):
        t_old, a = timed(old, ref, qry)
        t_new, b = timed(new, ref, qry)
        if np.ndim(a):
            agree = f"rank corr {pd.Series(a).corr(pd.Series(b), method='spearman'):.4f}"
        else:
            agree = f"AUC {a:.4f} -> {b:.4f}"
        rows.append((f"{name}, one {dim}-d fold model ({agree})", t_old, t_new))

    tuning = read_tuning(tune_path)
    held = [open_run(p) for p in held_dirs]

    def rerun():
        h = [r.oof() for r in held]
        models = [osd_lib.ModelRows(a["probs"], a["logits"], a["features"], a["fold"]) for a in h]
        labels = {}
        return osd_lib.simulate_scores(models, _unseen(h[0], tuning, labels))

    t_old, _ = timed(rerun)
    t_new, stored = timed(report.stored_osd_scores, tuning)
    assert stored is not None
    rows.append(("report's osd scores (rerun -> stored)", t_old, t_new))
    return rows


def _unseen(oof, tuning, _labels):
    held = set(tuning["osd"]["holdout_categories"])
    cats = oof["category_ids"]
    hit = oof["targets"][:, np.isin(cats, list(held))].sum(axis=1) > 0
    return hit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", help="where to build (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the built files")
    ap.add_argument("--n-train", type=int, default=5950)
    ap.add_argument("--n-eval", type=int, default=10744)
    ap.add_argument("--n-holdout", type=int, default=1, help="held-out-category runs (1-3)")
    ap.add_argument("--osd", help="osd scorer for submit (default: the tuned one)")
    ap.add_argument(
        "--old-stages", action="store_true", help="also time each stage on the old code"
    )
    ap.add_argument(
        "--scale",
        action="store_true",
        help="time and peak memory of oof, tune (with kNN members) and submit at FathomNet's "
        "size, with 2x the members and with --rows-factor x the eval rows",
    )
    ap.add_argument("--rows-factor", type=int, default=10, help="--scale: eval rows x this")
    ap.add_argument(
        "--scenarios",
        nargs="+",
        default=["size", "members", "rows1", "rows"],
        help="--scale: which of size, members, rows1, rows to run (default all)",
    )
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_post-"))
    if args.scale:
        try:
            scale(work, args)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        t, (comp, run_dirs, held_dirs) = timed(
            build, work, args.n_train, args.n_eval, args.n_holdout
        )
        dims = ", ".join(f"{n} {d}-d" for n, d in BACKBONES.items())
        print(
            f"built {args.n_train} OOF + {args.n_eval} eval rows x {N_CATEGORIES} categories, "
            f"{len(run_dirs)} runs ({dims}) + {len(held_dirs)} held-out run(s), 5 folds, in {t:.0f} s"
        )
        out = work / "out"
        secs = stages(comp, run_dirs, held_dirs, out, args.osd)
        old = {}
        if args.old_stages:
            with old_code():
                old = stages(comp, run_dirs, held_dirs, work / "out-old", args.osd)
        print("\nstage    seconds" + ("   old s   old/new" if old else "") + "   (target < 30 s)")
        for stage, s in secs.items():
            line = f"{stage:<8} {s:7.1f}"
            if old:
                line += f" {old[stage]:7.1f}  {old[stage] / s:7.1f}x"
            print(line + ("" if s < 30 else "   OVER"))
        print(
            "\npart (same data, old implementation kept in this script)   old s    new s   old/new"
        )
        for name, t_old, t_new in parts(run_dirs, held_dirs, out / "tune.json"):
            print(f"{name:<58} {t_old:7.2f}  {t_new:7.2f}  {t_old / max(t_new, 1e-9):7.1f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
