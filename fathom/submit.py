"""`fathom submit`: a tuning file and the runs' eval predictions in, a validated submission
and its manifest out.

The experiments' eval predictions are combined as the tuning says (`ensemble_eval`); a
multi-label submission ranks categories by the combination and scores each image's osd with
the tuned scorer (`eval_osd`); a single-label one writes each image's top class. Nothing is
written unless the CSV validates, and neither file replaces an existing one unless asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fathom import fileio
from fathom import osd as osd_lib
from fathom.data import open_dataset
from fathom.ensemble import combine, weighted_mean
from fathom.errors import FathomError
from fathom.knn import BANK_FILE, eval_knn
from fathom.manifest import build_manifest, write_manifest
from fathom.prior import prior_logits, prior_probabilities
from fathom.runs import (
    FULL_FIT,
    align_rows,
    check_categories,
    check_feature_width,
    fold_label,
    member_key,
    member_run,
    open_run,
    read_predictions,
    run_folders,
)
from fathom.submission import (
    make_label_submission,
    make_submission,
    write_label_submission,
    write_submission,
)


def ensemble_eval(tuning: dict, data_dir, predictions=None) -> dict:
    """The experiments' eval predictions combined as the tuning says.

    Returns ids, category_ids, `scores` (what ranks the categories: the tuned combination,
    rank averages included), `probs` and `logits` (the members' weighted mean probabilities
    and logits, what probability-based osd scorers read: a rank average is no probability),
    and for the osd feature scorers `runs` (the run members with a positive weight) with their
    aligned `evals` and `oofs`, plus `all_runs`.
    """
    dataset = open_dataset(data_dir)
    cats = dataset.categories()
    ev = dataset.split("eval", require_images=False, categories=cats)
    ids = ev["id"].tolist()

    members = tuning["experiments"]
    folders = run_folders(tuning)
    runs = [open_run(f["path"]) for f in folders]
    if predictions:  # `fathom predict` writes DIR/<run name>/: two runs of one name would meet
        names = [run.name for run in runs]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise FathomError(
                f"{tuning.get('path', 'the tuning')}: two runs named {twice!r} "
                f"({', '.join(str(r.path) for r in runs if r.name == twice)}) would read the same "
                f"{Path(predictions) / twice / 'eval.npz'}; rename one run folder and tune again"
            )
    evals, oofs, eval_files = [], [], []
    for run in runs:
        folder = Path(predictions) / run.name if predictions else None
        arrays = run.eval(folder)
        where = str((folder or run.path) / "eval.npz")
        eval_files.append(Path(where))
        check_categories(arrays, cats["id"], where)
        evals.append(align_rows(arrays, ids, where))
        oofs.append(run.oof())
    # by resolved path, not by name: runs/a and other/a are two members (issue 21.1)
    by_key = {member_key(f): i for i, f in enumerate(folders)}
    member_probs, member_logits = [], []
    for e in members:  # in the tuning's order, which its weights follow
        if member_run(e) is None:  # the frequency prior
            train = dataset.split("train", require_images=False, categories=cats)
            p = prior_probabilities(train, len(ids), cats["id"])
            logits = prior_logits(p)
        elif e.get("kind") == "knn":
            i = by_key[member_key(e)]
            p = eval_knn(runs[i], evals[i], float(e["temperature"]), oofs[i])
            logits = prior_logits(p)  # a share of neighbours, as a logit for the osd scorers
        else:
            i = by_key[member_key(e)]
            p, logits = evals[i]["probs"], evals[i]["logits"]
        member_probs.append(p)
        member_logits.append(logits)
    method, weights = tuning["ensemble"]["method"], tuning["ensemble"]["weights"]
    # a run none of whose members has weight does not shape the ensemble's predictions: its
    # features and its opinion should not shape the osd score either
    run_w = np.zeros(len(runs))
    for w, e in zip(weights, members, strict=True):
        if member_run(e) is not None:
            run_w[by_key[member_key(e)]] += w
    keep = [i for i, w in enumerate(run_w) if w > 0] or list(range(len(runs)))
    # the supercategory head's eval probabilities (runs trained with supercat_weight > 0): the
    # `supercat_entropy` osd scorer reads their mean over the runs that have them all
    supers = [e["super_probs"] for e in evals if "super_probs" in e]
    return {
        "ids": ids,
        "category_ids": cats["id"].tolist(),
        "super_probs": np.mean(supers, axis=0) if supers and len(supers) == len(evals) else None,
        "class_names": cats["name"].tolist(),
        "task": dataset.task,
        "scores": combine(method, member_probs, weights),
        "probs": weighted_mean(member_probs, weights),
        "logits": weighted_mean(member_logits, weights),
        "runs": [runs[i] for i in keep],
        "evals": [evals[i] for i in keep],
        "oofs": [oofs[i] for i in keep],
        "eval_paths": [eval_files[i] for i in keep],
        "all_runs": runs,
        "eval_files": eval_files,
    }


def knn_banks(run, eval_file: Path) -> list[Path]:
    """The kNN banks a kNN member's eval scores read: one per model of the eval file."""
    folds = read_predictions(eval_file, ("folds",), only=())["folds"]
    return [run.path / fold_label(int(k)) / BANK_FILE for k in folds]


def eval_osd(ens: dict, scorer: str) -> np.ndarray:
    """The scorer on the eval images. Feature scorers pair each fold model's eval features with
    that fold's OOF features (same model, images it never trained on), matched by fold number;
    a full fit has no OOF rows and takes no part in them."""
    stack = None
    parts = scorer.split("+")
    evals = ens["evals"]
    if "disagreement" in parts:
        stack = (
            np.stack([e["probs"] for e in evals]) if len(evals) > 1 else evals[0].get("fold_probs")
        )
        if stack is None or len(stack) < 2:
            raise FathomError(
                "osd scorer `disagreement` needs two experiments or eval.npz `fold_probs`"
            )
    feats, refs = [], []
    if any(part in osd_lib.FEATURE_SCORERS for part in parts):
        paths = ens.get("eval_paths") or [None] * len(evals)
        for run, e, o, path in zip(ens["runs"], evals, ens["oofs"], paths, strict=True):
            if "fold_features" not in e:
                raise FathomError(
                    f"{run.path}: eval predictions lack `fold_features` for osd scorer {scorer}"
                )
            check_feature_width(run, e, o, path)
            folds = e["folds"] if "folds" in e else np.unique(o["fold"])
            if len(folds) != len(e["fold_features"]):
                raise FathomError(
                    f"{run.path}: {len(e['fold_features'])} eval fold models but {len(folds)} folds named"
                )
            for k, f in enumerate(folds):
                ref = o["features"][o["fold"] == f]
                if f == FULL_FIT or not len(ref):
                    continue
                feats.append(e["fold_features"][k])
                refs.append(ref)
            if not feats:
                raise FathomError(
                    f"{run.path}: no eval fold model has OOF rows of its fold to compare with "
                    f"(osd scorer {scorer} needs fold models, not only a full fit)"
                )
    return osd_lib.eval_scores(
        scorer, ens["probs"], ens["logits"], stack, feats, refs, ens.get("super_probs")
    )


def make(
    tuning: dict,
    name: str,
    comp=None,
    predictions=None,
    osd_name=None,
    out_dir="submissions",
    overwrite=False,
):
    """Write the CSV and manifest; return (csv path, manifest dict)."""
    out_dir = Path(out_dir)
    fileio.plain_name(name, "--name")  # a file name in out_dir, never a path out of it
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    if not overwrite:  # check both before writing either: never half a submission
        for path in (csv_path, json_path):
            if path.exists():
                raise FathomError(
                    f"{path}: already exists (pass --overwrite, or choose another --name)"
                )
    data_dir = comp or tuning.get("competition")
    if not data_dir:
        raise FathomError(f"{tuning.get('path')}: names no `competition`; pass --comp")
    ens = ensemble_eval(tuning, data_dir, predictions)
    ids = ens["ids"]
    if tuning.get("format"):  # a train.csv competition: its sample submission's format
        from fathom.formats import write_tuned

        scorer = None
        frame = write_tuned(csv_path, tuning, data_dir, ens, overwrite=overwrite)
    elif ens["task"] == "singlelabel":
        scorer = None
        frame = make_label_submission(ids, ens["scores"], ens["class_names"])
        write_label_submission(csv_path, frame, ids, ens["class_names"], overwrite=overwrite)
    else:
        scorer = tuning["osd"]["scorer"] if osd_name is None else osd_name
        if scorer is None:
            raise FathomError(
                f"{tuning.get('path')}: `osd.scorer` is null (tuned as a single-label dataset?); "
                "name one with --osd"
            )
        if not osd_lib.is_scorer(scorer):
            raise FathomError(
                f"unknown osd scorer {scorer!r}; choose from {', '.join(osd_lib.SCORERS)}"
            )
        frame = make_submission(ids, ens["scores"], ens["category_ids"], eval_osd(ens, scorer))
        write_submission(csv_path, frame, ids, ens["category_ids"], overwrite=overwrite)
    run_of = {
        member_key(f): (run, where)
        for f, run, where in zip(
            run_folders(tuning), ens["all_runs"], ens["eval_files"], strict=True
        )
    }
    experiments = [
        {
            **e,
            "checkpoints": list(run_of[member_key(e)][0].checkpoints().values()),
            "predictions": str(
                Path(predictions) / run_of[member_key(e)][0].name if predictions else e["path"]
            ),
            # the files this submission read, hashed in the manifest beside the checkpoints
            "eval_file": str(run_of[member_key(e)][1]),
            **({"banks": knn_banks(*run_of[member_key(e)])} if e.get("kind") == "knn" else {}),
        }
        if member_run(e) is not None
        else e
        for e in tuning["experiments"]
    ]
    manifest = build_manifest(name, csv_path, data_dir, experiments, tuning, scorer, len(frame))
    write_manifest(json_path, manifest, overwrite=overwrite)
    return csv_path, manifest


def summary(csv_path, manifest: dict) -> str:
    """One line on what was written, for `fathom submit` to print."""
    cv = manifest["cv"]
    text = f"wrote {csv_path} ({manifest['n_rows']} rows) and its manifest; CV {cv['metric']} {cv['value']:.4f}"
    osd = manifest["osd"]
    if osd["scorer"]:
        est = osd["estimated_sauc"]
        text += f", osd {osd['scorer']} (estimated sAUC {'none' if est is None else f'{est:.4f}'})"
    return text
