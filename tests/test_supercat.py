# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""The supercategory lever (issue 12, part 4): the auxiliary head, its targets and loss, the
`super_probs` of the prediction files, the `supercat_rank` blend and the `supercat_entropy`
osd scorer."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _fake_runs import make_run
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: F401

from fathom import fileio
from fathom import osd as osd_lib
from fathom.config import from_dict
from fathom.data import read_data
from fathom.data.coco import open_competition, read_categories
from fathom.data.loader import TrainData, supercategory_targets
from fathom.engine.losses import supercat_loss
from fathom.engine.models import build_model, set_trainable
from fathom.engine.predict import predict_run, probabilities, rank_with_supercats
from fathom.engine.train import train_run
from fathom.errors import FathomError
from fathom.metrics import sauc
from fathom.oof import write_oof
from fathom.runs import read_predictions, write_predictions
from fathom.synth.fathomnet import SynthConfig, generate
from fathom.tune import tune_runs


def test_aux_targets_are_exactly_the_supercategories_of_the_labels(tiny_comp, tmp_path):
    data = read_data(tiny_config(tiny_comp, tmp_path))
    cats = read_categories(open_competition(tiny_comp[0]))
    of = dict(zip(cats["id"], cats["supercat_id"], strict=True))
    y, supercat_of = supercategory_targets(data)
    assert y.shape == (len(data.train), int(cats["supercat_id"].max()) + 1)
    for row, labels in zip(y, data.train["categories"], strict=True):
        assert set(np.flatnonzero(row)) == {of[c] for c in labels}
    # the Kaggle reader gives the exact map from category_key.csv
    assert supercat_of.tolist() == cats["supercat_id"].tolist()
    # without it, the map read off the table agrees with category_key.csv for every class a
    # training image holds; the others are unknown (-1)
    _, supercat_of = supercategory_targets(TrainData(data.train, data.eval, data.class_ids))
    seen = {c for row in data.train["categories"] for c in row}
    for j, c in enumerate(data.class_ids):
        assert supercat_of[j] in ((of[c], -1) if c in seen else (-1,))  # -1: ambiguous
    assert (supercat_of[[j for j, c in enumerate(data.class_ids) if c in seen]] >= 0).mean() >= 0.8
    # a map given by the reader wins over the table
    given = TrainData(data.train, data.eval, data.class_ids, supercat_of=tuple(cats["supercat_id"]))
    assert supercategory_targets(given)[1].tolist() == cats["supercat_id"].tolist()
    with pytest.raises(FathomError, match="supercategories"):
        supercategory_targets(TrainData(data.train.drop(columns="supercategories"), data.eval, ()))


def test_the_head_exists_only_when_the_weight_is_positive(tiny_comp, tmp_path):
    x = torch.zeros(2, 3, 16, 16)
    plain = build_model(tiny_config(tiny_comp, tmp_path), 40)
    assert plain.super_head is None and set(plain(x)) == {"features", "logits"}
    assert not any("super" in k for k in plain.state_dict())
    cfg = tiny_config(tiny_comp, tmp_path, supercat_weight=0.5)
    model = build_model(cfg, 40, [j % 8 for j in range(40)], 8)
    out = model(x)
    assert out["super_logits"].shape == (2, 8)
    assert model.state_dict()["supercat_of"].tolist() == [j % 8 for j in range(40)]
    # the backbone starts where the plain model starts: the head is made after it
    torch.manual_seed(0)
    a = build_model(tiny_config(tiny_comp, tmp_path), 40)
    torch.manual_seed(0)
    b = build_model(cfg, 40, [0] * 40, 8)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    # stage 1 trains both heads and nothing else
    set_trainable(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"super_head.weight", "super_head.bias"} <= trainable
    assert not any(n.startswith("backbone.blocks") for n in trainable)
    with pytest.raises(FathomError, match="supercategories"):
        build_model(cfg, 40)


def test_config_keys_are_checked():
    assert from_dict({"supercat_weight": 0.3, "supercat_rank": 0.5}).supercat_rank == 0.5
    with pytest.raises(FathomError, match="supercat_rank needs"):
        from_dict({"supercat_rank": 0.5})
    with pytest.raises(FathomError, match="supercat_rank"):
        from_dict({"supercat_weight": 1.0, "supercat_rank": 1.5})
    with pytest.raises(FathomError, match="multilabel"):
        from_dict({"supercat_weight": 1.0, "task": "singlelabel", "loss": "ce"})


def test_supercat_loss_is_bce_of_the_supercategory_outputs():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    manual = -(target * torch.log(torch.sigmoid(logits))) - (1 - target) * torch.log(
        1 - torch.sigmoid(logits)
    )
    assert supercat_loss(logits, target).item() == pytest.approx(manual.mean().item(), rel=1e-6)


def test_rank_blend_moves_a_rare_category_of_a_likely_supercategory_up():
    probs = np.array([[0.30, 0.20, 0.05]], dtype=np.float32)  # columns 0, 1 in super 0; 2 in 1
    supers = np.array([[0.1, 0.9]], dtype=np.float32)
    of = [0, 0, 1]
    assert np.array_equal(rank_with_supercats(probs, supers, of, 0.0), probs)
    blended = rank_with_supercats(probs, supers, of, 1.0)
    np.testing.assert_allclose(blended, [[0.03, 0.02, 0.045]], rtol=1e-6)
    assert blended[0].argmax() == 2  # the rare one in the likely supercategory is now first
    half = rank_with_supercats(probs, supers, of, 0.5)
    np.testing.assert_allclose(half, probs * np.array([0.55, 0.55, 0.95]), rtol=1e-6)
    assert (half <= probs).all() and (half >= 0).all()
    # an unknown supercategory (-1) gets no credit from the supercategory head
    np.testing.assert_allclose(rank_with_supercats(probs, supers, [-1, 0, 1], 1.0)[0, 0], 0.0)


def test_a_run_with_the_head_writes_super_probs_and_blends_its_ranking(tiny_comp, tmp_path):
    cfg = tiny_config(tiny_comp, tmp_path, epochs=1, supercat_weight=0.5, supercat_rank=0.5)
    data = read_data(cfg)
    run = train_run(cfg, data, tmp_path / "runs", [0, 1], progress=False)
    _, of = supercategory_targets(data)
    for k in (0, 1):
        for name in ("oof.npz", "eval.npz"):
            arrays = read_predictions(run / f"fold{k}" / name)
            sup = arrays["super_probs"]
            assert sup.shape == (len(arrays["ids"]), 8) and ((sup >= 0) & (sup <= 1)).all()
            raw = probabilities(arrays["logits"], "multilabel")
            np.testing.assert_allclose(
                arrays["probs"], rank_with_supercats(raw, sup, of, 0.5), rtol=1e-5
            )
    write_oof(run)
    assert read_predictions(run / "oof.npz")["super_probs"].shape == (len(data.train), 8)
    ev = read_predictions(run / "eval.npz")
    assert ev["fold_super_probs"].shape == (2, len(data.eval), 8)
    # `fathom predict` rebuilds the head from the checkpoint and writes the same
    out = predict_run(run, cfg.competition, tmp_path / "pred" / "eval.npz", cfg.cache_dir, "cpu")
    pred = read_predictions(out)
    np.testing.assert_allclose(pred["super_probs"], ev["super_probs"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pred["probs"], ev["probs"], rtol=1e-4, atol=1e-6)
    # the supercategory osd scorer goes all the way to a submission
    from fathom.runs import read_tuning
    from fathom.submit import make
    from fathom.tune import tune_runs, write_tuning

    tuned = tune_runs([run], comp=cfg.competition, osd_name="supercat_entropy")
    write_tuning(tmp_path / "t.json", tuned)
    csv, manifest = make(read_tuning(tmp_path / "t.json"), "sup", out_dir=tmp_path / "subs")
    assert manifest["osd"]["scorer"] == "supercat_entropy" and csv.is_file()


def test_prediction_files_without_super_probs_read_as_before(tmp_path):
    ids, probs = ["a", "b"], np.full((2, 3), 0.5, np.float32)
    old = write_predictions(tmp_path / "old.npz", ids, probs, probs, np.zeros((2, 4)), [1, 2, 3])
    assert "super_probs" not in read_predictions(old)
    bad = write_predictions(
        tmp_path / "bad.npz", ids, probs, probs, np.zeros((2, 4)), [1, 2, 3],
        super_probs=np.zeros((3, 2)),
    )  # fmt: skip
    with pytest.raises(FathomError, match="super_probs"):
        read_predictions(bad)


def _rows(n=200, seed=0, with_super=True):
    """Held-out-category rows where only the supercategory head is unsure on unseen images."""
    rng = np.random.default_rng(seed)
    unseen = np.arange(n) % 4 == 0
    probs = rng.uniform(0.01, 0.9, (n, 10))  # the category outputs carry no signal
    sup = np.full((n, 5), 0.02)
    sup[np.arange(n), rng.integers(0, 5, n)] = 0.95
    sup[unseen] = rng.uniform(0.3, 0.5, (unseen.sum(), 5))
    models = [
        osd_lib.ModelRows(
            probs, np.log(probs / (1 - probs)), rng.normal(0, 1, (n, 4)), np.arange(n) % 3,
            sup if with_super else None,
        )
    ]  # fmt: skip
    return models, unseen


def test_supercat_entropy_is_rated_by_the_simulation_and_none_without_super_probs():
    models, unseen = _rows()
    rated = osd_lib.simulate(models, unseen)
    assert rated["supercat_entropy"] > 0.8
    assert abs(rated["max_prob"]) < 0.3
    assert "supercat_entropy" not in osd_lib.simulate(_rows(with_super=False)[0], unseen)
    assert osd_lib.is_scorer("supercat_entropy") and osd_lib.is_scorer("domain+supercat_entropy")
    assert (
        "supercat_entropy" not in osd_lib.SCORERS
    )  # callers that loop SCORERS need no super_probs
    m = models[0]
    on_eval = osd_lib.eval_scores("supercat_entropy", m.probs, m.logits, super_probs=m.super_probs)
    assert sauc(unseen, on_eval) == pytest.approx(rated["supercat_entropy"], abs=0.05)
    with pytest.raises(FathomError, match="super_probs"):
        osd_lib.eval_scores("supercat_entropy", m.probs, m.logits)


def test_tune_simulates_and_chooses_supercat_entropy_from_a_held_run(tmp_path):
    comp = generate(
        tmp_path / "comp",
        SynthConfig(n_train=150, n_eval=40, width=48, height=36, seed=5),
        progress=False,
    )
    train = pd.read_csv(comp / "multilabel_classification" / "train.csv")
    counts = pd.Series([c for s in train["categories"] for c in json.loads(s)]).value_counts()
    holdout = tuple(int(c) for c in counts.index[5:25])
    good = make_run(tmp_path / "runs", comp, "good", quality=0.45, seed=1)
    held = make_run(tmp_path / "runs", comp, "held", quality=0.05, seed=3, holdout=holdout)
    plain = tune_runs([good], holdout=[held])
    assert plain["osd"]["simulated_sauc"]["supercat_entropy"] is None
    oof = read_predictions(held / "oof.npz", ())
    unseen = np.array([bool(set(json.loads(s)) & set(holdout)) for s in train["categories"]])
    order = {uid: i for i, uid in enumerate(train["id"].astype(str))}
    rows = np.array([order[u] for u in oof["ids"]])
    sup = np.full((len(rows), 5), 0.02, np.float32)
    sup[:, 0] = 0.95
    sup[unseen[rows]] = 0.4  # the supercategory head is unsure exactly on unseen organisms
    fileio.save_npz(held / "oof.npz", **oof, super_probs=sup)
    result = tune_runs([good], holdout=[held])["osd"]
    assert result["simulated_sauc"]["supercat_entropy"] > 0.9
    assert result["scorer"] in ("supercat_entropy", "domain+supercat_entropy")


def test_the_head_reads_the_pooled_features_of_a_model_with_a_layer_after_pooling():
    """MobileNetV3 pools 288 channels into a 1024-wide conv_head: the supercategory head must
    take the 1024 features the category head reads."""
    import torch

    from fathom.config import TrainConfig
    from fathom.engine.models import build_model

    cfg = TrainConfig(model="mobilenetv3_small_050", pretrained=False, supercat_weight=0.5)
    model = build_model(cfg, 6, (0, 0, 1, 1, 2, 2), 3).eval()
    out = model(torch.zeros(2, 3, 32, 32))
    assert out["super_logits"].shape == (2, 3) and out["features"].shape[1] == 1024
