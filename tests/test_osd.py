import numpy as np
import pytest

from fathom import osd
from fathom.metrics import sauc


def _softmaxish(logits):
    return 1.0 / (1.0 + np.exp(-logits))


@pytest.fixture
def confident_vs_unsure():
    """100 in-sample rows with one clearly high logit, 100 out-of-sample rows with none."""
    rng = np.random.default_rng(0)
    logits = rng.normal(-4, 0.5, (200, 12))
    logits[np.arange(100), rng.integers(0, 12, 100)] = 3.0
    logits[100:] += rng.normal(1.5, 0.3, (100, 12))  # a few middling logits, no clear winner
    return logits, _softmaxish(logits), np.r_[np.zeros(100), np.ones(100)]


@pytest.mark.parametrize("name", osd.PREDICTION_SCORERS)
def test_prediction_scorers_flag_unsure_rows(confident_vs_unsure, name):
    logits, probs, flag = confident_vs_unsure
    assert sauc(flag, osd.prediction_scores(name, probs, logits)) > 0.9
    # and a confident row always scores below an unsure one on the same scale
    scores = osd.prediction_scores(name, probs, logits)
    assert scores[:100].max() < scores[100:].min()


def test_energy_and_max_logit_values():
    z = np.array([[0.0, 0.0], [2.0, -1.0]])
    assert osd.energy(z) == pytest.approx([-np.log(2.0), -np.log(np.exp(2) + np.exp(-1))])
    assert osd.max_logit(z) == pytest.approx([0.0, -2.0])
    assert osd.max_prob(np.array([[0.2, 0.7]])) == pytest.approx([0.3])
    assert osd.entropy(np.array([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(
        [np.log(2.0), 0.0], abs=1e-9
    )


def test_disagreement_is_zero_when_models_agree_and_grows_with_conflict():
    rng = np.random.default_rng(1)
    p = rng.random((20, 5))
    agree = osd.disagreement(np.stack([p, p]))
    assert agree == pytest.approx(np.zeros(20))
    q = p.copy()
    q[10:] = q[10:, ::-1]  # the second model reverses its opinion on half the rows
    d = osd.disagreement(np.stack([p, q]))
    assert d[:10] == pytest.approx(np.zeros(10))
    assert (d[10:] > 0).all()
    with pytest.raises(ValueError):
        osd.disagreement(p[None])


@pytest.fixture
def two_clusters():
    """Reference features around one centre; query = half near it, half from another place."""
    rng = np.random.default_rng(2)
    centre, other = rng.normal(0, 1, 16), rng.normal(0, 1, 16)
    ref = centre + 0.3 * rng.normal(0, 1, (150, 16))
    near = centre + 0.3 * rng.normal(0, 1, (60, 16))
    far = other + 0.3 * rng.normal(0, 1, (60, 16))
    return ref, np.concatenate([near, far]), np.r_[np.zeros(60), np.ones(60)]


@pytest.mark.parametrize("name", osd.FEATURE_SCORERS)
def test_feature_scorers_separate_a_shifted_cluster(two_clusters, name):
    ref, query, flag = two_clusters
    assert sauc(flag, osd.FEATURE_FUNCS[name](ref, query)) > 0.95


def test_knn_is_the_kth_cosine_distance():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = osd.knn_distance(ref, np.array([[2.0, 0.0]]), k=2)
    assert d == pytest.approx([1.0])  # nearest is (1,0) at 0; second is (0,1) at cosine distance 1


def test_mahalanobis_respects_the_covariance():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, (2000, 2)) * [10.0, 0.1]  # wide along x, narrow along y
    d = osd.mahalanobis_distance(ref, np.array([[5.0, 0.0], [0.0, 0.5]]))
    assert d[1] > d[0]  # 0.5 off in y is far more unusual than 5 off in x


def test_domain_score_uses_only_unlabelled_query_rows(two_clusters):
    ref, query, flag = two_clusters
    scores = osd.domain_score(ref, query)
    assert scores.shape == (120,)
    assert sauc(flag, scores) > 0.95
    # a query drawn like the reference is not separable: near chance
    rng = np.random.default_rng(4)
    same = ref.mean(axis=0) + 0.3 * rng.normal(0, 1, (120, 16))
    assert abs(sauc(flag, osd.domain_score(ref, same))) < 0.35


def test_to_unit_keeps_the_ranking_in_zero_one():
    s = np.array([3.0, -1.0, 10.0, 3.0])
    u = osd.to_unit(s)
    assert u.min() == 0.0 and u.max() == 1.0
    assert sauc([0, 0, 1, 1], u) == pytest.approx(sauc([0, 0, 1, 1], s))


def _holdout_models(n_models, rng, n=300, c=10, d=8):
    unseen = rng.random(n) < 0.25
    fold = np.arange(n) % 3
    seen_centre, unseen_centre = rng.normal(0, 1, d), rng.normal(0, 1, d)
    models = []
    for _ in range(n_models):
        logits = rng.normal(-3, 0.5, (n, c))
        logits[np.flatnonzero(~unseen), rng.integers(0, c, (~unseen).sum())] = 2.0
        # unseen organisms land elsewhere in feature space
        feats = np.where(unseen[:, None], unseen_centre, seen_centre) + 0.4 * rng.normal(
            0, 1, (n, d)
        )
        models.append(osd.ModelRows(_softmaxish(logits), logits, feats, fold))
    return models, unseen


def test_simulate_scores_every_scorer_on_held_out_rows():
    rng = np.random.default_rng(5)
    models, unseen = _holdout_models(2, rng)
    res = osd.simulate(models, unseen)
    assert set(res) == set(osd.SCORERS)
    for name in (*osd.PREDICTION_SCORERS, *osd.FEATURE_SCORERS):
        assert res[name] > 0.5, name
    single = osd.simulate(models[:1], unseen)
    assert single["disagreement"] is None


def test_eval_scores_pair_fold_features_with_their_reference(two_clusters):
    ref, query, flag = two_clusters
    rng = np.random.default_rng(6)
    probs = rng.random((120, 5))
    col = osd.eval_scores(
        "knn", probs, probs, fold_features=[query, query], fold_references=[ref, ref]
    )
    assert col.min() >= 0 and col.max() <= 1
    assert sauc(flag, col) > 0.95
    with pytest.raises(ValueError):
        osd.eval_scores("knn", probs, probs)


def test_choose_holdout_categories_hits_the_share_and_spares_the_common():
    rng = np.random.default_rng(7)
    rows = [
        tuple({int(c) for c in rng.zipf(1.5, rng.integers(1, 3)) if c <= 60}) or (1,)
        for _ in range(500)
    ]
    chosen = osd.choose_holdout_categories(rows, share=0.2, skip_top=3)
    counts = {}
    for r in rows:
        for c in r:
            counts[c] = counts.get(c, 0) + 1
    top3 = sorted(counts, key=lambda c: -counts[c])[:3]
    assert not set(chosen) & set(top3)
    share = np.mean([bool(set(r) & set(chosen)) for r in rows])
    assert 0.1 < share <= 0.2


def test_auc_standard_error_hand_worked():
    # Hanley & McNeil at AUC 0.5 with 10 + 10 images: var = (0.25 + 9*(1/12) * 2) / 100
    assert osd.auc_standard_error(0.5, 10, 10) == pytest.approx(np.sqrt(0.0175))
    assert osd.auc_standard_error(0.9, 100, 100) < osd.auc_standard_error(0.9, 10, 10)


def test_shift_auc_sees_a_shifted_part_of_the_query_set():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (300, 8))
    same = rng.normal(0, 1, (300, 8))
    shifted = np.concatenate([rng.normal(0, 1, (150, 8)), rng.normal(2.5, 1, (150, 8))])
    assert abs(osd.shift_auc(reference, same) - 0.5) < 0.08
    assert osd.shift_auc(reference, shifted) > 0.7


def test_choose_scorer_rules():
    sims = {"max_prob": 0.30, "knn": 0.05, "domain": -0.2, "disagreement": None}
    # clear winner, no shift: the simulated best
    name, why = osd.choose_scorer(sims, 100, 400, shift=0.51, n_reference=300, n_query=300)
    assert name == "max_prob" and "no clear shift" in why
    # clear winner and a shifted eval set: both, rank-averaged
    name, _ = osd.choose_scorer(sims, 100, 400, shift=0.75, n_reference=300, n_query=300)
    assert name == "domain+max_prob"
    # a winner within noise (few unseen images) and a shift: domain alone
    weak = {"max_prob": 0.08, "knn": 0.02}
    name, why = osd.choose_scorer(weak, 20, 200, shift=0.75, n_reference=300, n_query=300)
    assert name == "domain" and "no scorer beats chance" in why
    # a shift AUC above 0.55 but inside its noise (tiny sets) does not count
    name, _ = osd.choose_scorer(weak, 20, 200, shift=0.6, n_reference=10, n_query=10)
    assert name == "max_prob"
    assert osd.is_scorer("domain+max_prob") and not osd.is_scorer("domain+nope")


def test_combined_scorer_is_the_mean_of_ranks():
    rng = np.random.default_rng(1)
    probs = rng.random((40, 5))
    logits = np.log(probs / (1 - probs))
    a = osd.eval_scores("max_prob", probs, logits)
    b = osd.eval_scores("entropy", probs, logits)
    both = osd.eval_scores("max_prob+entropy", probs, logits)
    assert np.allclose(both, osd.to_unit((a + b) / 2))


def test_mahalanobis_equals_scikit_learn_ledoit_wolf():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(8)
    # fewer rows than features (the Gram route), more (the covariance route), pooled-CNN-like
    for n, d in [(40, 120), (300, 64), (64, 64), (3, 10)]:
        x = np.maximum(rng.normal(0, 1, (n + 50, 5)) @ rng.normal(0, 1, (5, d)), 0)
        x += 0.2 * rng.normal(0, 1, x.shape)
        ref, query = x[:n], x[n:]
        expected = LedoitWolf().fit(ref).mahalanobis(query)
        np.testing.assert_allclose(osd.mahalanobis_distance(ref, query), expected, rtol=1e-8)


def _full_width_domain_classifier():
    """The classifier before issue 10: standardised full-width features, lbfgs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced")
    )


@pytest.fixture
def shifted_features():
    """Pooled-CNN-like 256-d features (a ReLU of a 12-d mix plus noise); a third of the query
    rows moved along one shared direction (another background)."""
    rng = np.random.default_rng(9)
    proj = rng.normal(0, 1, (12, 256)) / np.sqrt(12) + 0.3

    def feats(n, shift=0.0):
        z = rng.normal(0, 1, (n, 12)) + shift
        return np.maximum(z @ proj + 0.4 * rng.normal(0, 1, (n, 256)), 0)

    direction = 1.2 * rng.normal(0, 1, 12)
    moved = np.r_[np.zeros(500), np.ones(250)].astype(bool)
    query = np.concatenate([feats(500), feats(250, direction)])
    return feats(400), query, moved, feats(750)


def test_reduced_domain_classifier_matches_the_full_width_one(shifted_features):
    """The shift test's AUC within 0.03 of the full-width classifier's; the domain scorer's
    sAUC on the moved rows within 0.05; no shift stays near 0.5."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ref, query, moved, same = shifted_features
    x = np.concatenate([ref, query])
    y = np.r_[np.zeros(len(ref)), np.ones(len(query))]
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    full = cross_val_predict(_full_width_domain_classifier(), x, y, cv=cv, method="predict_proba")
    assert abs(osd.shift_auc(ref, query) - roc_auc_score(y, full[:, 1])) < 0.03
    assert abs(osd.shift_auc(ref, same) - 0.5) < 0.05

    part = np.random.default_rng(0).permutation(len(query)) % 5
    full_scores = np.zeros(len(query))
    for s in range(5):
        xs = np.concatenate([ref, query[part != s]])
        ys = np.r_[np.zeros(len(ref)), np.ones((part != s).sum())]
        model = _full_width_domain_classifier().fit(xs, ys)
        full_scores[part == s] = model.predict_proba(query[part == s])[:, 1]
    reduced = sauc(moved, osd.domain_score(ref, query))
    assert reduced > 0.5 and abs(reduced - sauc(moved, full_scores)) < 0.05
