from __future__ import annotations

import argparse

HELP = "ensemble weights, label-set thresholds and the osd scorer, tuned on OOF predictions"
DESCRIPTION = """Tune on the out-of-fold predictions of one or more experiments (run folders that
`fathom oof` has finished) and write the choices to a JSON file that `fathom submit` reads.

- Ensemble: the plain mean, rank averaging and fitted weights (coordinate search for the best
  OOF MAP@20), compared on MAP@20. Fitted weights are scored fold-held-out (fitted on the
  other folds' rows, scored on the held-out fold), never on the rows that chose them.
- Label sets: a global threshold and per-category thresholds that maximise the per-image F1
  of the predicted label sets, also scored fold-held-out, reported beside MAP@20.
- osd: every out-of-sample scorer is scored by sAUC on the OOF of HOLDOUT runs (trained with
  `holdout_categories`: OOF images holding one are the unseen positives); the best is chosen.
  Without --holdout, name the scorer with --osd (its sAUC is then unknown).

example:  fathom tune runs/resnet18 runs/effb0 --holdout runs/resnet18-holdout --out runs/tune-ab.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiments", nargs="+", help="run folders to ensemble (each with oof.npz)")
    p.add_argument(
        "--holdout", nargs="*", default=[], help="run folders trained with holdout_categories"
    )
    p.add_argument(
        "--comp", help="competition folder (default: the first run's config `competition`)"
    )
    p.add_argument("--osd", help="use this osd scorer instead of the best simulated one")
    p.add_argument(
        "--prior",
        action="store_true",
        help="let the frequency prior join the ensemble as a member (its weight is fitted too)",
    )
    p.add_argument("--out", default="runs/tune.json", help="JSON to write (default runs/tune.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _competition_of(runs, comp):
    from fathom.errors import FathomError

    if comp:
        return comp
    for run in runs:
        if run.config().get("competition"):
            return run.config()["competition"]
    raise FathomError("no --comp given and no run's config.json names its `competition`")


def tune_runs(experiments, holdout=(), comp=None, osd_name=None, prior=False) -> dict:
    """Everything `fathom tune` decides, as a JSON-ready dict (pure apart from reading the runs).

    With `prior`, the frequency prior joins the ensemble as one more member (its OOF rows are
    the other folds' frequencies), so the weight search can lean on it where models are weak.
    """
    import numpy as np

    from fathom import osd as osd_lib
    from fathom.data.coco import label_matrix, open_competition, read_categories, read_split
    from fathom.ensemble import fold_prior, tune_ensemble, tune_thresholds, weighted_mean
    from fathom.errors import FathomError
    from fathom.metrics import map_at_k_matrix
    from fathom.runs import align_rows, check_categories, open_run

    runs = [open_run(p) for p in experiments]
    held_runs = [open_run(p) for p in holdout]
    comp_dir = _competition_of(runs + held_runs, comp)
    competition = open_competition(comp_dir)
    cats = read_categories(competition)
    train = read_split(competition, "train", require_images=False, categories=cats)
    labels = dict(zip(train["id"], train["categories"], strict=True))

    oofs = []
    for run in runs:
        arrays = run.oof()
        check_categories(arrays, cats["id"], str(run.path / "oof.npz"))
        oofs.append(arrays)
    ids = oofs[0]["ids"]
    for run, arrays in zip(runs[1:], oofs[1:], strict=True):
        if set(arrays["ids"]) != set(ids):
            raise FathomError(
                f"{run.path / 'oof.npz'}: covers other images than {runs[0].path / 'oof.npz'}"
            )
    oofs = [align_rows(a, ids, str(r.path / "oof.npz")) for a, r in zip(oofs, runs, strict=True)]
    fold = oofs[0]["fold"]
    for run, arrays in zip(runs[1:], oofs[1:], strict=True):
        if not np.array_equal(arrays["fold"], fold):
            raise FathomError(
                f"{run.path}: other folds than {runs[0].path}; tuning across them would leak"
            )
    unknown = [uid for uid in ids if uid not in labels]
    if unknown:
        raise FathomError(
            f"{runs[0].path / 'oof.npz'}: image {unknown[0]} is not in the training set"
        )
    targets = label_matrix([labels[uid] for uid in ids], cats["id"])
    probs = [a["probs"] for a in oofs]
    members = [{"name": r.name, "path": str(r.path), "kind": "run"} for r in runs]
    if prior:
        probs.append(fold_prior(targets, fold))
        members.append({"name": "frequency prior", "path": None, "kind": "prior"})

    ens = tune_ensemble(probs, targets, fold)
    set_weights = ens.weights if ens.method == "weighted" else [1.0] * len(probs)
    set_probs = (
        ens.held_out_probs if ens.method == "weighted" else weighted_mean(probs, set_weights)
    )
    thr = tune_thresholds(set_probs, targets, fold)

    osd_info: dict = {"holdout_runs": [str(r.path) for r in held_runs], "simulated_sauc": {}}
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
            osd_lib.ModelRows(a["probs"], a["logits"], a["features"], a["fold"]) for a in h_arrays
        ]
        osd_info["simulated_sauc"] = osd_lib.simulate(models, unseen)
        osd_info["holdout_categories"] = list(held_cats)
        osd_info["n_unseen"] = int(unseen.sum())
        osd_info["n_images"] = len(unseen)
    if osd_name is None:
        scored = {k: v for k, v in osd_info["simulated_sauc"].items() if v is not None}
        if not scored:
            raise FathomError(
                "no --holdout runs to choose the osd scorer on: pass them, or name one with --osd"
            )
        if len(runs) < 2:  # disagreement between ensemble members needs members
            scored.pop("disagreement", None)
        osd_info["shift"] = eval_shift(runs, oofs)
        n_unseen = osd_info["n_unseen"]
        osd_name, osd_info["why"] = osd_lib.choose_scorer(
            scored,
            n_unseen,
            osd_info["n_images"] - n_unseen,
            osd_info["shift"]["auc"],
            osd_info["shift"]["n_reference"],
            osd_info["shift"]["n_query"],
        )
    elif not osd_lib.is_scorer(osd_name):
        raise FathomError(
            f"unknown osd scorer {osd_name!r}; choose from {', '.join(osd_lib.SCORERS)}"
        )
    osd_info["scorer"] = osd_name

    return {
        "competition": str(comp_dir),
        "experiments": [
            {**m, "cv_map20": map_at_k_matrix(p, targets), "weight": float(w)}
            for m, p, w in zip(members, probs, ens.weights, strict=True)
        ],
        "n_images": int(len(ids)),
        "n_folds": int(len(np.unique(fold))),
        "ensemble": {
            "method": ens.method,
            "weights": ens.weights,
            "map20": ens.map20,
            "fold_weights": ens.fold_weights,
        },
        "thresholds": {
            "fitted_on": "weighted" if ens.method == "weighted" else "mean",
            "global": thr.global_threshold,
            "per_category": {
                str(int(c)): t for c, t in zip(cats["id"], thr.category_thresholds, strict=True)
            },
            "f1": thr.f1,
        },
        "osd": osd_info,
    }


def eval_shift(runs, oofs) -> dict:
    """The label-free shift test: how well each fold model's features tell the eval images from
    that fold's OOF (training) images, as a cross-validated AUC averaged over folds and runs."""
    import numpy as np

    from fathom import osd as osd_lib

    aucs, n_ref, n_query = [], 0, 0
    for run, oof in zip(runs, oofs, strict=True):
        ev = run.eval()
        if "fold_features" not in ev:
            continue
        folds = ev["folds"] if "folds" in ev else np.unique(oof["fold"])
        for k, f in enumerate(folds):
            ref = oof["features"][oof["fold"] == f]
            aucs.append(osd_lib.shift_auc(ref, ev["fold_features"][k]))
            n_ref, n_query = len(ref), len(ev["fold_features"][k])
    if not aucs:
        return {"auc": None, "n_reference": 0, "n_query": 0}
    return {"auc": float(np.mean(aucs)), "n_reference": n_ref, "n_query": n_query}


def print_tuning(result: dict) -> None:
    import pandas as pd

    print(f"{result['n_images']} OOF images, {result['n_folds']} folds")
    rows = [
        {"model": e["name"], "OOF MAP@20": e["cv_map20"], "weight": e["weight"]}
        for e in result["experiments"]
    ]
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    m = result["ensemble"]["map20"]
    print("\nensemble (OOF MAP@20; fitted weights scored fold-held-out):")
    table = pd.DataFrame(
        [
            {"method": "mean", "MAP@20": m["mean"]},
            {"method": "rank average", "MAP@20": m["rank"]},
            {"method": "fitted weights (held-out)", "MAP@20": m["weighted"]},
            {"method": "fitted weights (in-sample, optimistic)", "MAP@20": m["weighted_in_sample"]},
        ]
    )
    print(table.round(4).to_string(index=False))
    print(
        f"chosen: {result['ensemble']['method']}  weights {[round(w, 3) for w in result['ensemble']['weights']]}"
    )
    f1 = result["thresholds"]["f1"]
    print(
        f"\nlabel sets (sample F1, held-out): top-1 only {f1['top1']:.4f}   "
        f"global threshold {result['thresholds']['global']:.3f} -> {f1['global']:.4f}   "
        f"per-category -> {f1['per_category']:.4f}"
    )
    sims = result["osd"].get("simulated_sauc") or {}
    if sims:
        o = result["osd"]
        print(
            f"\nosd scorers, sAUC on held-out-category OOF ({o['n_unseen']} of {o['n_images']} images "
            f"hold one of {len(o['holdout_categories'])} held-out categories):"
        )
        rows = [
            {"scorer": k, "sAUC": ("n/a" if v is None else round(v, 4))} for k, v in sims.items()
        ]
        print(pd.DataFrame(rows).to_string(index=False))
    shift = (result["osd"].get("shift") or {}).get("auc")
    if shift is not None:
        print(f"train-vs-eval shift test (no labels): AUC {shift:.4f} (0.5 = no shift)")
    why = result["osd"].get("why")
    print(f"osd scorer: {result['osd']['scorer']}" + (f"  ({why})" if why else ""))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom import fileio
    from fathom.errors import FathomError

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FathomError(f"{out}: already exists (pass --overwrite, or choose another --out)")
    result = tune_runs(args.experiments, args.holdout, args.comp, args.osd, args.prior)
    result["path"] = str(out)
    print_tuning(result)
    fileio.write_json(out, result)
    print(f"\nwrote {out}")
    return 0
