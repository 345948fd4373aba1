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
    import json
    from pathlib import Path

    from fathom.errors import FathomError

    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: no such tuning file (`fathom tune` writes it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FathomError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
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
    if scorer == "disagreement":
        stack = (
            np.stack([e["probs"] for e in evals]) if len(evals) > 1 else evals[0].get("fold_probs")
        )
        if stack is None or len(stack) < 2:
            raise FathomError(
                "osd scorer `disagreement` needs two experiments or eval.npz `fold_probs`"
            )
    feats, refs = [], []
    if scorer in osd_lib.FEATURE_SCORERS:
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

    from fathom.competition import open_competition, read_categories, read_split
    from fathom.errors import FathomError
    from fathom.manifest import build_manifest, write_manifest
    from fathom.predictions import align_rows, check_categories, open_run
    from fathom.submission import make_submission, write_submission
    from fathom.tuning import combine, weighted_mean

    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    if not overwrite:  # check both before writing either: never half a submission
        for path in (csv_path, json_path):
            if path.exists():
                raise FathomError(
                    f"{path}: already exists (pass --overwrite, or choose another --name)"
                )
    comp_dir = comp or tuning["competition"]
    competition = open_competition(comp_dir)
    cats = read_categories(competition)
    ev = read_split(competition, "eval", require_images=False, categories=cats)
    ids = ev["id"].tolist()

    runs = [open_run(e["path"]) for e in tuning["experiments"]]
    evals, oofs = [], []
    for run in runs:
        folder = Path(predictions) / run.name if predictions else None
        arrays = run.eval(folder)
        where = str((folder or run.path) / "eval.npz")
        check_categories(arrays, cats["id"], where)
        evals.append(align_rows(arrays, ids, where))
        oofs.append(run.oof())
    method, weights = tuning["ensemble"]["method"], tuning["ensemble"]["weights"]
    probs = combine(method, [e["probs"] for e in evals], weights)
    logit_w = weights if method == "weighted" else [1.0] * len(runs)
    logits = weighted_mean([e["logits"] for e in evals], logit_w)
    scorer = osd_name or tuning["osd"]["scorer"]
    osd_col = eval_osd(tuning, runs, evals, oofs, scorer, probs, logits)

    frame = make_submission(ids, probs, cats["id"], osd_col)
    write_submission(csv_path, frame, ids, cats["id"], overwrite=overwrite)
    experiments = [
        {
            **e,
            "checkpoints": run.checkpoints(),
            "predictions": str((Path(predictions) / run.name) if predictions else run.path),
        }
        for e, run in zip(tuning["experiments"], runs, strict=True)
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
