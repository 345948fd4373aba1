from __future__ import annotations

import argparse

HELP = "compare runs side by side: scores, epochs, training time and history plots"
DESCRIPTION = """Put finished runs side by side. For each RUN folder (runs/<exp>/), score its
out-of-fold predictions against the labels of the dataset its config names (or --data):
single-label runs get accuracy, top-3 accuracy and macro precision / recall / F1; multi-label
runs get MAP@20. Beside them: epochs trained and training time from history.csv.

Writes to OUT (default compare/): compare.csv (the table), history.png (every numeric
history.csv column, one panel each, the runs overlaid) and, per single-label run,
<run>/confusion.png, <run>/per_class.csv and <run>/most_confused.csv.

example:  fathom compare runs/scratch_cnn runs/effnet_stage1 runs/effnet_stage2"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (runs/<exp>/)")
    p.add_argument(
        "--data", help="dataset to score against (default: the `competition` in each run's config)"
    )
    p.add_argument(
        "--out", default="compare", help="folder for the table and plots (default compare)"
    )
    p.add_argument(
        "--top", type=int, default=3, help="most confused pairs printed per run (default 3)"
    )


def labels_for(data: str) -> tuple[dict, list[str] | None]:
    """Training labels of a dataset: id -> class index and the class names for a folder
    dataset (train + val images); id -> category tuple and None for a Kaggle-layout one."""
    import pandas as pd

    from fathom.competition import open_competition, read_split
    from fathom.folder import (
        is_folder_dataset,
        labels_of,
        open_folder,
        read_classes,
        read_folder_split,
    )

    if is_folder_dataset(data):
        ds = open_folder(data)
        classes = read_classes(ds)
        table = pd.concat([read_folder_split(ds, s, classes) for s in ("train", "val")])
        return dict(zip(table["id"], labels_of(table).tolist(), strict=True)), classes[
            "name"
        ].tolist()
    table = read_split(open_competition(data), "train", require_images=False)
    return dict(zip(table["id"], table["categories"], strict=True)), None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from fathom import classification_metrics as cm
    from fathom import fileio
    from fathom.compare import (
        multi_label_scores,
        plot_histories,
        read_run,
        single_label_oof,
        summary_row,
    )
    from fathom.errors import FathomError

    out = Path(args.out)
    runs = [read_run(r) for r in args.runs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise FathomError(
            f"two runs share the name {next(n for n in names if names.count(n) > 1)!r}"
        )
    cache: dict = {}
    rows = []
    for r in runs:
        data = args.data or r.config.get("competition")
        if data not in cache:  # labels (if oof.npz lacks targets) and class names
            cache[data] = labels_for(data) if data and Path(data).is_dir() else (None, None)
        labels, class_names = cache[data]
        if r.config.get("task", "multilabel") != "singlelabel":
            rows.append(summary_row(r, multi_label_scores(r, labels)))
            continue
        probs, y = single_label_oof(r, labels)
        rows.append(summary_row(r, cm.summary(probs, y)))
        names_here = class_names or [str(c) for c in r.category_ids]
        matrix = cm.confusion(probs, y)
        title = f"{r.name}: OOF confusion"
        cm.plot_confusion_matrix(matrix, names_here, out / r.name / "confusion.png", title=title)
        report = cm.per_class_report(probs, y, names_here).round(4)
        fileio.write_csv(out / r.name / "per_class.csv", report)
        pairs = cm.most_confused(matrix, names_here, top=20)
        fileio.write_csv(out / r.name / "most_confused.csv", pairs.round(4))
        r.notes.extend(
            f"confuses {t} -> {p} {c}x ({s:.0%} of {t})"
            for t, p, c, s in pairs.head(args.top).itertuples(index=False)
        )
    table = pd.DataFrame(rows)
    fileio.write_csv(out / "compare.csv", table)
    plot_histories(runs, out / "history.png")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"))
    for r in runs:
        for note in r.notes:
            print(f"{r.name}: {note}")
    print(
        f"wrote {out / 'compare.csv'}, {out / 'history.png'} and per-run confusion matrices under {out}/"
    )
    return 0
