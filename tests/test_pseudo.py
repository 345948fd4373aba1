# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""Pseudo-labels (issue 12, part 5): a second round trains on the eval images that the first
round's SAME-fold model predicted confidently, never on eval truth, and the CV stays honest."""

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

import fathom.engine.train as train_module
from fathom.data import read_data
from fathom.data.cache import build_cache
from fathom.data.loader import PSEUDO_FLOOR, ImageSource, JoinedSource, fold_rows, pseudo_labels
from fathom.engine.losses import FloatBCE, weighted_rows_loss
from fathom.engine.train import set_up_fold, train_run
from fathom.errors import FathomError
from fathom.runs import read_predictions, write_predictions


def _first_round(root: Path, data, n_cats: int, val_of=None) -> Path:
    """A finished first round without training: fold k's oof.npz holds fold k's validation
    ids, its eval.npz seeded probabilities that differ between folds."""
    run = root / "round1"
    for k in (0, 1):
        _, val = fold_rows(data, k)
        ids = data.train["id"].to_numpy()[val if val_of is None else val_of(k)]
        p = np.full((len(ids), n_cats), 0.1, np.float32)
        write_predictions(
            run / f"fold{k}" / "oof.npz", ids, p, p, np.zeros((len(ids), 2)), data.class_ids
        )
        rng = np.random.default_rng(k)
        probs = rng.uniform(0, 0.3, (len(data.eval), n_cats)).astype(np.float32)
        probs[rng.permutation(len(data.eval))[:6], rng.integers(0, n_cats, 6)] = 0.9
        write_predictions(
            run / f"fold{k}" / "eval.npz", data.eval["id"], probs, probs,
            np.zeros((len(data.eval), 2)), data.class_ids,
        )  # fmt: skip
    return run


def _set_up(cfg, data, fold, tmp_path):
    ctx = train_module.distributed.Dist()
    out = tmp_path / "runs" / cfg.name / f"fold{fold}"
    return set_up_fold(cfg, data, fold, out, ctx, torch.device("cpu"), lambda *a, **k: None)


def test_fold_k_trains_on_fold_k_eval_probs_thresholded_and_never_opens_eval_truth(
    tiny_comp, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_comp, tmp_path)
    data = read_data(cfg)
    n_cats, n = len(data.class_ids), len(data.train)
    run = _first_round(tmp_path, data, n_cats)
    cfg = cfg.replace(pseudo_from=str(run), pseudo_threshold=0.5)
    opened = []
    real_open = builtins.open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    used = {}
    for k in (0, 1):
        f = _set_up(cfg, data, k, tmp_path)
        probs = read_predictions(run / f"fold{k}" / "eval.npz")["probs"]
        keep = np.flatnonzero(probs.max(axis=1) >= 0.5)
        assert 0 < len(keep) < len(probs)
        pseudo = f.train_rows[f.train_rows >= n] - n
        assert sorted(pseudo) == sorted(keep) and f.n_pseudo == len(keep)
        want = np.where(probs >= PSEUDO_FLOOR, probs, 0.0)
        got = f.y_dev[n:].numpy()
        np.testing.assert_array_equal(got[keep], want[keep])
        assert not got[np.setdiff1d(np.arange(len(probs)), keep)].any()
        # the labelled part is as without pseudo-labels: this fold's validation rows stay out
        assert set(f.train_rows[f.train_rows < n]) == set(fold_rows(data, k)[0])
        used[k] = got
    assert not np.array_equal(used[0], used[1])  # each fold its own first-round model
    assert not any("hidden" in Path(p).parts for p in opened)


def test_a_first_round_that_validated_other_images_is_refused(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path)
    data = read_data(cfg)
    # its fold-0 model validated on fold 1's rows: it trained on this fold's validation rows
    run = _first_round(
        tmp_path, data, len(data.class_ids), val_of=lambda k: fold_rows(data, 1 - k)[1]
    )
    with pytest.raises(FathomError, match="validated fold 0 on other images"):
        pseudo_labels(run, 0, data, fold_rows(data, 0)[1], 0.5)
    with pytest.raises(FathomError, match="has not finished fold 0"):
        pseudo_labels(tmp_path / "nothing", 0, data, fold_rows(data, 0)[1], 0.5)


def test_joined_source_serves_each_row_from_its_own_cache(tiny_comp, tmp_path):
    data = read_data(tiny_config(tiny_comp, tmp_path))
    cpu = torch.device("cpu")
    paths = [build_cache(t, tmp_path, 8, label, progress=False) for t, label in ((data.train, "t"), (data.eval, "e"))]  # fmt: skip
    a, b = (np.load(p) for p in paths)
    for on_device in (True, False):
        src = JoinedSource(
            ImageSource(paths[0], cpu, on_device), ImageSource(paths[1], cpu, on_device)
        )
        n = len(a)
        batches = [np.array([n + 3, 0, 5, n]), np.array([1, 2]), np.array([n + 1])]
        for rows, images in src.batches(batches):
            want = np.stack([a[r] if r < n else b[r - n] for r in rows])
            assert np.array_equal(images.numpy(), want)


def test_pseudo_rows_weigh_pseudo_weight_in_the_loss():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.rand(6, 4)
    bce = FloatBCE()
    assert torch.equal(weighted_rows_loss(bce, logits, y, 6, 0.3), bce(logits, y))
    assert weighted_rows_loss(bce, logits, y, 4, 1.0).item() == pytest.approx(bce(logits, y).item())
    per_row = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    w = torch.tensor([1, 1, 1, 1, 0.25, 0.25])
    expect = (per_row.mean(dim=1) * w).sum() / 6
    assert weighted_rows_loss(bce, logits, y, 4, 0.25).item() == pytest.approx(expect.item())


def test_a_second_round_trains_with_pseudo_rows_and_the_head(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1)
    data = read_data(cfg)
    first = train_run(cfg, data, tmp_path / "runs", [0, 1], progress=False)
    second = cfg.replace(
        name="round2", pseudo_from=str(first), pseudo_threshold=0.0, pseudo_weight=0.5,
        supercat_weight=0.3,
    )  # fmt: skip
    run = train_run(second, data, tmp_path / "runs", [0], progress=False)
    oof = read_predictions(run / "fold0" / "oof.npz")
    assert sorted(oof["ids"]) == sorted(data.train["id"][data.train["fold"] == 0])
    assert np.isfinite(oof["logits"]).all() and "super_probs" in oof
    with pytest.raises(FathomError, match="multilabel"):
        second.replace(task="singlelabel", loss="ce", supercat_weight=0.0).check()
