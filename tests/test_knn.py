# ruff: noqa: F811  (pytest fixtures imported from engine_fixtures)
"""The kNN member (fathom/knn.py): its vote, its fold-honesty, its banks from the engine, and
its way through tune, submit and the kernel."""

import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _fake_runs import cli, make_run, small_competition  # noqa: E402
from engine_fixtures import one_thread, tiny_comp, tiny_config  # noqa: E402, F401

from fathom import fileio  # noqa: E402
from fathom.errors import FathomError  # noqa: E402
from fathom.knn import (  # noqa: E402
    BANK_FILE,
    TEMPERATURES,
    _vote_rows,
    eval_knn,
    knn_scores,
    oof_neighbours,
    read_bank,
    tune_knn,
    write_bank,
)
from fathom.manifest import read_manifest  # noqa: E402
from fathom.runs import open_run, run_members  # noqa: E402
from fathom.submission import read_submission  # noqa: E402


def test_the_vote_is_the_similarity_weighted_share_of_the_neighbours_labels():
    bank = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    # a query on the first bank row, at a tiny temperature: that row's labels alone
    sharp = knn_scores(np.array([[2.0, 0.0]]), bank, labels, temperature=1e-4)
    assert np.allclose(sharp, [[1, 0, 0]], atol=1e-6)
    # at a huge temperature every neighbour weighs the same: the plain share
    flat = knn_scores(np.array([[2.0, 0.0]]), bank, labels, temperature=1e6)
    assert np.allclose(flat, [[2 / 3, 1 / 3, 1 / 3]], atol=1e-4)
    # only the k nearest vote (cosine: the third row is orthogonal)
    two = knn_scores(np.array([[2.0, 0.0]]), bank, labels, temperature=1e6, k=2)
    assert np.allclose(two, [[1.0, 0.5, 0.0]], atol=1e-4)
    assert knn_scores(np.zeros((0, 2)), bank, labels, 0.1).shape == (0, 3)  # no eval images
    # chunking changes nothing, and a small temperature does not underflow to nan
    q = np.random.default_rng(0).normal(size=(7, 2))
    a = knn_scores(q, bank, labels, 1e-3, chunk=3)
    assert np.isfinite(a).all() and np.allclose(a, knn_scores(q, bank, labels, 1e-3))


def _fold_run(tmp_path, labels_of_fold):
    """A run whose fold k's bank holds one image labelled `labels_of_fold[k]`, with the same
    features as every OOF row: the scores show which bank each row was scored against."""
    run = tmp_path / "run"
    n_folds, cats = len(labels_of_fold), np.array([10, 20, 30])
    fold = np.arange(6) % n_folds
    feats = np.ones((6, 4), np.float32)
    for k, label in enumerate(labels_of_fold):
        y = np.zeros((1, 3), np.uint8)
        y[0, label] = 1
        write_bank(run / f"fold{k}" / BANK_FILE, [f"t{k}"], feats[:1], y, cats)
    oof = {
        "ids": np.array([f"i{j}" for j in range(6)]),
        "fold": fold,
        "features": feats,
        "probs": np.zeros((6, 3), np.float32),
        "category_ids": cats,
    }
    return open_run(run), oof


def test_oof_rows_of_a_fold_are_scored_against_that_folds_bank_only(tmp_path):
    run, oof = _fold_run(tmp_path, [0, 2])
    parts = oof_neighbours(run, oof)
    scores = _vote_rows(parts, 0.05, (6, 3))
    assert scores[oof["fold"] == 0].argmax(axis=1).tolist() == [0, 0, 0]
    assert scores[oof["fold"] == 1].argmax(axis=1).tolist() == [2, 2, 2]


def test_the_temperature_of_a_fold_is_chosen_on_the_other_folds(tmp_path, monkeypatch):
    """Each fold's rows get the temperature the other folds' rows chose; the one a submission
    uses is chosen on every row."""
    import fathom.knn as knn

    cats = np.array([10, 20, 30])
    fold = np.arange(6) % 3
    bank = np.array([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0]])  # the query's twin (A), a near one (B)
    for k in range(3):
        write_bank(tmp_path / "run" / f"fold{k}" / BANK_FILE, ["a", "b"], bank, np.eye(3)[:2], cats)
    oof = {
        "ids": np.array([f"i{j}" for j in range(6)]),
        "fold": fold,
        "features": np.tile([1.0, 0, 0, 0], (6, 1)),
        "probs": np.zeros((6, 3), np.float32),
        "category_ids": cats,
    }
    targets = np.zeros((6, 3))
    targets[fold == 0, 2] = 1  # fold 0's rows are the ones marked in column 2

    def metric(p, y):  # with fold 0's rows: B's share should be high; without them: low
        return p[:, 1].mean() if y[:, 2].any() else -p[:, 1].mean()

    monkeypatch.setattr(knn, "TEMPERATURES", (0.01, 10.0))
    res = tune_knn(open_run(tmp_path / "run"), oof, targets, metric)
    assert res["fold_temperatures"] == {0: 0.01, 1: 10.0, 2: 10.0}
    assert res["temperature"] == 10.0  # chosen on every row, fold 0's included
    sharp, flat = res["probs"][fold == 0], res["probs"][fold == 1]
    assert sharp[:, 1].max() < 1e-6 and flat[:, 1].min() > 0.4
    assert set(res["cv_by_temperature"]) == {"0.01", "10.0"}


def test_a_missing_or_foreign_bank_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(FathomError, match="no kNN banks|kNN bank|bank.npz"):
        read_bank(tmp_path, [1, 2])
    write_bank(tmp_path / BANK_FILE, ["a"], np.ones((1, 4)), np.ones((1, 2)), [1, 2])
    with pytest.raises(FathomError, match="categories differ"):
        read_bank(tmp_path, [1, 3])
    write_bank(tmp_path / BANK_FILE, ["a"], np.full((1, 4), np.nan), np.ones((1, 2)), [1, 2])
    with pytest.raises(FathomError, match="non-finite features"):
        read_bank(tmp_path, [1, 2])
    fileio.save_npz(tmp_path / BANK_FILE, ids=np.array(["a"]), features=np.ones((1, 4)))
    with pytest.raises(FathomError, match="lacks"):
        read_bank(tmp_path, [1, 2])


# --- through the engine, tune, submit and the kernel


def test_training_writes_each_folds_bank_of_the_images_it_trained_on(tiny_comp, tmp_path):
    from fathom.data import read_data
    from fathom.engine.train import train_run

    cfg = tiny_config(tiny_comp, tmp_path, epochs=1)
    run = train_run(cfg, read_data(cfg), tmp_path / "runs", [0, 1], progress=False)
    folds = pd.read_csv(tiny_comp[1], dtype={"id": str}).set_index("id")["fold"]
    for k in (0, 1):
        oof = np.load(run / f"fold{k}" / "oof.npz")
        bank = read_bank(run / f"fold{k}", oof["category_ids"])
        assert set(bank["ids"]) == set(folds.index[folds != k])
        assert not set(oof["ids"].astype(str)) & set(bank["ids"])  # never a held-out image
        assert bank["features"].shape == (len(bank["ids"]), oof["features"].shape[1])
        assert bank["targets"].sum(axis=1).min() >= 1  # every training image has a label
    # the bank travels with the weights
    assert run / "fold0" / BANK_FILE in open_run(run).upload_files()
    # a fold finished without a bank (an older run) gets it from the same command, untrained
    fold0 = run / "fold0"
    before = {p.name: p.read_bytes() for p in fold0.iterdir() if p.name != BANK_FILE}
    bank = dict(np.load(fold0 / BANK_FILE))
    (fold0 / BANK_FILE).unlink()
    train_run(cfg, read_data(cfg), tmp_path / "runs", [0, 1], progress=False)
    assert {p.name: p.read_bytes() for p in fold0.iterdir() if p.name != BANK_FILE} == before
    again = np.load(fold0 / BANK_FILE)  # (a zip's bytes hold its time: compare the arrays)
    assert all(np.array_equal(again[k], v) for k, v in bank.items())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("knn")
    comp = small_competition(root)
    good = make_run(root / "runs", comp, "good", quality=0.45, seed=1)
    return {"comp": comp, "good": good}


def test_tune_knn_adds_a_member_per_run_and_submit_scores_it_on_the_eval_features(
    world, tmp_path, capsys
):
    out = tmp_path / "tune.json"
    assert cli("tune", world["good"], "--knn", "--prior", "--osd", "knn", "--out", out) == 0
    assert "good kNN (temperature " in capsys.readouterr().out
    tuning = json.loads(out.read_text())
    kinds = [(e["name"], e["kind"]) for e in tuning["experiments"]]
    assert kinds == [("good", "run"), ("good kNN", "knn"), ("frequency prior", "prior")]
    member = tuning["experiments"][1]
    assert member["run"] == "good" and member["temperature"] in TEMPERATURES
    assert run_members(tuning) == [{"name": "good", "path": str(world["good"])}]
    # a submission that leans on the kNN member alone ranks by its eval scores
    tuning["ensemble"].update(method="weighted", weights=[0.0, 1.0, 0.0])
    out.write_text(json.dumps(tuning))
    assert cli("submit", out, "--name", "k", "--out-dir", tmp_path) == 0
    run = open_run(world["good"])
    arrays = run.eval()
    expected = eval_knn(run, arrays, member["temperature"])
    sub = read_submission(tmp_path / "k.csv").set_index("id")
    first = [int(sub.loc[i, "categories"].split()[0]) for i in arrays["ids"]]
    top = arrays["category_ids"][expected.argmax(axis=1)]
    agree = np.mean([a == b for a, b in zip(first, top, strict=True)])
    assert agree > 0.9  # ties among equal shares may order differently
    m = read_manifest(tmp_path / "k.json")
    assert m["experiments"][1]["checkpoints"]  # the kNN member names its run's weights
    # the report's model comparison shows the kNN member beside its run
    assert cli("report", world["good"], "--tune", out, "--out", tmp_path / "report") == 0
    assert "good kNN" in (tmp_path / "report" / "index.html").read_text()


def test_a_kernel_points_a_knn_member_at_its_runs_folder(tmp_path):
    from fathom.kaggle.kernel_template import kernel_tuning

    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "tune.json").write_text(
        json.dumps(
            {
                "competition": "/old/comp",
                "experiments": [
                    {"name": "cnn", "kind": "run", "path": "/old/runs/cnn"},
                    {"name": "cnn kNN", "kind": "knn", "run": "cnn", "path": "/old/runs/cnn"},
                    {"name": "frequency prior", "kind": "prior", "path": None},
                ],
            }
        )
    )
    out = json.loads(
        kernel_tuning(weights, tmp_path / "runs", tmp_path / "c", tmp_path).read_text()
    )
    paths = [e["path"] for e in out["experiments"]]
    assert paths == [str(tmp_path / "runs" / "cnn")] * 2 + [None]


def test_knn_only_tunes_the_knn_members_alone(world, tmp_path):
    out = tmp_path / "only.json"
    assert cli("tune", world["good"], "--knn-only", "--osd", "knn", "--out", out) == 0
    tuning = json.loads(out.read_text())
    assert [e["kind"] for e in tuning["experiments"]] == ["knn"]
    assert cli("submit", out, "--name", "only", "--out-dir", tmp_path / "subs") == 0
    assert read_manifest(tmp_path / "subs" / "only.json")["experiments"][0]["name"] == "good kNN"


def test_the_neighbour_search_is_sklearns_brute_force_cosine():
    # fathom/knn.py writes the search by hand for speed (issue 19); it must find what sklearn's
    # NearestNeighbors(metric="cosine", algorithm="brute") finds, zero rows included (cosine
    # similarity 0 to everything), in chunks or not, with k at or beyond the bank's size
    from sklearn.neighbors import NearestNeighbors

    from fathom.knn import neighbours

    rng = np.random.default_rng(3)
    bank = rng.normal(size=(300, 16)).astype(np.float32)
    query = rng.normal(size=(130, 16)).astype(np.float32)
    bank[[5, 77]] = 0.0
    query[[0, 64]] = 0.0
    for k, chunk in ((10, 1024), (10, 7), (300, 50), (500, 64)):
        d, i = neighbours(query, bank, k=k, chunk=chunk)
        nn = NearestNeighbors(n_neighbors=min(k, len(bank)), metric="cosine", algorithm="brute")
        want_d, want_i = nn.fit(bank).kneighbors(query)
        assert d.shape == want_d.shape and i.shape == want_i.shape
        assert np.allclose(d, want_d, atol=1e-5)
        # the same rows, in the same order but where two distances tie (within float noise:
        # a zero query row ties with every bank row, the zero bank rows with each other)
        rows = np.setdiff1d(np.arange(len(query)), [0, 64])
        assert (np.sort(i[rows], axis=1) == np.sort(want_i[rows], axis=1)).all() or k < 300
        gap = np.diff(want_d[rows], axis=1)
        alone = np.ones_like(want_d[rows], dtype=bool)
        alone[:, 1:] &= gap > 1e-5
        alone[:, :-1] &= gap > 1e-5
        assert (i[rows][alone] == want_i[rows][alone]).all()
        assert np.allclose(d[0], 1.0) and np.allclose(d[64], 1.0)


def plain_neighbours(query, bank, k, chunk):
    # the search before issue 19 part 2: every distance of the chunk, clipped, argpartition,
    # stable sort (what the submissions written so far were computed with)
    from fathom.knn import unit_rows

    bank, query = unit_rows(bank), unit_rows(query)
    k = min(k, len(bank))
    dist, index = [], []
    for s in range(0, len(query), chunk):
        d = np.clip(1.0 - query[s : s + chunk] @ bank.T, 0.0, 2.0)
        if k < len(bank):
            near = np.argpartition(d, k - 1, axis=1)[:, :k]
        else:
            near = np.broadcast_to(np.arange(k), d.shape).copy()
        near_d = np.take_along_axis(d, near, axis=1)
        order = np.argsort(near_d, axis=1, kind="stable")
        dist.append(np.take_along_axis(near_d, order, axis=1))
        index.append(np.take_along_axis(near, order, axis=1))
    return np.concatenate(dist), np.concatenate(index)


@pytest.mark.parametrize("select_rows", [256, 16])
def test_the_neighbour_search_keeps_the_plain_searchs_choice_where_distances_tie(
    select_rows, monkeypatch
):
    # only the k kept similarities become distances now; where distances tie (an all-zero
    # row is at distance 1 from everything; repeated bank rows; an image also in the bank,
    # at a similarity that rounds past 1 and is clipped to distance 0) the same bank rows must
    # be kept in the same order as before, or a submission's kNN scores would change
    import fathom.knn as knn
    from fathom.knn import neighbours

    monkeypatch.setattr(knn, "SELECT_ROWS", select_rows)  # the k picked in blocks of a chunk
    rng = np.random.default_rng(5)
    bank = np.maximum(rng.normal(size=(400, 24)), 0).astype(np.float32)
    bank[50:60] = bank[7]  # ten repeats of one row
    bank[[3, 200]] = 0.0
    query = np.maximum(rng.normal(size=(150, 24)), 0).astype(np.float32)
    query[[0, 90]] = 0.0
    query[10:20] = bank[7] * 3.0  # the repeated row itself: ties at distance ~0
    query[20:30] = bank[100:110]
    # 0/1 rows: many bank rows at exactly one similarity, the nearest (k = 1: no two kept to
    # tie) among them
    query[30:40] = rng.random((10, 24)) < 0.3
    bank[300:360] = rng.random((60, 24)) < 0.3
    for k, chunk in ((1, 1024), (2, 13), (5, 1024), (10, 7), (50, 64), (400, 32), (600, 150)):
        d, i = neighbours(query, bank, k=k, chunk=chunk)
        want_d, want_i = plain_neighbours(query, bank, k, chunk)
        assert np.array_equal(d, want_d) and np.array_equal(i, want_i), (k, chunk)
    assert (np.diff(want_d, axis=1) == 0).any(axis=1).sum() > 20  # the ties were there
