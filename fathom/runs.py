"""Read what the training engine leaves in a run folder: OOF and eval predictions, CV, config.

The layout is the shared run-folder contract (README, "Run folders"): `runs/<exp>/oof.npz`
(`ids`, `fold`, `probs`, `logits`, `features`, `category_ids`), `runs/<exp>/eval.npz` (`ids`,
`probs`, `logits`, `fold_probs`, `fold_logits`, `fold_features`, `category_ids`), `cv.json`,
`config.json` and `fold<k>/best.pt`. Every problem is reported as a FathomError naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fathom import fileio
from fathom.errors import FathomError

OOF_KEYS = ("ids", "fold", "probs", "logits", "features", "category_ids")
EVAL_KEYS = ("ids", "probs", "logits", "category_ids")


def _load_npz(path: Path, keys: tuple[str, ...], hint: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FathomError(f"{path}: missing ({hint})")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # numpy raises several types for a damaged archive
        raise FathomError(f"{path}: cannot read as .npz ({exc})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise FathomError(f"{path}: lacks array(s) {', '.join(missing)}")
    n, c = len(arrays["ids"]), len(arrays["category_ids"])
    for k in ("probs", "logits"):
        if arrays[k].shape != (n, c):
            raise FathomError(f"{path}: `{k}` has shape {arrays[k].shape}, expected ({n}, {c})")
    arrays["ids"] = arrays["ids"].astype(str)
    return arrays


@dataclass(frozen=True)
class Run:
    """One experiment's folder and what it holds."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def config(self) -> dict:
        path = self.path / "config.json"
        return fileio.read_json(path) if path.is_file() else {}

    def cv(self) -> dict:
        path = self.path / "cv.json"
        if not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def oof(self) -> dict[str, np.ndarray]:
        return _load_npz(self.path / "oof.npz", OOF_KEYS, f"`fathom oof {self.path}` writes it")

    def eval(self, folder: Path | None = None) -> dict[str, np.ndarray]:
        path = (folder or self.path) / "eval.npz"
        return _load_npz(path, EVAL_KEYS, f"`fathom oof {self.path}` or `fathom predict` writes it")

    def checkpoints(self) -> list[Path]:
        # what `fathom predict` loads: every fold's best checkpoint, and a full fit's if any
        return sorted(self.path.glob("fold*/best.pt")) + sorted(self.path.glob("full/best.pt"))

    def fold_dirs(self) -> list[Path]:
        return sorted(p for p in self.path.glob("fold*") if p.is_dir())

    def holdout_categories(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.config().get("holdout_categories", ()) or ())


def open_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise FathomError(f"{path}: no such run folder (`fathom train` writes runs/<exp>/)")
    return Run(path)


def align_rows(
    arrays: dict[str, np.ndarray], ids, where: str, keys=("probs", "logits", "features", "fold")
) -> dict:
    """The arrays reordered to `ids`; every id must be there."""
    index = {uid: i for i, uid in enumerate(arrays["ids"])}
    missing = [uid for uid in ids if uid not in index]
    if missing:
        raise FathomError(f"{where}: has no row for image {missing[0]} ({len(missing)} missing)")
    order = np.array([index[uid] for uid in ids], dtype=int)
    out = dict(arrays)
    out["ids"] = np.asarray(ids, dtype=str)
    for k in keys:
        if k in arrays:
            out[k] = arrays[k][order]
    for k in ("fold_probs", "fold_logits", "fold_features"):
        if k in arrays:
            out[k] = arrays[k][:, order]
    return out


def check_categories(arrays: dict[str, np.ndarray], category_ids, where: str) -> None:
    got = [int(c) for c in arrays["category_ids"]]
    if got != [int(c) for c in category_ids]:
        raise FathomError(
            f"{where}: category columns differ from the competition's category_key.csv order"
        )
