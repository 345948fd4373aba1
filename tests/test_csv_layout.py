"""The train.csv layout: detection of the four label formats, images with or without their
extension, competition.toml, and one-line errors that name the file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fathom.config import TrainConfig
from fathom.data import open_dataset
from fathom.data.csvtable import adopt_task, open_layout
from fathom.errors import FathomError


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, format="PNG")


def make_comp(
    root: Path,
    train: str,
    sample: str,
    toml: str = "",
    train_dir="train_images",
    test_dir="test_images",
    ext=".png",
) -> Path:
    """A competition folder from the text of its CSVs; an image for every id (the id plus
    `ext` unless it has an extension already)."""
    root.mkdir(parents=True)
    (root / "train.csv").write_text(train)
    (root / "sample_submission.csv").write_text(sample)
    if toml:
        (root / "competition.toml").write_text(toml)
    for text, folder in ((train, train_dir), (sample, test_dir)):
        for line in text.strip().splitlines()[1:]:
            uid = line.split(",")[0]
            _img(root / folder / (uid if Path(uid).suffix else uid + ext))
    return root


CASSAVA = "image_id,label\na.jpg,0\nb.jpg,3\nc.jpg,3\nd.jpg,10\n"
CASSAVA_SUB = "image_id,label\nx.jpg,4\ny.jpg,4\n"


def test_single_labels_with_extension_in_the_id(tmp_path):
    root = make_comp(tmp_path / "c", CASSAVA, CASSAVA_SUB, 'metric = "accuracy"\n')
    ds = open_dataset(root)
    assert ds.kind == "csv" and ds.task == "singlelabel"
    lay = ds.layout()
    assert lay.format == "single" and lay.metric == "accuracy"
    assert lay.classes == ("0", "3", "10")  # numeric order: label 10 after 3
    train = ds.split("train")
    assert list(train["id"]) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert list(train["categories"]) == [(0,), (1,), (1,), (2,)]
    assert train["path"][0].endswith("train_images/a.jpg")
    ev = ds.split("eval")
    assert list(ev["id"]) == ["x.jpg", "y.jpg"] and all(c == () for c in ev["categories"])


def test_label_sets_and_ids_without_extension(tmp_path):
    train = "image,labels\nr1,scab\nr2,rust scab\nr3,healthy\n"
    root = make_comp(tmp_path / "c", train, "image,labels\nt1,healthy\n", ext=".jpg")
    lay = open_layout(root)
    assert lay.format == "set" and lay.metric == "mean_f1"  # the format's default
    assert lay.metric_source == "default for set"
    ds = open_dataset(root)
    assert ds.task == "multilabel"
    assert list(ds.split("train")["categories"]) == [(2,), (1, 2), (0,)]
    assert ds.split("train")["path"][0].endswith("train_images/r1.jpg")


def test_onehot_columns_in_one_images_folder(tmp_path):
    train = "image_id,healthy,multiple_diseases,rust,scab\nTrain_0,1,0,0,0\nTrain_1,0,0,1,0\n"
    sample = "image_id,healthy,multiple_diseases,rust,scab\nTest_0,0.25,0.25,0.25,0.25\n"
    root = make_comp(tmp_path / "c", train, sample, train_dir="images", test_dir="images")
    lay = open_layout(root)
    assert lay.format == "onehot" and lay.metric == "auc"
    assert lay.classes == ("healthy", "multiple_diseases", "rust", "scab")
    assert lay.task == "singlelabel"  # one 1 per row: a softmax head
    assert list(open_dataset(root).split("train")["categories"]) == [(0,), (2,)]


def test_onehot_rows_with_two_classes_train_a_sigmoid_head(tmp_path):
    train = "image_id,a,b\nr0,1,1\nr1,0,1\n"
    root = make_comp(tmp_path / "c", train, "image_id,a,b\nt0,0.5,0.5\n")
    assert open_layout(root).task == "multilabel"


def test_single_labels_with_a_new_token_train_a_sigmoid_head(tmp_path):
    train = "image_id,label\na.jpg,0\nb.jpg,unknown\nc.jpg,1\n"
    root = make_comp(tmp_path / "c", train, CASSAVA_SUB, 'new_label = "unknown"\n')
    lay = open_layout(root)
    assert lay.format == "single" and lay.classes == ("0", "1")
    assert lay.task == "multilabel"  # a softmax head cannot say "none of these"
    assert list(open_dataset(root).split("train")["categories"]) == [(0,), (), (1,)]


def test_ranked_with_a_new_token(tmp_path):
    train = "Image,Id\na.jpg,w_1\nb.jpg,new_whale\nc.jpg,w_2\n"
    sample = "Image,Id\nt.jpg,new_whale w_1 w_2 w_3 w_4\n"
    toml = 'metric = "map@5"\nnew_label = "new_whale"\n'
    root = make_comp(tmp_path / "c", train, sample, toml, train_dir="train", test_dir="test")
    lay = open_layout(root)
    assert lay.format == "ranked" and lay.k == 5 and lay.new_label == "new_whale"
    assert lay.classes == ("w_1", "w_2") and lay.task == "multilabel"
    assert list(open_dataset(root).split("train")["categories"]) == [(0,), (), (1,)]


def test_happywhale_names_its_label_column_and_a_token_training_never_holds(tmp_path):
    train = "image,species,individual_id\na.jpg,beluga,i1\nb.jpg,beluga,i2\nc.jpg,orca,i1\n"
    sample = "image,predictions\nt.jpg,37c7aba965a5 114207cab555 a6e325d8e924\n"
    toml = 'metric = "map@5"\nnew_label = "new_individual"\nlabel_column = "individual_id"\n'
    lay = open_layout(make_comp(tmp_path / "c", train, sample, toml))
    assert (lay.format, lay.k, lay.label_columns, lay.classes) == (
        "ranked",
        5,
        ("individual_id",),
        ("i1", "i2"),
    )
    assert lay.submission_columns == ("image", "predictions")


def test_ranked_is_read_off_the_sample_submission(tmp_path):
    train = "Image,Id\na.jpg,w_1\nb.jpg,w_2\n"
    root = make_comp(tmp_path / "c", train, "Image,Id\nt.jpg,w_1 w_2 w_1\n")
    lay = open_layout(root)
    assert lay.format == "ranked" and lay.metric == "map@3" and lay.k == 3


@pytest.mark.parametrize(
    "train, sample, toml, message",
    [
        (
            "image_id,a,b\nr0,1,2\n",
            "image_id,a,b\nt0,0,0\n",
            "",
            "train.csv, line 2, column b: '2' is not 0 or 1",
        ),
        (
            "image_id,label\nr0,1\nr1, \n",
            CASSAVA_SUB,
            "",
            "train.csv, line 3, column label: empty label",
        ),
        (
            "image_id,label\nr0,1\nr0,2\n",
            CASSAVA_SUB,
            "",
            "train.csv, line 3, column image_id: id r0 appears again",
        ),
        (CASSAVA, CASSAVA_SUB, 'metric = "rmse"\n', "unknown metric 'rmse'"),
        (
            CASSAVA,
            CASSAVA_SUB,
            'metric = "auc"\n',
            "metric 'auc' does not score a single submission",
        ),
        (
            CASSAVA,
            CASSAVA_SUB,
            'metrc = "accuracy"\n',
            "competition.toml, line 1: unknown key 'metrc'",
        ),
        (
            "image_id,label,other\nr0,1,x\n",
            CASSAVA_SUB,
            "",
            "several columns could hold the labels",
        ),
        (
            "Image,Id\na,w_1\nb,w_1 w_2\n",
            "Image,Id\nt,w_1 w_2\n",
            'metric = "map@5"\n',
            "line 3, column Id: 'w_1 w_2' holds 2 labels",
        ),
    ],
)
def test_bad_files_are_named_with_line_and_column(tmp_path, train, sample, toml, message):
    root = make_comp(tmp_path / "c", train, sample, toml)
    with pytest.raises(FathomError, match=None) as exc:
        open_dataset(root).split("train")
    assert message in str(exc.value)


def test_a_missing_image_names_the_csv_line_and_column(tmp_path):
    root = make_comp(tmp_path / "c", CASSAVA, CASSAVA_SUB)
    (root / "train_images" / "c.jpg").unlink()
    with pytest.raises(
        FathomError, match=r"train.csv, line 4, column image_id: image c.jpg not found"
    ):
        open_dataset(root).split("train")
    (root / "test_images" / "y.jpg").unlink()
    with pytest.raises(FathomError, match=r"sample_submission.csv, line 3, column image_id"):
        open_dataset(root).split("eval")


def test_train_csv_without_sample_submission_says_so(tmp_path):
    root = make_comp(tmp_path / "c", CASSAVA, CASSAVA_SUB)
    (root / "sample_submission.csv").unlink()
    with pytest.raises(FathomError, match="no sample_submission.csv beside it"):
        open_dataset(root)


def test_image_folders_named_in_competition_toml(tmp_path):
    toml = 'train_images = "tr"\ntest_images = "te"\n'
    root = make_comp(tmp_path / "c", CASSAVA, CASSAVA_SUB, toml, train_dir="tr", test_dir="te")
    assert open_layout(root).train_dir == root / "tr"
    (root / "competition.toml").write_text('train_images = "nope"\n')
    with pytest.raises(FathomError, match="train_images 'nope': no such folder"):
        open_layout(root)


def test_train_adopts_the_task_and_a_loss_of_the_format(tmp_path):
    root = make_comp(tmp_path / "c", CASSAVA, CASSAVA_SUB)
    cfg = TrainConfig(competition=str(root))  # multilabel + bce by default
    adopted = adopt_task(cfg)
    assert (adopted.task, adopted.loss) == ("singlelabel", "ce")
    assert adopt_task(cfg, ["task=multilabel"]) is cfg  # the user's own choice stands
    assert adopt_task(TrainConfig(competition=str(tmp_path))).task == "multilabel"


def test_inspect_shows_what_was_detected(tmp_path, run_cli):
    train = "Image,Id\na.jpg,w_1\nb.jpg,new_whale\nc.jpg,w_1\n"
    toml = 'metric = "map@5"\nnew_label = "new_whale"\n'
    root = make_comp(tmp_path / "c", train, "Image,Id\nt.jpg,new_whale w_1\n", toml)
    code, out, err = run_cli("inspect", root)
    assert code == 0, err
    assert "format: ranked (task multilabel: sigmoid head)" in out
    assert "new label: new_whale (1 training images hold it)" in out
    assert "metric: map@5 (competition.toml)" in out
    assert "most frequent: w_1 (2)" in out
    (root / "train_images" / "a.jpg").unlink()
    code, out, err = run_cli("inspect", root)
    assert code == 2 and "train.csv, line 2, column Image: image a.jpg not found" in err
