"""`fathom inspect`: what fathom detects in a dataset folder, for a user to check before
training: its kind and task and, for a train.csv competition, the label format, columns,
classes, metric, submission format and image folders. Every listed image must exist."""

from __future__ import annotations

import numpy as np

from fathom.data import open_dataset
from fathom.data.csvtable import Layout


def inspect_dataset(path) -> list[str]:
    """The lines `fathom inspect` prints; a missing image or malformed file raises the
    readers' one-line error (file, line, column)."""
    ds = open_dataset(path)
    cats = ds.categories()
    train = ds.split("train", categories=cats)
    ev = ds.split("eval", categories=cats)
    if ds.kind == "csv":
        lines = describe(ds.layout())
    else:
        lines = [f"{ds.root}: a {ds.kind} dataset (task {ds.task})", f"categories: {len(cats)}"]
    return [*lines, f"found the images of {len(train)} training and {len(ev)} test rows"]


def describe(layout: Layout) -> list[str]:
    """What was detected in a train.csv competition."""
    ids, rows = layout.train_rows
    counts = np.bincount([c for r in rows for c in r], minlength=len(layout.classes))
    n_new = sum(1 for r in rows if not r)
    top = np.argsort(-counts, kind="stable")[:5]
    lines = [
        f"{layout.root}: a train.csv competition",
        f"format: {layout.format} (task {layout.task}: "
        f"{'softmax' if layout.task == 'singlelabel' else 'sigmoid'} head)",
        f"train.csv: id column `{layout.id_column}`, label column(s) "
        f"{', '.join(f'`{c}`' for c in layout.label_columns)}; {len(ids)} images",
        f"classes: {len(layout.classes)}; most frequent: "
        + ", ".join(f"{layout.classes[i]} ({counts[i]})" for i in top),
    ]
    if layout.new_label:
        lines.append(f"new label: {layout.new_label} ({n_new} training images hold it)")
    lines += [
        f"metric: {layout.metric} ({layout.metric_source})",
        f"submission: `{','.join(layout.submission_columns)}`"
        + (f", {layout.k} guesses per row" if layout.format == "ranked" else "")
        + f"; {len(layout.test_ids())} test images",
        f"images: train {layout.train_dir}, test {layout.test_dir}",
    ]
    return lines
