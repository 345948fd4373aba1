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


@pytest.mark.parametrize(
    "rows, n_folds, message",
    [
        (["a,0", "b,0.5"], None, "line 3: fold '0.5' is not a whole number"),
        (["a,0", "b,"], None, "line 3: fold '' is not a whole number"),
        (["a,x", "b,1"], None, "line 2: fold 'x' is not a whole number"),
        (["a,0", "b,-2"], None, "line 3: fold -2 is below -1"),
        (["a,0", "b,5"], 5, "holds fold(s) 5 but n_folds is 5"),
    ],
)
def test_read_folds_refuses_folds_whose_images_would_never_be_validated(
    tmp_path, rows, n_folds, message
):
    path = tmp_path / "f.csv"
    path.write_text("id,fold\n" + "\n".join(rows) + "\n")
    with pytest.raises(FathomError) as err:
        read_folds(path, n_folds=n_folds)
    assert message in str(err.value) and str(path) in str(err.value)


def test_read_folds_refuses_ids_of_another_competition(tmp_path):
    import pandas as pd

    path = tmp_path / "f.csv"
    path.write_text("id,fold\na,0\nb,1\nzz,1\n")
    table = pd.DataFrame({"id": ["a", "b"]})
    with pytest.raises(FathomError, match="1 id\\(s\\) are not training images.*zz"):
        read_folds(path, table)
    assert read_folds(path, None, n_folds=2)["fold"].tolist() == [0, 1, 1]
