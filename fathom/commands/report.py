from __future__ import annotations

import argparse

HELP = "an HTML page of plots about one or more runs (and their tuning)"
DESCRIPTION = """Write OUT/index.html with PNG plots: category frequency, training curves per fold,
per-category OOF average precision against frequency, a model comparison (with the ensembles
from --tune), osd score histograms for in- and out-of-sample images (from the held-out-category
runs named in --tune), and the top confusions between supercategories. Open it in a browser.

example:  fathom report runs/resnet18 runs/effb0 --tune runs/tune-ab.json --out runs/report"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", help="run folders (each with oof.npz, cv.json, fold<k>/history.csv)"
    )
    p.add_argument(
        "--tune", help="tuning file from `fathom tune`: adds ensembles and osd histograms"
    )
    p.add_argument(
        "--comp", help="competition folder (default: from --tune or the first run's config)"
    )
    p.add_argument(
        "--out",
        default="runs/report",
        help="folder for index.html and the PNGs (default runs/report)",
    )


def build_report(run_paths, out_dir, tune_path=None, comp=None, progress=True):
    """Write the page and its plots; return the path of index.html."""
    import html
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from fathom import osd as osd_lib
    from fathom import plots as report
    from fathom.commands.submit import read_tuning
    from fathom.commands.tune import _competition_of
    from fathom.data.coco import label_matrix, open_competition, read_categories, read_split
    from fathom.ensemble import combine
    from fathom.metrics import map_at_k_matrix
    from fathom.runs import align_rows, check_categories, open_run

    out_dir = Path(out_dir)
    runs = [open_run(p) for p in run_paths]
    tuning = read_tuning(tune_path) if tune_path else None
    comp_dir = comp or (tuning or {}).get("competition") or _competition_of(runs, None)
    competition = open_competition(comp_dir)
    cats = read_categories(competition)
    train = read_split(competition, "train", require_images=False, categories=cats)
    labels = dict(zip(train["id"], train["categories"], strict=True))
    counts = label_matrix(train["categories"], cats["id"]).sum(axis=0)
    names = list(dict.fromkeys(cats["supercat"]))
    supercat_of = cats["supercat_id"].to_numpy()
    sections = []
    steps = tqdm(total=5 + len(runs), desc="report", unit="plot", disable=not progress)

    png = report.plot_category_frequency(counts, out_dir / "category_frequency.png")
    n_img = len(train)
    sections.append(
        (
            "Category frequency",
            f'<p class="note">{n_img} training images; {int((counts > 0).sum())} of {len(counts)} categories occur; '
            f"the most frequent is in {int(counts.max())} images ({counts.max() / n_img:.0%}).</p>"
            f'<img src="{png}">',
        )
    )
    steps.update()

    oofs, ids = [], None
    curves = []
    for run in runs:
        arrays = run.oof()
        check_categories(arrays, cats["id"], str(run.path / "oof.npz"))
        ids = arrays["ids"] if ids is None else ids
        oofs.append(align_rows(arrays, ids, str(run.path / "oof.npz")))
        histories = {}
        for d in run.fold_dirs():
            if (d / "history.csv").is_file():
                histories[d.name] = pd.read_csv(d / "history.csv")
        cv = run.cv()
        cv_table = ""
        if cv.get("per_fold"):
            cv_table = report._table(
                pd.DataFrame(
                    [{"fold": k, "MAP@20": v} for k, v in cv["per_fold"].items()]
                    + [{"fold": "all (OOF)", "MAP@20": cv["map20"]}]
                )
            )
        if histories:
            png = report.plot_training_curves(
                histories, run.name, out_dir / f"curves_{run.name}.png"
            )
            curves.append(f'<h3>{html.escape(run.name)}</h3>{cv_table}<img src="{png}">')
        else:
            curves.append(
                f"<h3>{html.escape(run.name)}</h3>{cv_table}<p class=note>no fold&lt;k&gt;/history.csv</p>"
            )
        steps.update()
    sections.append(("Training curves per fold", "\n".join(curves)))

    targets = label_matrix([labels[uid] for uid in ids], cats["id"])
    probs = [o["probs"] for o in oofs]
    aps = {run.name: report.per_category_ap(p, targets) for run, p in zip(runs, probs, strict=True)}
    png = report.plot_per_category_ap(aps, counts, out_dir / "per_category_ap.png")
    sections.append(
        (
            "Per-category AP",
            '<p class="note">OOF average precision of each category that has OOF positives, '
            f'against how often it occurs in training.</p><img src="{png}">',
        )
    )
    steps.update()

    rows = [
        {"name": run.name, "kind": "model", "MAP@20": map_at_k_matrix(p, targets)}
        for run, p in zip(runs, probs, strict=True)
    ]
    ens_probs = combine("mean", probs, [1.0] * len(probs))
    if tuning:
        m = tuning["ensemble"]["map20"]
        rows += [
            {"name": "ensemble: mean", "kind": "ensemble", "MAP@20": m["mean"]},
            {"name": "ensemble: rank average", "kind": "ensemble", "MAP@20": m["rank"]},
            {"name": "ensemble: fitted weights", "kind": "ensemble", "MAP@20": m["weighted"]},
        ]
        tuned_names = [e["name"] for e in tuning["experiments"]]
        if tuned_names == [r.name for r in runs]:
            ens_probs = combine(tuning["ensemble"]["method"], probs, tuning["ensemble"]["weights"])
    elif len(runs) > 1:
        rows.append(
            {
                "name": "ensemble: mean",
                "kind": "ensemble",
                "MAP@20": map_at_k_matrix(ens_probs, targets),
            }
        )
    comparison = pd.DataFrame(rows)
    png = report.plot_model_comparison(comparison, out_dir / "model_comparison.png")
    extra = ""
    if tuning:
        f1 = tuning["thresholds"]["f1"]
        extra = report._table(
            pd.DataFrame(
                [
                    {"label sets": "top-1 only", "sample F1 (held-out)": f1["top1"]},
                    {
                        "label sets": f"global threshold {tuning['thresholds']['global']:.3f}",
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
            f'<img src="{png}">{report._table(comparison.drop(columns="kind"))}{extra}',
        )
    )
    steps.update()

    osd_html = (
        '<p class="note">Pass --tune with a tuning file that used --holdout runs to see these.</p>'
    )
    if tuning and tuning["osd"].get("holdout_runs"):
        held = [open_run(p) for p in tuning["osd"]["holdout_runs"]]
        h_arrays = [r.oof() for r in held]
        h_ids = h_arrays[0]["ids"]
        h_arrays = [align_rows(a, h_ids, str(r.path)) for a, r in zip(h_arrays, held, strict=True)]
        held_cats = set(tuning["osd"]["holdout_categories"])
        unseen = np.array([bool(set(labels[uid]) & held_cats) for uid in h_ids])
        models = [
            osd_lib.ModelRows(a["probs"], a["logits"], a["features"], a["fold"]) for a in h_arrays
        ]
        scores = osd_lib.simulate_scores(models, unseen)
        png = report.plot_osd_histograms(
            scores, unseen, tuning["osd"]["simulated_sauc"], out_dir / "osd_histograms.png"
        )
        osd_html = (
            f'<p class="note">{int(unseen.sum())} of {len(unseen)} OOF images of the held-out run(s) hold one of '
            f"{len(held_cats)} categories their models never trained on. Chosen scorer: "
            f'<b>{html.escape(tuning["osd"]["scorer"])}</b>.</p><img src="{png}">'
        )
    sections.append(("osd scores: in- and out-of-sample", osd_html))
    steps.update()

    conf = report.supercategory_confusions(ens_probs, targets, supercat_of, names)
    png = report.plot_confusions(conf, names, out_dir / "supercategory_confusions.png")
    between = conf[conf["true"] != conf["predicted"]]
    top = between.head(10)
    within = int(conf["images"].sum() - between["images"].sum())
    sections.append(
        (
            "Top confusions between supercategories",
            '<p class="note">Images whose top-1 OOF guess (of the ensemble) is wrong, by the true and '
            f"guessed supercategory: the table lists the top pairs between two supercategories; "
            f"{within} of {int(conf['images'].sum())} mistakes stay within the true supercategory "
            f'(the diagonal of the map).</p>{report._table(top)}<img src="{png}">',
        )
    )
    steps.update()
    steps.close()
    title = "fathom report: " + ", ".join(r.name for r in runs)
    return report.write_html(out_dir, title, sections)


def run(args: argparse.Namespace) -> int:
    path = build_report(args.runs, args.out, args.tune, args.comp)
    print(f"wrote {path} (open it in a browser)")
    return 0
