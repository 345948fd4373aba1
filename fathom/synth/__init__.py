"""Synthetic datasets, so the whole kit runs with no download.

`fathomnet` writes a FathomNet-style multi-label competition in the Kaggle layout,
`imagefolder` a single-label folder dataset, `csvcomp` a train.csv competition in one of four
label formats, all drawn with `draw`. This module owns the
one entry that picks a kind, builds its config and says what was written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fathom.errors import FathomError

KINDS = ("fathomnet", "folder", "csv")


def write_synthetic(
    out: str | Path, kind: str = "fathomnet", *, progress: bool = True, **fields
) -> list[str]:
    """Write a synthetic dataset of `kind` under `out`; return the lines to tell the user.

    `fields` set the kind's config (`SynthConfig` or `FolderSynthConfig`), the rest keep their
    defaults. Fields that only the other kind has are ignored, so that a caller such as the
    command line can pass every option it offers whichever kind is asked for.
    """
    # imported here: `import fathom.synth.draw` alone should not load both generators
    from fathom.data.imagefolder import TRUTH_FILE as FOLDER_TRUTH_FILE
    from fathom.synth.csvcomp import CsvSynthConfig, generate_csv
    from fathom.synth.fathomnet import TRUTH_FILE, SynthConfig, generate
    from fathom.synth.imagefolder import FolderSynthConfig, class_counts, generate_folder

    if kind not in KINDS:
        raise FathomError(f"unknown synthetic kind {kind!r} (choose from {', '.join(KINDS)})")
    known = {
        f.name
        for c in (SynthConfig, FolderSynthConfig, CsvSynthConfig)
        for f in dataclasses.fields(c)
    }
    if unknown := sorted(set(fields) - known):
        raise TypeError(f"write_synthetic() got unknown fields {unknown}")
    fields = {k: v for k, v in fields.items() if v is not None}  # None: the kind's default
    if kind == "fathomnet":
        if fields.get("realistic"):  # a wide frame unless the caller sets one
            fields = {"width": 384, "height": 216, **fields}
        cfg = _config(SynthConfig, fields)
        out = generate(out, cfg, progress)
        return [
            f"wrote a synthetic competition to {out} ({cfg.n_train} train, {cfg.n_eval} eval "
            f"images, {cfg.width}x{cfg.height}{', realistic' if cfg.realistic else ''})",
            f"hidden eval truth: {out / TRUTH_FILE}",
        ]
    if kind == "csv":
        from fathom.data.csvtable import TRUTH_FILE as CSV_TRUTH_FILE

        cfg = _config(CsvSynthConfig, fields)
        out = generate_csv(out, cfg, progress)
        return [
            f"wrote a synthetic train.csv competition to {out}: format {cfg.format}, "
            f"{cfg.n_train} train / {cfg.n_eval} test images, {cfg.size}x{cfg.size}",
            f"hidden test truth: {out / CSV_TRUTH_FILE}",
        ]
    cfg = _config(FolderSynthConfig, fields)
    out = generate_folder(out, cfg, progress)
    n = {split: int(c.sum()) for split, c in class_counts(cfg).items()}
    return [
        f"wrote a synthetic folder dataset to {out}: {cfg.n_classes} classes, {n['train']} train / "
        f"{n['val']} val / {n['test']} test images, {cfg.imbalance:g}:1 imbalance",
        f"hidden test truth: {out / FOLDER_TRUTH_FILE}",
    ]


def _config(cls, fields: dict):
    own = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in fields.items() if k in own})
