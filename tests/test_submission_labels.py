import numpy as np
import pandas as pd
import pytest

from fathom.errors import FathomError
from fathom.score import score_labels
from fathom.submission import (
    make_label_submission,
    validate_labels,
    write_label_submission,
)

NAMES = ["Carp", "Perch", "Tilapia"]
IDS = ["test/a", "test/b", "test/c"]


def test_make_picks_the_most_probable_class_name():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [0.0, 0.1, 0.9]])
    sub = make_label_submission(IDS, probs, NAMES)
    assert sub.columns.tolist() == ["id", "label"]
    assert sub["label"].tolist() == ["Perch", "Carp", "Tilapia"]  # a tie goes to the lower index
    assert validate_labels(sub, IDS, NAMES) == []


def test_every_problem_is_reported_with_its_line():
    sub = pd.DataFrame({"id": ["test/a", "test/a", "test/x"], "label": ["Carp", "perch", ""]})
    problems = [str(p) for p in validate_labels(sub, IDS, NAMES)]
    assert problems == [
        "line 3: id test/a appears again (first on line 2)",
        "line 3: label 'perch' is not a class (did you mean 'Perch'?)",
        "line 4: id 'test/x' is not a test image",
        "line 4: label is empty",
        "2 test image(s) missing, e.g. test/b",
    ]
    header = validate_labels(sub.rename(columns={"label": "class"}), IDS, NAMES)
    assert [str(p) for p in header] == ["line 1: header must be `id,label`, got `id,class`"]


def test_write_validates_and_never_overwrites(tmp_path):
    sub = pd.DataFrame({"id": IDS, "label": ["Carp", "Perch", "Carp"]})
    path = write_label_submission(tmp_path / "s.csv", sub, IDS, NAMES, manifest={"run": "runs/x"})
    assert pd.read_csv(path).equals(sub)
    assert (tmp_path / "s.json").read_text().count("runs/x") == 1
    with pytest.raises(FathomError, match="already exists"):
        write_label_submission(path, sub, IDS, NAMES)
    with pytest.raises(FathomError, match="fail validation"):
        write_label_submission(tmp_path / "t.csv", sub.iloc[:2], IDS, NAMES)
    assert not (tmp_path / "t.csv").exists()


def test_score_counts_a_missing_image_as_wrong():
    truth = pd.DataFrame({"id": IDS, "label": ["Carp", "Perch", "Perch"]})
    sub = pd.DataFrame({"id": ["test/a", "test/b"], "label": ["Carp", "Carp"]})
    result = score_labels(sub, truth)
    assert result["accuracy"] == pytest.approx(1 / 3)
    # Carp: P 1/2 R 1 F1 2/3; Perch: P 0 R 0 F1 0 -> macro 1/3
    assert result["macro_f1"] == pytest.approx(1 / 3)
