import numpy as np
import pytest

from fathom.report import per_category_ap, supercategory_confusions


def test_per_category_ap_is_one_for_a_perfect_column_and_nan_without_positives():
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
    probs = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.1], [0.8, 0.2, 0.3], [0.1, 0.9, 0.4]])
    ap = per_category_ap(probs, targets)
    assert ap[0] == pytest.approx(1.0)
    assert ap[1] == pytest.approx((1 / 2 + 2 / 3) / 2)  # positives ranked 2nd and 3rd
    assert np.isnan(ap[2])


def test_supercategory_confusions_count_only_wrong_top1():
    names = ["Fish", "Crab"]
    supercat_of = np.array([0, 0, 1])  # categories 0,1 are fish, 2 is a crab
    targets = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=float)
    probs = np.array(
        [
            [0.9, 0.1, 0.0],  # right: not counted
            [0.1, 0.2, 0.7],  # fish taken for a crab
            [0.6, 0.1, 0.2],  # crab taken for a fish
            [0.9, 0.1, 0.1],  # fish + crab image, top-1 a wrong fish: counts for both true sides
        ]
    )
    conf = supercategory_confusions(probs, targets, supercat_of, names)
    got = {(t, p): n for t, p, n in conf.itertuples(index=False)}
    assert got == {("Fish", "Crab"): 1, ("Crab", "Fish"): 2, ("Fish", "Fish"): 1}
    assert conf["images"].iloc[0] == 2  # most frequent first
