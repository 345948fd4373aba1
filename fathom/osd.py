"""Out-of-sample scorers, and an honest way to choose among them.

Every scorer returns one number per image, higher meaning "more likely out-of-sample". Only
the ranking matters to sAUC, so `to_unit` turns any scorer into the [0, 1] `osd` column.

- from the predictions: `max_prob` (1 - max probability), `entropy`, `energy` (-logsumexp of
  the logits), `max_logit` (-max logit), `disagreement` (between an ensemble's models);
  `supercat_entropy` (the entropy of the supercategory head's probabilities: only runs
  trained with `supercat_weight > 0` have them; without them it is not simulated, and
  `fathom tune` records None for it, so it is never chosen);
- from the pooled features the training engine saves: `knn` (cosine distance to the k-th
  nearest reference image), `mahalanobis` (to the reference distribution, Ledoit-Wolf
  covariance), `domain` (a classifier that separates the reference images from the scored
  images themselves, cross-fitted so no image is scored by a model that saw it: it uses the
  eval images' own statistics, without any label, which is what catches a depth shift).

Choosing: a run trained with `holdout_categories` never sees those categories, so its OOF
images that hold one are out-of-sample for it. `simulate` scores every scorer there by sAUC.
The features of fold k's images come from fold k's model only, so a feature scorer compares
an image with reference images of the same fold (same feature space, also unseen by that
model): in simulation by cross-fitting two halves of the fold, on eval by using the fold's
OOF images as the reference for that fold's eval features.

The simulation has no background shift, so it cannot rate `domain`. `choose_scorer` adds a
label-free test instead: if a classifier tells the eval images from the training images
(cross-validated AUC clearly above 0.5), the eval set is shifted and `domain` joins the
choice; a simulated winner joins only if its sAUC is clearly above 0 (two standard errors).
Two chosen scorers are combined as `a+b`, the mean of their ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fathom.errors import FathomError
from fathom.metrics import sauc

PREDICTION_SCORERS = ("max_prob", "entropy", "energy", "max_logit")
FEATURE_SCORERS = ("knn", "mahalanobis", "domain")
SCORERS = (*PREDICTION_SCORERS, "disagreement", *FEATURE_SCORERS)
# scorers that need the optional `super_probs` of a prediction file (kept out of SCORERS, which
# callers loop over for any run)
SUPER_SCORERS = ("supercat_entropy",)


def max_prob(probs: np.ndarray) -> np.ndarray:
    """1 - the largest category probability: nothing the model knows is clearly there."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row's probabilities normalised to sum 1 (spread-out = unsure)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    p = p / p.sum(axis=1, keepdims=True)
    return -(p * np.log(p)).sum(axis=1)


def energy(logits: np.ndarray) -> np.ndarray:
    """Energy, -logsumexp(logits) (Liu et al. 2020): low total evidence means out-of-sample."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    return -(top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


def max_logit(logits: np.ndarray) -> np.ndarray:
    """-max logit (Hendrycks et al. 2022): unlike max_prob it does not saturate."""
    return -np.asarray(logits, dtype=np.float64).max(axis=1)


def disagreement(prob_stack: np.ndarray) -> np.ndarray:
    """Mean total-variation distance of each model's normalised row to the models' mean row.

    `prob_stack` is (M, N, C) for M models; models that agree on an image score 0.
    """
    p = np.clip(np.asarray(prob_stack, dtype=np.float64), 1e-12, None)
    if p.ndim != 3 or p.shape[0] < 2:
        raise ValueError(f"disagreement needs (M>=2, N, C) predictions, got shape {p.shape}")
    p = p / p.sum(axis=2, keepdims=True)
    return 0.5 * np.abs(p - p.mean(axis=0, keepdims=True)).sum(axis=2).mean(axis=0)


def supercat_entropy(super_probs: np.ndarray) -> np.ndarray:
    """Entropy of the supercategory probabilities (normalised rows): high when the image's
    supercategory is uncertain. 20 supercategories with many positives each are learnt more
    surely than 290 categories, so an unseen organism's confusion may show here first."""
    return entropy(super_probs)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_distance(reference: np.ndarray, query: np.ndarray, k: int = 5) -> np.ndarray:
    """Cosine distance from each query row to its k-th nearest reference row (Sun et al. 2022)."""
    from sklearn.neighbors import NearestNeighbors

    ref = _unit_rows(reference)
    k = max(1, min(k, len(ref)))
    dist, _ = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(_unit_rows(query))
    return dist[:, -1] ** 2 / 2.0  # squared euclidean on the unit sphere / 2 = cosine distance


def mahalanobis_distance(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance to the reference features' Gaussian (Ledoit-Wolf shrunk).

    Shrinkage because a fold holds a few hundred images and the features have hundreds of
    dimensions: the plain sample covariance would be singular.

    The same numbers (to rounding) as scikit-learn's `LedoitWolf().fit(reference)
    .mahalanobis(query)`, through the n x n Gram matrix of the n reference rows when n <= D:
    the shrunk covariance is b*I + (a/n) X^T X, inverted by Woodbury's identity. That costs
    O(n^2 D + n D N) where scikit-learn's D x D pseudo-inverse and N x D x D product cost
    O(D^3 + N D^2) (36 s per 2,048-d fold model pair of FathomNet's size).
    """
    ref = np.asarray(reference, dtype=np.float64)
    n, d = ref.shape
    loc = ref.mean(axis=0)
    x = ref - loc
    sq = np.einsum("ij,ij->i", x, x)
    # Ledoit-Wolf's shrinkage as sklearn.covariance.ledoit_wolf_shrinkage computes it, with
    # its two D x D sums taken through the Gram matrix: sum((X^2)^T X^2) = sum_i |x_i|^4 and
    # |X^T X|_F = |X X^T|_F
    gram = x @ x.T if n <= d else None
    mu = sq.sum() / n / d
    delta_ = float(np.sum(gram**2) if gram is not None else np.sum((x.T @ x) ** 2)) / n**2
    beta = (np.sum(sq**2) / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * sq.sum() / n + d * mu**2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    a, b = 1.0 - shrinkage, shrinkage * mu
    q = np.asarray(query, dtype=np.float64) - loc
    if b > 0 and gram is not None:
        # Woodbury: inv(b I + a/n X^T X) = (I - c X^T inv(I + c G) X) / b with c = a / (n b);
        # a Cholesky factor L of I + c G turns the middle term into |inv(L) X q|^2
        from scipy.linalg import solve_triangular

        c = a / (n * b)
        chol = np.linalg.cholesky(np.eye(n) + c * gram)
        proj = q @ solve_triangular(chol, x, lower=True).T  # the one N x D x n product
        return (np.einsum("ij,ij->i", q, q) - c * np.einsum("ij,ij->i", proj, proj)) / b
    # more rows than features, or no shrinkage: the D x D covariance's eigenvectors (and
    # for a singular one its pseudo-inverse, as scikit-learn's pinvh)
    lam, v = np.linalg.eigh(a * (x.T @ x) / n + b * np.eye(d))
    keep = lam > lam.max(initial=0.0) * d * np.finfo(np.float64).eps
    return (q @ v[:, keep]) ** 2 @ (1.0 / lam[keep])


DOMAIN_DIMS = 32  # principal components the domain classifier sees
DOMAIN_SAMPLE = 2048  # rows the components are fitted on


def _domain_classifier():
    """Tells one image set from another by their features; strongly regularised, so it
    picks up a shift shared by many images rather than single images."""
    from sklearn.linear_model import LogisticRegression

    # Newton steps: a few iterations on the reduced features, where lbfgs took ~100
    return LogisticRegression(
        C=0.05, max_iter=2000, class_weight="balanced", solver="newton-cholesky"
    )


def _one_blas_thread():
    """The domain classifier's products are thin (rows x DOMAIN_DIMS): a second BLAS thread
    brings nothing but its hand-offs, and on a busy 2-core machine it waits for a core at
    every one of them. At FathomNet's size `shift_auc` took 6.9 s with OpenBLAS's two threads
    and 0.24 s with one, the same AUC (issue 19)."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    return threadpool_limits(limits=1, user_api="blas")


def domain_features(
    reference: np.ndarray, query: np.ndarray, dims: int = DOMAIN_DIMS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Both sets standardised and projected on their top `dims` principal components.

    The domain classifier used to see every standardised feature: 75 cross-validated fits on
    ~12,000 x 2,048 features took minutes. A shift that many images share (a deeper
    background) lies along the directions the pooled rows vary most in, so the classifier on
    the top components tells the sets apart about as well (scripts/bench_post.py, tests).
    The scaler and components are fitted on a uniform sample of the pooled rows: whether a
    row helped fit them is then independent of its set, so being "in-sample" for the
    projection cannot itself tell the sets apart (it would if the reference rows alone, or
    a balanced sample, were used: every reference row would be in-sample, few query rows).
    """
    ref, qry = np.asarray(reference), np.asarray(query)
    rng = np.random.default_rng(seed)
    fit_rows = rng.permutation(len(ref) + len(qry))[:DOMAIN_SAMPLE]
    in_ref = fit_rows < len(ref)
    sample = np.concatenate([ref[fit_rows[in_ref]], qry[fit_rows[~in_ref] - len(ref)]])
    sample = sample.astype(np.float64)
    loc, scale = sample.mean(axis=0), sample.std(axis=0)
    scale[scale == 0] = 1.0
    sample = (sample - loc) / scale
    dims = max(1, min(dims, len(sample) - 1, sample.shape[1]))
    components = _top_components(sample, dims, rng)
    # project without materialising the standardised copies: (x - loc) / scale @ C^T
    weights = components.T / scale[:, None]
    offset = (loc / scale) @ components.T
    dtype = np.result_type(ref.dtype, np.float32)
    return tuple((x @ weights.astype(dtype)).astype(np.float64) - offset for x in (ref, qry))


def _top_components(x: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    """(dims, D) top principal directions of the rows `x`, by a randomized range finder
    (Halko et al. 2011) with two power iterations. Every step is a thin product or an eigen
    decomposition of a (dims + 10)-square matrix: with two cores shared, LAPACK's QR and SVD
    of the thin matrices (what scikit-learn's randomized PCA calls) took seconds."""
    x = x - x.mean(axis=0)
    width = min(dims + 10, *x.shape)

    def orthonormal(y):
        lam, v = np.linalg.eigh(y.T @ y)
        return y @ (v / np.sqrt(np.maximum(lam, lam.max(initial=0.0) * 1e-12 + 1e-300)))

    y = x @ rng.standard_normal((x.shape[1], width))
    for _ in range(2):
        y = x @ (x.T @ orthonormal(y))
    small = orthonormal(y).T @ x  # (width, D): x's rows seen in the found range
    lam, u = np.linalg.eigh(small @ small.T)
    top = np.argsort(lam)[::-1][:dims]
    return (u[:, top].T @ small) / np.sqrt(np.maximum(lam[top], 1e-300))[:, None]


def domain_score(
    reference: np.ndarray, query: np.ndarray, n_splits: int = 5, seed: int = 0
) -> np.ndarray:
    """P(query | features) from a logistic regression trained to tell query from reference.

    The query part of the training data is cross-fitted: each query row is scored by a model
    fitted without it, so the score reflects what separates the query set as a whole (a
    shifted background, unseen organisms), not memorisation of the row. The features are
    reduced once for all splits (`domain_features`; the projection uses no set membership).
    """
    with _one_blas_thread():
        return _domain_score(reference, query, n_splits, seed)


def _domain_score(reference, query, n_splits: int, seed: int) -> np.ndarray:
    ref, qry = domain_features(reference, query, seed=seed)
    n_splits = max(2, min(n_splits, len(qry)))
    part = np.random.default_rng(seed).permutation(len(qry)) % n_splits
    out = np.zeros(len(qry))
    for s in range(n_splits):
        train_q = qry[part != s]
        x = np.concatenate([ref, train_q])
        y = np.concatenate([np.zeros(len(ref)), np.ones(len(train_q))])
        model = _domain_classifier()
        model.fit(x, y)
        out[part == s] = model.predict_proba(qry[part == s])[:, 1]
    return out


FEATURE_FUNCS = {"knn": knn_distance, "mahalanobis": mahalanobis_distance, "domain": domain_score}


def to_unit(scores: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1]: a valid `osd` column with the same sAUC as `scores`."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return np.full(len(scores), 0.5)
    return (rankdata(scores) - 1.0) / (len(scores) - 1.0)


@dataclass(frozen=True)
class ModelRows:
    """One model's outputs on some rows: probs and logits (N, C), features (N, D), fold (N)."""

    probs: np.ndarray
    logits: np.ndarray
    features: np.ndarray
    fold: np.ndarray
    super_probs: np.ndarray | None = None  # (N, S): runs with the supercategory head only


def prediction_scores(
    name: str, probs: np.ndarray, logits: np.ndarray, prob_stack=None
) -> np.ndarray:
    """A prediction-based scorer by name (`disagreement` needs the (M, N, C) `prob_stack`)."""
    if name == "max_prob":
        return max_prob(probs)
    if name == "entropy":
        return entropy(probs)
    if name == "energy":
        return energy(logits)
    if name == "max_logit":
        return max_logit(logits)
    if name == "disagreement":
        return disagreement(prob_stack)
    raise ValueError(f"{name!r} is not a prediction scorer")


def simulate(
    models: Sequence[ModelRows], unseen: np.ndarray, seed: int = 0
) -> dict[str, float | None]:
    """sAUC of every scorer on held-out-category OOF rows (`unseen`: rows holding one).

    The scores are `simulate_scores`'; `disagreement` is None with fewer than two models.
    """
    scores = simulate_scores(models, unseen, seed)
    return {name: None if s is None else sauc(unseen, s) for name, s in scores.items()}


def simulate_scores(
    models: Sequence[ModelRows], unseen: np.ndarray, seed: int = 0
) -> dict[str, np.ndarray | None]:
    """Every scorer's [0, 1] score for each held-out-category OOF row.

    `models` are runs trained with the same `holdout_categories` and folds, aligned by row.
    Prediction scorers use the models' mean; feature scorers are cross-fitted per fold
    (reference = the in-sample rows of one half of the fold, scored = the other half) and
    averaged over models. Scores are ranked within each fold before pooling, since each fold
    has its own model and scale. `disagreement` is None with fewer than two models.
    """
    unseen = np.asarray(unseen, dtype=bool)
    fold = np.asarray(models[0].fold)
    rng = np.random.default_rng(seed)
    probs = np.mean([m.probs for m in models], axis=0)
    logits = np.mean([m.logits for m in models], axis=0)
    stack = np.stack([m.probs for m in models]) if len(models) > 1 else None
    pooled = {name: np.zeros(len(unseen)) for name in SCORERS}
    for f in np.unique(fold):
        rows = np.flatnonzero(fold == f)
        for name in (*PREDICTION_SCORERS, "disagreement"):
            if name == "disagreement" and stack is None:
                continue
            sub_stack = stack[:, rows] if stack is not None else None
            pooled[name][rows] = to_unit(
                prediction_scores(name, probs[rows], logits[rows], sub_stack)
            )
        half = rng.permutation(len(rows)) % 2
        for name in FEATURE_SCORERS:
            raw = np.zeros(len(rows))
            for h in (0, 1):
                ref_rows = rows[(half != h) & ~unseen[rows]]
                qry = half == h
                per_model = [
                    to_unit(FEATURE_FUNCS[name](m.features[ref_rows], m.features[rows[qry]]))
                    for m in models
                ]
                raw[qry] = np.mean(per_model, axis=0)
            pooled[name][rows] = to_unit(raw)
    out: dict[str, np.ndarray | None] = dict(pooled)
    if stack is None:
        out["disagreement"] = None
    supercat = _supercat_simulated(models, fold)
    if supercat is not None:  # runs without super_probs: absent, as before (tune records None)
        out["supercat_entropy"] = supercat
    return out


def _supercat_simulated(models: Sequence[ModelRows], fold: np.ndarray) -> np.ndarray | None:
    """`supercat_entropy` of the models' mean super_probs, ranked within each fold; None
    unless every model has super_probs."""
    if any(m.super_probs is None for m in models):
        return None
    raw = supercat_entropy(np.mean([m.super_probs for m in models], axis=0))
    out = np.zeros(len(raw))
    for f in np.unique(fold):
        out[fold == f] = to_unit(raw[fold == f])
    return out


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil's (1982) standard error of an AUC with n_pos positives, n_neg negatives."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return float(np.sqrt(max(var, 0.0)))


def shift_auc(reference: np.ndarray, query: np.ndarray, n_splits: int = 5, seed: int = 0) -> float:
    """Cross-validated AUC of a classifier telling `query` rows from `reference` rows.

    About 0.5 when the query set is drawn like the reference; clearly above when part of it
    is shifted (a deeper background, other lighting). No label of either set is used.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    with _one_blas_thread():
        ref, qry = domain_features(reference, query, seed=seed)
        x = np.concatenate([ref, qry])
        y = np.concatenate([np.zeros(len(ref)), np.ones(len(qry))])
        model = _domain_classifier()
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def choose_scorer(
    simulated: dict[str, float | None],
    n_unseen: int,
    n_seen: int,
    shift: float | None = None,
    n_reference: int = 0,
    n_query: int = 0,
) -> tuple[str, str]:
    """The osd scorer to use, and why, from the simulation and the label-free shift test.

    - a simulated scorer counts only if its sAUC is two standard errors above 0;
    - `domain` counts if the eval set is shifted: `shift` (see `shift_auc`) three standard
      errors above 0.5 and at least 0.55;
    - both count: `domain+<best>`; one: that one; none: the best simulated scorer anyway.
    """
    scored = {k: v for k, v in simulated.items() if v is not None and k != "domain"}
    best = max(scored, key=scored.get) if scored else None
    best_auc = (scored[best] + 1) / 2 if best else 0.5
    sauc_se = 2 * auc_standard_error(best_auc, max(n_unseen, 1), max(n_seen, 1))  # sAUC = 2 AUC - 1
    significant = bool(best) and scored[best] > 2 * sauc_se
    shifted = shift is not None and shift >= 0.55
    if shifted and n_reference and n_query:
        shifted = shift - 0.5 > 3 * auc_standard_error(shift, n_query, n_reference)
    if shifted and significant:
        return f"domain+{best}", (
            f"eval set shifted (train-vs-eval AUC {shift:.3f}) and {best} beats chance on "
            f"held-out categories (sAUC {scored[best]:.3f})"
        )
    if shifted:
        why = f"eval set shifted (train-vs-eval AUC {shift:.3f}); "
        why += (
            f"no scorer beats chance on held-out categories (best {best} {scored[best]:.3f})"
            if best
            else "no simulation"
        )
        return "domain", why
    if best is None:
        raise ValueError("no simulated scorer and no shift: nothing to choose from")
    shift_text = (
        "no shift test" if shift is None else f"no clear shift (train-vs-eval AUC {shift:.3f})"
    )
    return best, f"best on held-out categories (sAUC {scored[best]:.3f}); {shift_text}"


def is_scorer(name: str) -> bool:
    """A scorer name, or several joined by `+` (the mean of their ranks)."""
    return all(part in SCORERS or part in SUPER_SCORERS for part in name.split("+"))


def eval_scores(
    name: str,
    probs: np.ndarray,
    logits: np.ndarray,
    prob_stack: np.ndarray | None = None,
    fold_features: Sequence[np.ndarray] = (),
    fold_references: Sequence[np.ndarray] = (),
    super_probs: np.ndarray | None = None,
) -> np.ndarray:
    """One scorer on the eval images, as a [0, 1] osd column.

    Prediction scorers read the ensemble's eval `probs`/`logits` (and the models' `prob_stack`
    for disagreement). Feature scorers pair each fold model's eval features with that fold's
    OOF features as the reference (`fold_features[i]` with `fold_references[i]`, any number
    of models x folds) and average the ranks. `a+b` averages the ranks of scorers a and b.
    """
    if "+" in name:
        parts = [
            eval_scores(
                part, probs, logits, prob_stack, fold_features, fold_references, super_probs
            )
            for part in name.split("+")
        ]
        return to_unit(np.mean(parts, axis=0))
    if name in FEATURE_FUNCS:
        if not fold_features:
            raise ValueError(f"scorer {name!r} needs features")
        ranks = [
            to_unit(FEATURE_FUNCS[name](ref, feat))
            for feat, ref in zip(fold_features, fold_references, strict=True)
        ]
        return to_unit(np.mean(ranks, axis=0))
    if name == "supercat_entropy":
        if super_probs is None:
            raise FathomError(
                "osd scorer supercat_entropy needs the eval predictions' `super_probs` "
                "(a run trained with supercat_weight > 0)"
            )
        return to_unit(supercat_entropy(super_probs))
    return to_unit(prediction_scores(name, probs, logits, prob_stack))


def choose_holdout_categories(
    categories: Sequence[Sequence[int]], share: float = 0.2, skip_top: int = 3, seed: int = 0
) -> tuple[int, ...]:
    """Categories to hold out so that about `share` of the training images hold one.

    The `skip_top` most frequent categories are never held out (losing one would gut the
    training set); the rest are added in a seeded random order while the share stays below
    the target.
    """
    counts: dict[int, int] = {}
    for row in categories:
        for c in row:
            counts[int(c)] = counts.get(int(c), 0) + 1
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    pool = np.random.default_rng(seed).permutation(ranked[skip_top:])
    chosen: set[int] = set()
    rows = [set(map(int, r)) for r in categories]
    covered = np.zeros(len(rows), dtype=bool)
    for c in pool:
        hit = np.array([int(c) in r for r in rows])
        if (covered | hit).mean() <= share:
            chosen.add(int(c))
            covered |= hit
    return tuple(sorted(chosen))


# --- the osd scorer's honest estimate


def crossfit_choice_sauc(
    scores: dict[str, np.ndarray], unseen: np.ndarray, seed: int = 0
) -> float | None:
    """The sAUC of "take the best scorer" measured on rows that did not choose it.

    The held-out rows are split in two halves (stratified by `unseen`); on each, the scorer
    chosen on the other half is scored; the estimate is the mean. The best scorer's own sAUC
    on all rows is biased upwards (it is the maximum of several noisy figures); this is not.
    None when a half lacks in- or out-of-sample rows.
    """
    unseen = np.asarray(unseen, dtype=bool)
    rng = np.random.default_rng(seed)
    half = np.empty(len(unseen), dtype=int)
    for value in (True, False):
        idx = np.flatnonzero(unseen == value)
        half[idx] = rng.permutation(len(idx)) % 2
    out = []
    for h in (0, 1):
        choose, score = half != h, half == h
        if len(set(unseen[choose])) < 2 or len(set(unseen[score])) < 2:
            return None
        best = max(scores, key=lambda name: sauc(unseen[choose], scores[name][choose]))
        out.append(sauc(unseen[score], scores[best][score]))
    return float(np.mean(out))


def osd_estimate(scorer: str, simulated: dict, crossfit: float | None, chosen: bool):
    """(estimated sAUC or None, how it was obtained) for the scorer a submission uses."""
    if "domain" in scorer.split("+"):
        return None, (
            "none: `domain` rates the eval images' own shift, which the held-out-category "
            "simulation has no way to reproduce"
        )
    if chosen:
        if crossfit is None:
            return (
                None,
                "none: too few held-out rows to score the choice on rows that did not make it",
            )
        return (
            crossfit,
            "cross-fitted: chosen on one half of the held-out rows, scored on the other",
        )
    if simulated.get(scorer) is None:
        return None, "none: this scorer was not simulated"
    return simulated[
        scorer
    ], "simulated sAUC of a scorer named by the user (not chosen on these rows)"
