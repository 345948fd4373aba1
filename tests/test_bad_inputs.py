"""Bad inputs and faults, tried as a new user would (issue 11): each one ends in exit status 2,
exactly one line on stderr that names the file or value, no traceback, and nothing that
existed before overwritten.

A case is a function `(ws) -> Case` registered under its class of the issue; `ws` is a
fresh workspace (the current folder) holding a copy of the small synthetic competition.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fathom.config import TrainConfig

CASES: list[tuple[str, object]] = []


@dataclass
class Case:
    argv: list[str]
    needle: str  # must appear in the one line (the file or value named)
    keep: list[Path] = field(default_factory=list)  # existed before: must be byte-identical
    absent: list[Path] = field(default_factory=list)  # must not be created


@dataclass
class Workspace:
    root: Path
    comp: Path
    folds: Path
    monkeypatch: pytest.MonkeyPatch

    def train(self, *extra: str) -> list[str]:
        """`fathom train default` on the small competition, everything under the workspace."""
        return [
            "train",
            "default",
            f"competition={self.comp}",
            f"folds={self.folds}",
            "n_folds=3",
            "epochs=1",
            "num_workers=0",
            "cache_dir=cache",
            "--no-progress",
            *extra,
        ]

    def eval_ids(self) -> list[str]:
        from fathom.data import open_dataset

        return open_dataset(self.comp).split("eval", require_images=False)["id"].tolist()

    def edit_json(self, rel: str, change) -> Path:
        path = self.comp / rel
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        return path

    def fake_run(self, files: dict[str, bytes], config: bool = False) -> Path:
        run = self.root / "runs" / "x"
        for rel, data in files.items():
            (run / rel).parent.mkdir(parents=True, exist_ok=True)
            (run / rel).write_bytes(data)
        if config:
            # one fold: a run with fewer checkpoints than folds would add a warning line
            cfg = TrainConfig(competition=str(self.comp), n_folds=1).to_dict()
            (run / "config.json").write_text(json.dumps(cfg))
        return run


def case(cls: int):
    def register(fn):
        CASES.append((f"class{cls}-{fn.__name__}", fn))
        return fn

    return register


def _torch_bytes(obj) -> bytes:
    path = Path(tempfile.mkdtemp()) / "x.pt"
    torch.save(obj, path)
    return path.read_bytes()


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


# --- class 1: values and files the readers did not check --------------------------------


@case(1)
def eval_image_id_not_a_number(ws):
    path = ws.edit_json("object_detection/eval.json", lambda d: d["images"][0].update(id="abc"))
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, images[0]: `id` 'abc'")


@case(1)
def train_image_width_not_a_number(ws):
    path = ws.edit_json(
        "object_detection/train.json", lambda d: d["images"][3].update(width="wide")
    )
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, images[3]: `width` 'wide'")


@case(1)
def eval_image_height_fractional(ws):
    path = ws.edit_json("object_detection/eval.json", lambda d: d["images"][1].update(height=4.5))
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, images[1]: `height` 4.5")


@case(1)
def eval_image_id_a_list(ws):
    path = ws.edit_json("object_detection/eval.json", lambda d: d["images"][2].update(id=[1]))
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, images[2]")


@case(1)
def eval_json_not_json(ws):
    path = ws.comp / "object_detection" / "eval.json"
    path.write_text("{not json")
    return Case(["cache", ws.comp, "--size", "16"], f"{path}: not valid JSON")


def _edit_cell(path: Path, row: int, column: str, value: str) -> Path:
    """One cell of a CSV changed in place (row 0 is the file's line 2), every other cell
    written back as it was read."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


def _folds_with(ws, value: str, line: int = 2) -> Path:
    frame = pd.read_csv(ws.folds, dtype=str, keep_default_na=False)
    frame.loc[line - 2, "fold"] = value
    path = ws.root / "bad_folds.csv"
    frame.to_csv(path, index=False)
    return path


@case(1)
def folds_non_integer(ws):
    path = _folds_with(ws, "x", 4)
    return Case(ws.train(f"folds={path}", "--fold", "0"), f"{path}, line 4: fold 'x'")


@case(1)
def folds_empty(ws):
    path = _folds_with(ws, "", 3)
    return Case(ws.train(f"folds={path}", "--fold", "0"), f"{path}, line 3: fold ''")


@case(1)
def folds_garbage_file(ws):
    path = ws.root / "bad_folds.csv"
    path.write_bytes(b"\x00\xff\xfe garbage\n\x00")
    return Case(ws.train(f"folds={path}", "--fold", "0"), str(path))


@case(1)
def folds_wrong_header(ws):
    path = ws.root / "bad_folds.csv"
    path.write_text("image,fold\na,0\n")
    return Case(ws.train(f"folds={path}", "--fold", "0"), f"{path}: header must be `id,fold`")


@case(1)
def best_pt_truncated(ws):
    data = _torch_bytes({"model": {"w": torch.zeros(10)}})
    run = ws.fake_run({"fold0/best.pt": data[: len(data) // 2]}, config=True)
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", ws.root / "p.npz", "--device", "cpu"],
        f"{run / 'fold0' / 'best.pt'}: cannot read as a checkpoint",
        absent=[ws.root / "p.npz" / "eval.npz"],
    )


@case(1)
def best_pt_random_bytes(ws):
    run = ws.fake_run({"fold0/best.pt": os.urandom(2000)})
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", ws.root / "p.npz", "--device", "cpu"],
        f"{run / 'fold0' / 'best.pt'}: cannot read as a checkpoint",
    )


@case(1)
def best_pt_malicious_pickle(ws):
    import pickle

    run = ws.fake_run({"fold0/best.pt": pickle.dumps(os.system)}, config=True)
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", ws.root / "p.npz", "--device", "cpu"],
        "never loads",  # and no advice to use the unsafe weights_only=False
    )


@case(1)
def best_pt_not_a_checkpoint(ws):
    run = ws.fake_run({"fold0/best.pt": _torch_bytes([1, 2, 3])}, config=True)
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", ws.root / "p.npz", "--device", "cpu"],
        f"{run / 'fold0' / 'best.pt'}: not a fathom checkpoint",
    )


@case(1)
def last_pt_truncated_is_kept(ws):
    last = ws.root / "runs" / "default" / "fold0" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(_torch_bytes({"x": torch.zeros(3)})[:100])
    return Case(
        ws.train("--fold", "0", "--runs", "runs"),
        "runs/default/fold0/last.pt: cannot read as a checkpoint",
        [last],
    )


@case(1)
def last_pt_foreign_dict(ws):
    last = ws.root / "runs" / "default" / "fold0" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(_torch_bytes({"weights": torch.zeros(3)}))
    return Case(
        ws.train("--fold", "0"), "runs/default/fold0/last.pt: not a fathom checkpoint", [last]
    )


@case(1)
def oof_npz_truncated(ws):
    buf = ws.root / "ok.npz"
    np.savez(buf, ids=np.array(["a"]), probs=np.zeros((1, 2)))
    run = ws.fake_run({"fold0/oof.npz": buf.read_bytes()[:40], "fold0/eval.npz": b"junk"}, True)
    (run / "fold0" / "best.pt").write_bytes(b"")
    return Case(["oof", run], "oof.npz: cannot read as .npz")


@case(1)
def weights_file_random(ws):
    weights = ws.root / "w.pth"
    weights.write_bytes(os.urandom(3000))
    return Case(
        ws.train("--fold", "0", "model=resnet18", f"pretrained={weights}"),
        f"{weights}: cannot load as resnet18 weights",
    )


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (its data is one tiny row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _first_image(ws, split="train") -> Path:
    from fathom.data import open_dataset

    return Path(open_dataset(ws.comp).split(split, require_images=False)["path"].iloc[0])


@case(1)
def png_header_claims_20000_square(ws):
    image = _first_image(ws)
    _png_claiming(image, 20000, 20000)
    return Case(["cache", ws.comp, "--size", "16", "--workers", "1"], f"{image}: image too large")


@case(1)
def image_random_bytes(ws):
    image = _first_image(ws, "eval")
    image.write_bytes(os.urandom(500))
    return Case(["cache", ws.comp, "--size", "16", "--workers", "1"], f"{image}: cannot read")


@case(1)
def category_key_id_not_integer(ws):
    path = _edit_cell(ws.comp / "category_key.csv", 1, "id", "two")
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, line 3: category id 'two'")


@case(1)
def train_csv_category_not_a_number(ws):
    path = _edit_cell(
        ws.comp / "multilabel_classification" / "train.csv", 0, "categories", "[1.0, x]"
    )
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, line 2")


@case(1)
def config_json_not_an_object(ws):
    path = ws.root / "runs" / "default" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2]")
    return Case(ws.train("--fold", "0"), "runs/default/config.json: not a config", [path])


# --- class 2: config values torch would reject later ------------------------------------

BAD_VALUES = [
    ("lr", "nan"),
    ("lr", "-0.01"),
    ("lr", "0"),
    ("stage1_lr", "inf"),
    ("drop_rate", "1.5"),
    ("drop_path_rate", "-0.1"),
    ("hflip", "5"),
    ("vflip", "-1"),
    ("device", "tpu"),
    ("momentum", "2"),
    ("ema_decay", "1"),
    ("label_smoothing", "1"),
    ("seed", "-1"),
    ("num_workers", "-1"),
    ("weight_decay", "inf"),
    ("rotate", "400"),
    ("shift", "2"),
    ("asl_clip", "1"),
    ("grad_clip", "-1"),
    ("warmup_epochs", "-1"),
    ("brightness", "-1,1"),
    ("zoom", "0.8,nan"),
]

for _key, _value in BAD_VALUES:

    def _bad_value(ws, key=_key, value=_value):
        return Case(
            ws.train("--fold", "0", f"{key}={value}"),
            key,
            absent=[ws.root / "runs" / "default" / "config.json"],
        )

    CASES.append((f"class2-{_key}={_value}", _bad_value))


# --- class 3: a failed start freezes nothing ----------------------------------------------


@case(3)
def mistyped_model_freezes_no_config(ws):
    return Case(
        ws.train("--fold", "0", "model=resnet5O"),
        "'resnet5O' is not a timm model name",
        absent=[ws.root / "runs" / "default" / "config.json"],
    )


@case(3)
def mistyped_pretrained_model_freezes_no_config(ws):
    return Case(
        ws.train("--fold", "0", "model=efficientnet_bO"),
        "efficientnet_bO",
        absent=[ws.root / "runs" / "default" / "config.json"],
    )


# --- class 4: disk and permission faults ------------------------------------------------


@case(4)
def folds_out_dir_permission_denied(ws):
    def refuse(*_a, **_k):
        raise PermissionError(errno.EACCES, "Permission denied", str(ws.root / "locked"))

    ws.monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return Case(
        ["folds", ws.comp, "--out-dir", ws.root / "locked", "--n-splits", "3"],
        "locked: permission denied",
    )


@case(4)
def folds_disk_full(ws):
    ws.monkeypatch.setattr(pd.DataFrame, "to_csv", _enospc)
    out = ws.root / "folds_out" / "mlskf3.csv"
    return Case(
        ["folds", ws.comp, "--out-dir", out.parent, "--n-splits", "3"],
        "no space left on the disk",
        absent=[out],
    )


@case(4)
def folds_read_only_file_system(ws):
    def refuse(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system")

    ws.monkeypatch.setattr(os, "replace", refuse)
    return Case(["folds", ws.comp, "--out-dir", ws.root / "ro", "--n-splits", "3"], "read-only")


@case(4)
def cache_dir_is_a_file(ws):
    target = ws.root / "cachefile"
    target.write_text("not a folder")
    return Case(
        ["cache", ws.comp, "--size", "16", "--cache-dir", target],
        f"{target}: the cache folder is a file",
        [target],
    )


@case(4)
def cache_disk_too_small(ws):
    ws.monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 10))
    return Case(["cache", ws.comp, "--size", "16", "--workers", "1"], "disk has 0.00 GB free")


@case(4)
def train_runs_folder_not_writable(ws):
    runs = ws.root / "runs_ro"
    real = tempfile.mkstemp

    def refuse(*a, dir=None, **k):
        if dir is not None and Path(dir) == runs:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **k)

    ws.monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return Case(ws.train("--fold", "0", "--runs", runs), f"{runs}: permission denied")


@case(4)
def predict_out_folder_not_writable(ws):
    run = ws.fake_run({"fold0/best.pt": b"never read"})
    out = ws.root / "preds" / "eval.npz"

    def refuse(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    ws.monkeypatch.setattr(tempfile, "mkstemp", refuse)
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", out.parent], f"{out.parent}: no space left"
    )


# --- class 5: silent accepts that change results ----------------------------------------


@case(5)
def fold_value_half(ws):
    path = _folds_with(ws, "0.5", 5)
    return Case(ws.train(f"folds={path}", "--fold", "0"), f"{path}, line 5: fold '0.5'")


@case(5)
def folds_id_not_in_competition(ws):
    frame = pd.read_csv(ws.folds, dtype=str)
    frame.loc[len(frame)] = ["not-an-image", "0"]
    path = ws.root / "bad_folds.csv"
    frame.to_csv(path, index=False)
    return Case(ws.train(f"folds={path}", "--fold", "0"), "not-an-image")


@case(5)
def holdout_category_unknown(ws):
    return Case(
        ws.train("--fold", "0", "holdout_categories=9999"),
        "holdout_categories 9999 is not a category",
        absent=[ws.root / "runs" / "default" / "config.json"],
    )


@case(5)
def empty_supercategory(ws):
    path = _edit_cell(ws.comp / "category_key.csv", 4, "supercat", "")
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, line 6: category")


@case(5)
def image_with_empty_category_list(ws):
    path = _edit_cell(ws.comp / "multilabel_classification" / "train.csv", 2, "categories", "[]")
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, line 4")


def _truth(ws) -> pd.DataFrame:
    from fathom.synth.fathomnet import TRUTH_FILE

    return pd.read_csv(ws.comp / TRUTH_FILE, dtype=str, keep_default_na=False)


def _prior_submission(ws) -> Path:
    from fathom.prior import write_prior

    return write_prior(ws.comp, ws.root / "sub.csv")


@case(5)
def score_truth_shares_no_id(ws):
    sub = _prior_submission(ws)
    truth = _truth(ws).assign(id=lambda f: "other-" + f["id"])
    path = ws.root / "truth.csv"
    truth.to_csv(path, index=False)
    return Case(["score", sub, "--truth", path], f"{sub}: shares no id with the truth")


@case(5)
def score_truth_duplicate_id(ws):
    sub = _prior_submission(ws)
    truth = _truth(ws)
    truth = pd.concat([truth, truth.iloc[[0]]], ignore_index=True)
    path = ws.root / "truth.csv"
    truth.to_csv(path, index=False)
    return Case(["score", sub, "--truth", path], f"{path}, line {len(truth) + 1}: id")


@case(5)
def score_truth_osd_not_binary(ws):
    sub = _prior_submission(ws)
    truth = _truth(ws)
    truth.loc[3, "osd"] = "0.5"
    path = ws.root / "truth.csv"
    truth.to_csv(path, index=False)
    return Case(["score", sub, "--truth", path], f"{path}, line 5: osd '0.5' is not 0 or 1")


@case(5)
def two_processes_train_the_same_fold(ws):
    lock = ws.root / "runs" / "default" / ".fold0.lock"
    lock.parent.mkdir(parents=True)
    holder = open(lock, "a")  # noqa: SIM115 - the other process: released when the test ends
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ws.monkeypatch.setattr(Workspace, "_holder", holder, raising=False)
    return Case(
        ws.train("--fold", "0"),
        "another process is training this fold",
        absent=[ws.root / "runs" / "default" / "config.json"],
    )


# --- class 6: one path rule everywhere ------------------------------------------------------


@case(6)
def coco_name_escapes_in_cache(ws):
    path = ws.edit_json(
        "object_detection/eval.json", lambda d: d["images"][0].update(file_name="../train/x.png")
    )
    return Case(["cache", ws.comp, "--size", "16"], f"{path}, images[0]: file name '../train")


@case(6)
def coco_absolute_name_in_train(ws):
    path = ws.edit_json(
        "object_detection/train.json", lambda d: d["images"][5].update(file_name="/etc/x.png")
    )
    return Case(ws.train("--fold", "0"), f"{path}, images[5]: file name '/etc/x.png' escapes")


@case(6)
def coco_backslash_name_in_predict(ws):
    path = ws.edit_json(
        "object_detection/eval.json", lambda d: d["images"][2].update(file_name="..\\x.png")
    )
    run = ws.fake_run({"fold0/best.pt": _torch_bytes({"x": 1})}, config=True)
    return Case(
        ["predict", run, "--comp", ws.comp, "--out", ws.root / "p.npz"],
        f"{path}, images[2]: file name '..\\\\x.png' is not a plain relative path",
    )


@case(6)
def run_name_escapes_runs(ws):
    return Case(
        ws.train("--fold", "0", "--name", "../../x"),
        "run name '../../x'",
        absent=[ws.root.parent.parent / "x"],
    )


@case(6)
def toml_name_escapes_runs(ws):
    toml = ws.root / "shipped.toml"
    toml.write_text('name = "../../evil"\n')
    argv = ws.train("--fold", "0")
    argv[1] = str(toml)
    return Case(argv, "run name '../../evil'", absent=[ws.root.parent.parent / "evil"])


@case(6)
def run_name_absolute(ws):
    return Case(ws.train("--fold", "0", "--name", "/tmp/x"), "run name '/tmp/x'")


@case(6)
def folds_name_escapes_out_dir(ws):
    return Case(
        ["folds", ws.comp, "--n-splits", "3", "--name", "../../f"],
        "--name '../../f'",
        absent=[ws.root.parent / "f.csv"],
    )


@case(6)
def kernel_owner_with_a_path(ws):
    return Case(
        ["kernel", "build", "fathom-predict", "--owner", "me/../../x", "--run", "r1"],
        "kernel owner 'me/../../x'",
        absent=[ws.root / "kernels"],
    )


# --- class 8: what the official scorer does differently -----------------------------------


def _submission(ws, categories) -> Path:
    ids = ws.eval_ids()
    path = ws.root / "sub.csv"
    pd.DataFrame(
        {"id": ids, "categories": [categories(i) for i in range(len(ids))], "osd": 0.5}
    ).to_csv(path, index=False)
    return path


@case(8)
def one_category_per_row_read_as_numbers(ws):
    sub = _submission(ws, lambda i: "1")
    return Case(
        ["kaggle", "submit", sub, "--comp", ws.comp, "--dry-run", "-m", "x"],
        f"{sub}: not submitted, 1 problem(s); first: every row lists exactly one category",
    )


@case(8)
def one_category_per_row_varied(ws):
    sub = _submission(ws, lambda i: str(1 + i % 5))
    return Case(
        ["kaggle", "submit", sub, "--comp", ws.comp, "--dry-run", "-m", "x"],
        "official metric",
    )


@case(8)
def osd_text_in_one_row(ws):
    sub = _edit_cell(_submission(ws, lambda i: "1 2"), 0, "osd", "high")
    return Case(
        ["kaggle", "submit", sub, "--comp", ws.comp, "--dry-run", "-m", "x"],
        "osd 'high' is not a number",
    )


# --- class 9: Kaggle's rules checked before Kaggle does -------------------------------------


def _no_credentials(ws):
    ws.monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    ws.monkeypatch.delenv("KAGGLE_KEY", raising=False)
    ws.monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    ws.monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(ws.root / "no-kaggle"))


@case(9)
def dataset_slug_too_short(ws):
    return Case(
        ["kaggle", "upload-weights", "--dataset", "me/abcde", "--dry-run"],
        "slug 'abcde': want 6-50",
        absent=[ws.root / "kernels"],
    )


@case(9)
def dataset_slug_double_dash(ws):
    return Case(
        ["kaggle", "upload-weights", "--dataset", "me/my--weights", "--dry-run"],
        "slug 'my--weights'",
    )


@case(9)
def kernel_slug_double_dash(ws):
    return Case(
        ["kernel", "build", "fathom--predict", "--owner", "me", "--run", "r1"],
        "kernel name 'fathom--predict'",
        absent=[ws.root / "kernels"],
    )


@case(9)
def kernel_slug_trailing_dash(ws):
    return Case(
        ["kernel", "build", "fathom-predict-", "--owner", "me", "--run", "r1"],
        "kernel name 'fathom-predict-'",
    )


@case(9)
def machine_shape_unknown(ws):
    return Case(
        [
            "kernel",
            "build",
            "fathom-predict",
            "--owner",
            "me",
            "--run",
            "r1",
            "--machine-shape",
            "Tpu9000",
        ],
        "--machine-shape 'Tpu9000'",
        absent=[ws.root / "kernels"],
    )


@case(9)
def images_dataset_not_a_ref(ws):
    return Case(
        [
            "kernel",
            "build",
            "fathom-predict",
            "--owner",
            "me",
            "--run",
            "r1",
            "--images-dataset",
            "imgs",
        ],
        "images dataset 'imgs': want OWNER/SLUG",
    )


@case(9)
def upload_weights_without_credentials_stages_nothing(ws):
    _no_credentials(ws)
    run = ws.fake_run({"fold0/best.pt": b"x"})
    return Case(
        ["kaggle", "upload-weights", run, "--dataset", "me/fathom-weights"],
        "kaggle",
        absent=[ws.root / "kernels"],
    )


# --- class 10: messages that lead somewhere -------------------------------------------------


@case(10)
def score_label_submission_against_multilabel_truth(ws):
    sub = ws.root / "labels.csv"
    sub.write_text("id,label\na,cat\n")
    from fathom.synth.fathomnet import TRUTH_FILE

    return Case(
        ["score", sub, "--truth", ws.comp / TRUTH_FILE],
        f"{sub}: a single-label submission (`id,label`) but the truth",
    )


@case(10)
def score_truth_of_no_known_kind(ws):
    sub = _prior_submission(ws)
    truth = ws.root / "truth.csv"
    truth.write_text("image,answer\na,b\n")
    return Case(["score", sub, "--truth", truth], f"{truth}: header `image,answer` is not a truth")


@case(10)
def score_multilabel_submission_lacking_osd(ws):
    sub = ws.root / "s.csv"
    sub.write_text("id,categories\na,1\n")
    from fathom.synth.fathomnet import TRUTH_FILE

    return Case(["score", sub, "--truth", ws.comp / TRUTH_FILE], f"{sub}: lacks column(s) osd")


# --- the runner ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_folds(small_comp, tmp_path_factory):
    from fathom.data.folds import write_folds

    out = tmp_path_factory.mktemp("folds")
    path, _, _ = write_folds(small_comp, 3, 0, out_dir=out)
    return path


@pytest.fixture
def workspace(small_comp, small_folds, tmp_path, monkeypatch):
    comp = tmp_path / "comp"
    shutil.copytree(small_comp, comp)
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    monkeypatch.chdir(ws_root)
    monkeypatch.setenv("FATHOM_DEBUG", "")
    return Workspace(ws_root, comp, small_folds, monkeypatch)


def _snapshot(paths):
    return {p: p.read_bytes() for p in paths}


@pytest.mark.parametrize("make", [fn for _, fn in CASES], ids=[name for name, _ in CASES])
def test_bad_input_is_one_located_line(make, workspace, run_cli):
    spec = make(workspace)
    before = _snapshot(spec.keep)
    code, _out, err = run_cli(*spec.argv)
    # progress bars share stderr: every other line counts
    lines = [line for line in err.strip().splitlines() if line.strip() and "%|" not in line]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert spec.needle in lines[0], lines[0]
    assert _snapshot(spec.keep) == before, "a file that existed before was overwritten"
    for path in spec.absent:
        assert not path.exists(), f"{path} was created"


def test_there_are_sixty_cases_or_more():
    assert len(CASES) >= 60


# --- beside the table: what a bad input must not break, and the command line itself --------


def test_unexpected_error_is_one_line_that_says_how_to_report(monkeypatch, run_cli):
    import fathom.commands.score as score_command

    def broken(args):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(score_command, "run", broken)
    monkeypatch.delenv("FATHOM_DEBUG", raising=False)
    code, _, err = run_cli("score", "a.csv", "--truth", "b.csv")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "ValueError: boom second line" in err
    assert "--debug" in err and "FATHOM_DEBUG=1" in err and "report" in err
    for argv, env in ((["--debug", "score"], ""), (["score"], "1"), (["score", "--debug"], "")):
        monkeypatch.setenv("FATHOM_DEBUG", env)
        code, _, err = run_cli(*argv, "a.csv", "--truth", "b.csv")
        assert code == 1 and "Traceback" in err and "boom" in err


def test_ctrl_c_says_the_same_command_resumes(monkeypatch, run_cli):
    import fathom.commands.score as score_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_command, "run", interrupted)
    code, _, err = run_cli("score", "a.csv", "--truth", "b.csv")
    assert code == 130 and "run the same command again to resume" in err


def test_the_corrected_command_trains_after_a_failed_start(workspace, run_cli):
    ws = workspace
    code, _, err = run_cli(*ws.train("--fold", "0", "model=resnet5O"))
    assert code == 2 and not (ws.root / "runs" / "default" / "config.json").exists()
    code, _, err = run_cli(*ws.train("--fold", "0"))
    assert code == 0, err
    saved = json.loads((ws.root / "runs" / "default" / "config.json").read_text())
    assert saved["model"] == "fathom_cnn"
    assert (ws.root / "runs" / "default" / "fold0" / "eval.npz").is_file()


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from fathom import fileio
    from fathom.errors import FathomError

    path = fileio.save_torch(tmp_path / "last.pt", {"epoch": torch.tensor(1)})
    before = path.read_bytes()

    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(FathomError, match="disk"):
        fileio.save_torch(path, {"epoch": torch.tensor(2)})
    monkeypatch.setattr(Path, "write_text", _enospc)
    with pytest.raises(FathomError, match=f"{path.parent / 'h.csv'}: no space left on the disk"):
        fileio.write_text(path.parent / "h.csv", "x")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    from fathom import fileio

    old = os.umask(umask)
    try:
        for path in (
            fileio.write_text(tmp_path / "report.md", "x"),
            fileio.write_csv(tmp_path / "sub.csv", pd.DataFrame({"a": [1]})),
            fileio.save_npz(tmp_path / "p.npz", a=np.zeros(2)),
        ):
            assert path.stat().st_mode & 0o777 == mode, path
    finally:
        os.umask(old)


def test_a_16bit_png_is_cached_scaled_to_8bit(tmp_path):
    from fathom.data.cache import load_image

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    pixels = load_image(str(tmp_path / "deep.png"), 32)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    assert 100 < pixels.mean() < 155  # mid-grey on average, not mostly white (PIL clips at 255)
    assert pixels.min() == 0 and pixels.max() >= 250


def test_the_cache_notices_a_replaced_image(tmp_path):
    from fathom.data.cache import cached_images

    paths = []
    for i, color in enumerate([(0, 0, 0), (50, 50, 50)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), color).save(paths[-1])
    table = pd.DataFrame({"id": ["a", "b"], "path": [str(p) for p in paths]})
    first = np.array(cached_images(table, tmp_path / "cache", 8, workers=1))
    assert first[0].max() == 0
    Image.new("RGB", (8, 8), (200, 10, 10)).save(paths[0])  # replaced after caching
    os.utime(paths[0], ns=(os.stat(paths[0]).st_atime_ns, os.stat(paths[0]).st_mtime_ns + 10**9))
    second = np.array(cached_images(table, tmp_path / "cache", 8, workers=1))
    assert tuple(second[0, 0, 0]) == (200, 10, 10)
    assert np.array_equal(second[1], first[1])


def test_validate_refuses_what_the_official_metric_reads_as_numbers(workspace, run_cli):
    sub = _submission(workspace, lambda i: str(1 + i % 3))
    code, out, _ = run_cli("validate", sub, "--folder", workspace.comp)
    assert code == 1 and "every row lists exactly one category" in out
    fine = _submission(workspace, lambda i: "1" if i else "1 2")  # one row with two: text
    code, out, _ = run_cli("validate", fine, "--folder", workspace.comp)
    assert code == 0, out


def test_validate_takes_categories_from_the_key_when_eval_json_has_none(workspace, run_cli):
    sub = _prior_submission(workspace)
    eval_json = workspace.edit_json("object_detection/eval.json", lambda d: d.pop("categories"))
    code, out, err = run_cli("validate", sub, "--eval", eval_json)
    assert code == 0 and "valid" in out, out + err
    (workspace.comp / "category_key.csv").unlink()
    code, _, err = run_cli("validate", sub, "--eval", eval_json)
    assert code == 2 and "no `categories` list" in err and "category_key.csv" in err


def test_kernel_build_takes_the_owner_from_the_dataset(workspace, run_cli):
    _no_credentials(workspace)
    code, out, err = run_cli(
        "kernel", "build", "fathom-predict", "--dataset", "me/weights-ds", "--run", "r1"
    )
    assert code == 0, err
    meta = json.loads(
        (workspace.root / "kernels" / "fathom-predict" / "kernel-metadata.json").read_text()
    )
    assert meta["id"] == "me/fathom-predict"


def test_a_second_training_of_a_fold_waits_for_nobody_once_the_first_ends(workspace, run_cli):
    """The lock dies with its holder: a finished (or killed) run leaves no stale lock."""
    ws = workspace
    lock = ws.root / "runs" / "default" / ".fold0.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    code, _, err = run_cli(*ws.train("--fold", "0", "epochs=1"))
    assert code == 0, err
