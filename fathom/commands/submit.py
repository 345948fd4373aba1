from __future__ import annotations

import argparse

HELP = "write submissions/<name>.csv and its manifest from a tuning file and eval predictions"
DESCRIPTION = """Combine the experiments' eval predictions as TUNE (from `fathom tune`) says,
score every eval image's osd with the chosen scorer, validate the CSV the way the scorer
reads it, and write OUT_DIR/<name>.csv plus OUT_DIR/<name>.json (the experiments and
checkpoints used with their SHA-256, ensemble weights, thresholds, osd scorer, CV MAP@20,
estimated sAUC, time). Never replaces an existing submission unless --overwrite.

Eval predictions are read from runs/<exp>/eval.npz (`fathom oof` or `fathom predict` writes
them); with --predictions DIR, from DIR/<exp>/eval.npz (e.g. `fathom predict ... --out
DIR/<exp>` on the real test set inside a Kaggle kernel).

example:  fathom submit runs/tune-ab.json --name ab-v1"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tune", help="JSON written by `fathom tune`")
    p.add_argument(
        "--name", required=True, help="submission name: writes <out-dir>/<name>.csv and .json"
    )
    p.add_argument("--comp", help="competition folder (default: the one the tuning used)")
    p.add_argument("--predictions", help="folder holding <exp>/eval.npz (default: each run folder)")
    p.add_argument("--osd", help="override the tuned osd scorer")
    p.add_argument(
        "--out-dir", default="submissions", help="folder for the files (default submissions)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing submission of that name"
    )


def read_tuning(path) -> dict:
    from fathom import fileio
    from fathom.errors import FathomError

    data = fileio.read_json(path, "no such tuning file (`fathom tune` writes it)")
    if not isinstance(data, dict):
        raise FathomError(f"{path}: not a tuning file")
    missing = [k for k in ("experiments", "ensemble", "thresholds", "osd") if k not in data]
    if missing:
        raise FathomError(f"{path}: not a tuning file (lacks {', '.join(missing)})")
    data["path"] = str(path)
    return data


def eval_osd(tuning: dict, runs, evals: list, oofs: list, scorer: str, probs, logits):
    """The chosen scorer on the eval images; feature scorers pair each fold's eval features
    with that fold's OOF features (same model, same feature space)."""
    import numpy as np

    from fathom import osd as osd_lib
    from fathom.errors import FathomError

    stack = None
    parts = scorer.split("+")
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
        for run, e, o in zip(runs, evals, oofs, strict=True):
            if "fold_features" not in e:
                raise FathomError(
                    f"{run.path}: eval predictions lack `fold_features` for osd scorer {scorer}"
                )
            # `folds` (the engine writes it) names the fold of each fold_features row
            folds = e["folds"] if "folds" in e else np.unique(o["fold"])
            if len(folds) != len(e["fold_features"]):
                raise FathomError(
                    f"{run.path}: {len(e['fold_features'])} eval fold models but {len(folds)} OOF folds"
                )
            for k, f in enumerate(folds):
                feats.append(e["fold_features"][k])
                refs.append(o["features"][o["fold"] == f])
    return osd_lib.eval_scores(scorer, probs, logits, stack, feats, refs)


def ensemble_eval(tuning: dict, comp_dir, predictions=None) -> dict:
    """The experiments' eval predictions combined as the tuning says.

    Returns ids, category_ids, runs (the run-folder members with a positive weight, which
    the osd scorers use), their aligned eval and OOF arrays, all_runs, and the combined probs
    and logits.
    """
    from pathlib import Path

    from fathom.data.coco import open_competition, read_categories, read_split
    from fathom.ensemble import combine, prior_logits, weighted_mean
    from fathom.prior import prior_probabilities
    from fathom.runs import align_rows, check_categories, open_run

    competition = open_competition(comp_dir)
    cats = read_categories(competition)
    ev = read_split(competition, "eval", require_images=False, categories=cats)
    ids = ev["id"].tolist()

    members = tuning["experiments"]
    runs = [open_run(e["path"]) for e in members if e.get("kind", "run") == "run"]
    evals, oofs = [], []
    for run in runs:
        folder = Path(predictions) / run.name if predictions else None
        arrays = run.eval(folder)
        where = str((folder or run.path) / "eval.npz")
        check_categories(arrays, cats["id"], where)
        evals.append(align_rows(arrays, ids, where))
        oofs.append(run.oof())
    member_probs, member_logits = [e["probs"] for e in evals], [e["logits"] for e in evals]
    if any(e.get("kind") == "prior" for e in members):  # the frequency prior is always last
        train = read_split(competition, "train", require_images=False, categories=cats)
        freq = prior_probabilities(train, len(ids), cats["id"])
        member_probs.append(freq)
        member_logits.append(prior_logits(freq))
    method, weights = tuning["ensemble"]["method"], tuning["ensemble"]["weights"]
    probs = combine(method, member_probs, weights)
    logit_w = weights if method == "weighted" else [1.0] * len(member_logits)
    logits = weighted_mean(member_logits, logit_w)
    # a member with weight 0 does not shape the ensemble's predictions: its features and its
    # opinion should not shape the osd score either
    run_w = [w for w, e in zip(logit_w, members, strict=True) if e.get("kind", "run") == "run"]
    keep = [i for i, w in enumerate(run_w) if w > 0] or list(range(len(runs)))
    return {
        "ids": ids,
        "category_ids": cats["id"].tolist(),
        "runs": [runs[i] for i in keep],
        "evals": [evals[i] for i in keep],
        "oofs": [oofs[i] for i in keep],
        "all_runs": runs,
        "probs": probs,
        "logits": logits,
    }


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
    from pathlib import Path

    from fathom.errors import FathomError
    from fathom.manifest import build_manifest, write_manifest
    from fathom.submission import make_submission, write_submission

    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    if not overwrite:  # check both before writing either: never half a submission
        for path in (csv_path, json_path):
            if path.exists():
                raise FathomError(
                    f"{path}: already exists (pass --overwrite, or choose another --name)"
                )
    comp_dir = comp or tuning["competition"]
    ens = ensemble_eval(tuning, comp_dir, predictions)
    cats, ids = ens["category_ids"], ens["ids"]
    scorer = osd_name or tuning["osd"]["scorer"]
    osd_col = eval_osd(
        tuning, ens["runs"], ens["evals"], ens["oofs"], scorer, ens["probs"], ens["logits"]
    )

    frame = make_submission(ids, ens["probs"], cats, osd_col)
    write_submission(csv_path, frame, ids, cats, overwrite=overwrite)
    run_of = {run.name: run for run in ens["all_runs"]}
    experiments = [
        {
            **e,
            "checkpoints": run_of[e["name"]].checkpoints(),
            "predictions": str(Path(predictions) / e["name"] if predictions else e["path"]),
        }
        if e.get("kind", "run") == "run"
        else e
        for e in tuning["experiments"]
    ]
    manifest = build_manifest(name, csv_path, comp_dir, experiments, tuning, scorer, len(frame))
    write_manifest(json_path, manifest, overwrite=overwrite)
    return csv_path, manifest


def run(args: argparse.Namespace) -> int:
    tuning = read_tuning(args.tune)
    csv_path, manifest = make(
        tuning, args.name, args.comp, args.predictions, args.osd, args.out_dir, args.overwrite
    )
    sauc = manifest["osd"]["estimated_sauc"]
    print(
        f"wrote {csv_path} ({manifest['n_rows']} rows) and its manifest; CV MAP@20 "
        f"{manifest['cv']['map20']:.4f}, osd {manifest['osd']['scorer']} "
        f"(estimated sAUC {'unknown' if sauc is None else f'{sauc:.4f}'})"
    )
    return 0
