"""Every metric against values worked out by hand on one small case.

Four classes, six images; class 3 occurs in neither the truth nor the predictions.
    labels      0    0    0    1    1    2
    predicted   0    0    2    1    2    0
    top-3 hit   y    y    y    y    y    n     (image 5's top 3 are 0, 1, 3)
Per class: 0: P 2/3 R 2/3 F1 2/3;  1: P 1 R 1/2 F1 2/3;  2: P 0 R 0 F1 0.
"""

import numpy as np
import pytest
from PIL import Image

from fathom import metrics as cm
from fathom import plots

PROBS = np.array(
    [
        [0.60, 0.20, 0.15, 0.05],
        [0.50, 0.30, 0.15, 0.05],
        [0.10, 0.05, 0.50, 0.35],
        [0.20, 0.60, 0.15, 0.05],
        [0.04, 0.20, 0.70, 0.06],
        [0.50, 0.30, 0.01, 0.19],
    ]
)
LABELS = [0, 0, 0, 1, 1, 2]
NAMES = ["bream", "carp", "perch", "tench"]


def test_accuracy_and_top3():
    assert cm.accuracy(PROBS, LABELS) == pytest.approx(3 / 6)
    assert cm.top_k_accuracy(PROBS, LABELS, 3) == pytest.approx(5 / 6)
    assert cm.top_k_accuracy(PROBS, LABELS, 1) == pytest.approx(3 / 6)
    assert cm.top_k_accuracy(PROBS, LABELS, 4) == 1.0


def test_macro_scores_skip_a_class_never_seen_nor_predicted():
    scores = cm.macro_precision_recall_f1(PROBS, LABELS)
    assert scores["macro_precision"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert scores["macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert cm.summary(PROBS, LABELS)["n"] == 6


def test_per_class_report():
    report = cm.per_class_report(PROBS, LABELS, NAMES)
    assert report["class"].tolist() == NAMES
    np.testing.assert_allclose(report["precision"], [2 / 3, 1, 0, 0])
    np.testing.assert_allclose(report["recall"], [2 / 3, 1 / 2, 0, 0])
    np.testing.assert_allclose(report["f1"], [2 / 3, 2 / 3, 0, 0])
    assert report["support"].tolist() == [3, 2, 1, 0]
    assert report["predicted"].tolist() == [3, 1, 2, 0]


def test_confusion_matrix_rows_are_true_classes():
    expected = [[2, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(cm.confusion(PROBS, LABELS), expected)


def test_most_confused_orders_by_count_then_row_major():
    matrix = np.array([[5, 3, 0], [1, 4, 0], [0, 2, 6]])
    pairs = cm.most_confused(matrix, ["a", "b", "c"])
    assert list(zip(pairs["true"], pairs["predicted"], pairs["count"], strict=True)) == [
        ("a", "b", 3),
        ("c", "b", 2),
        ("b", "a", 1),
    ]
    np.testing.assert_allclose(pairs["share"], [3 / 8, 2 / 8, 1 / 5])
    assert len(cm.most_confused(matrix, ["a", "b", "c"], top=1)) == 1
    ties = cm.most_confused(cm.confusion(PROBS, LABELS), NAMES)
    assert list(zip(ties["true"], ties["predicted"], strict=True)) == [
        ("bream", "perch"),
        ("carp", "perch"),
        ("perch", "bream"),
    ]


def test_confusion_png(tmp_path):
    path = plots.plot_confusion_matrix(cm.confusion(PROBS, LABELS), NAMES, tmp_path / "cm.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        cm.accuracy(PROBS, LABELS[:-1])
    with pytest.raises(ValueError):
        cm.accuracy(PROBS, [0, 0, 0, 1, 1, 4])
