import pandas as pd
import pytest

from fathom.data.coco import open_competition, read_split
from fathom.data.folds import assign_folds, fold_spread, read_folds
from fathom.errors import FathomError


@pytest.fixture(scope="module")
def train(small_comp):
    return read_split(open_competition(small_comp), "train")


def test_every_image_in_exactly_one_fold_and_seeded(train):
    folds = assign_folds(train, 4, seed=1)
    assert list(folds["id"]) == list(train["id"])
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3]
    assert folds["fold"].value_counts().max() - folds["fold"].value_counts().min() <= 6
    assert folds.equals(assign_folds(train, 4, seed=1))
    assert not folds.equals(assign_folds(train, 4, seed=2))


def test_stratified_spreads_categories_better_than_plain_kfold(train):
    strat = fold_spread(train, assign_folds(train, 4, seed=0))
    plain = fold_spread(train, assign_folds(train, 4, seed=0, method="kfold"))
    assert strat["categories"] == plain["categories"] > 0
    assert strat["share_std"] < plain["share_std"]
    assert strat["missing_from_a_fold"] <= plain["missing_from_a_fold"]


def test_bad_arguments(train):
    with pytest.raises(FathomError):
        assign_folds(train, 1)
    with pytest.raises(FathomError):
        assign_folds(train.head(3), 5)


def test_folds_cli_writes_reports_and_refuses_overwrite(run_cli, small_comp, tmp_path, train):
    out = tmp_path / "folds"
    code, stdout, _ = run_cli("folds", small_comp, "--n-splits", 3, "--seed", 5, "--out-dir", out)
    assert code == 0
    assert "MultilabelStratifiedKFold" in stdout and "KFold (shuffled)" in stdout
    folds = read_folds(out / "mlskf3.csv", train)
    assert folds.equals(assign_folds(train, 3, seed=5))
    code, _, err = run_cli("folds", small_comp, "--n-splits", 3, "--out-dir", out)
    assert code == 2 and "already exists" in err


def test_read_folds_checks_coverage(tmp_path, train):
    path = tmp_path / "f.csv"
    pd.DataFrame({"id": train["id"][:-1], "fold": 0}).to_csv(path, index=False)
    with pytest.raises(FathomError, match="have no fold"):
        read_folds(path, train)
