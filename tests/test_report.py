import json
import re

import numpy as np
import pandas as pd
import pytest
from _fake_runs import cli, three_runs

from fathom.report import per_category_ap, supercategory_confusions, worst_mistakes


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
    # 3 wrong images make 4 counts: they are (image, true supercategory) pairs, named so
    assert list(conf.columns) == ["true", "predicted", "pairs"] and conf["pairs"].sum() == 4
    assert conf["pairs"].iloc[0] == 2  # most frequent first


def test_worst_mistakes_are_the_confidently_wrong_first():
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.95, 0.05], [0.2, 0.8]])
    assert worst_mistakes(probs, targets).tolist() == [2, 1]  # right rows 0 and 3 left out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small synthetic competition, two runs, a held-out-category run and their tuning."""
    root = tmp_path_factory.mktemp("report")
    world = three_runs(root)
    tune = root / "tune.json"
    assert cli("tune", world["good"], world["weak"], "--holdout", world["held"], "--out", tune) == 0
    return {**world, "tune": tune}


def _sections(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_report_opens_with_a_summary_of_runs_date_ensemble_and_osd_choice(world, tmp_path):
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", world["tune"], "--out", out) == 0
    page = (out / "index.html").read_text()
    tuning = json.loads(world["tune"].read_text())
    assert _sections(page)[0] == "Summary"
    summary = page.split("<h2>Summary</h2>")[1].split("</section>")[0]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", summary)
    assert "good" in summary and "weak" in summary and "<td>fake</td>" in summary  # the model
    method = {"mean": "plain mean", "rank": "rank average", "weighted": "fitted weights"}
    assert method[tuning["ensemble"]["method"]] + ": the best OOF" in summary
    assert tuning["osd"]["scorer"] in summary and tuning["osd"]["why"][:30] in summary


def test_report_galleries_embed_thumbnails_by_relative_path(world, tmp_path):
    from PIL import Image

    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", world["tune"], "--out", out) == 0
    page = (out / "index.html").read_text()
    for title in ("Sample training images", "Worst mistakes"):
        assert title in _sections(page)
    assert "Most out-of-sample by" in page
    thumbs = re.findall(r'<img src="(thumbs/[^"]+)"', page)
    assert len(thumbs) >= 3 * 12 - 12  # samples and mistakes full, out-of-sample too
    for src in thumbs:
        assert not src.startswith("/")  # moves with its folder
        with Image.open(out / src) as im:
            assert im.format == "PNG" and max(im.size) <= 160
    assert "true:" in page and "guessed:" in page and "osd " in page


def test_report_labels_confusion_counts_as_pairs(world, tmp_path):
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", world["tune"], "--out", out) == 0
    page = (out / "index.html").read_text()
    part = page.split("Top confusions between supercategories")[1]
    assert "(image, true supercategory) pairs" in part and "<th>pairs</th>" in part


def test_report_draws_the_chosen_scorers_histogram(world, tmp_path):
    tuning = json.loads(world["tune"].read_text())
    tuning["osd"]["scorer"] = "knn"  # a simulated scorer (the fake eval set's shift picks domain)
    tuning["osd"]["why"] = "test: knn chosen"
    tune = world["root"] / "tune-knn.json"
    tune.write_text(json.dumps(tuning))
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", tune, "--out", out) == 0
    page = (out / "index.html").read_text()
    assert 'src="osd_chosen.png"' in page and (out / "osd_chosen.png").is_file()
    assert "Most out-of-sample by knn" in page


def test_report_draws_a_chosen_combination_from_its_parts(world, tmp_path):
    tuning = json.loads(world["tune"].read_text())
    tuning["osd"]["scorer"] = "domain+knn"  # a combination tune may choose
    tune = world["root"] / "tune-combo.json"
    tune.write_text(json.dumps(tuning))
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", tune, "--out", out) == 0
    page = (out / "index.html").read_text()
    # its parts' simulated ranks, averaged as tune scores the eval images with it
    assert 'src="osd_chosen.png"' in page and "Most out-of-sample by domain+knn" in page
    assert "held-out categories do not reproduce" in page


def test_a_one_epoch_loss_panel_draws_points(monkeypatch, tmp_path):
    from fathom import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path.name)
    one = pd.DataFrame({"epoch": [1], "train_loss": [0.7], "val_loss": [0.5], "val_map20": [0.1]})
    plots.plot_training_curves({"fold0": one}, "run", tmp_path / "c.png")
    lines = figures[0].axes[0].get_lines()
    assert len(lines) == 2 and all(line.get_marker() not in (None, "", "None") for line in lines)


def _fish_run(tmp_path):
    """A three-class folder dataset (train/val/test) and one trained-looking run on it."""
    from folder_fixtures import make_dataset
    from test_folder_flow import _run as folder_run

    classes = ("carp", "perch", "tilapia")
    fish = make_dataset(
        tmp_path / "fish",
        {
            "train": {"carp": 6, "perch": 3, "tilapia": 2},
            "val": {c: 2 for c in classes},
            "test": {c: 1 for c in classes},
        },
    )
    return folder_run(tmp_path / "runs", fish, "good", 0.3, 0)


def test_a_folder_dataset_report_speaks_of_classes_not_supercategories(tmp_path, run_cli):
    good = _fish_run(tmp_path)
    assert run_cli("oof", good)[0] == 0
    code, _, err = run_cli("report", good, "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    assert "supercategor" not in page.lower()
    assert "Top confusions between classes" in page and "<th>images</th>" in page
    text = re.sub(r"<[^>]+>", " ", page)  # what a reader sees, not the file names
    assert "Class frequency" in text and "categor" not in text.lower()
    assert (tmp_path / "report" / "class_confusions.png").is_file()
    assert "single-label folder dataset" in page and "Sample training images" in page


def test_report_says_when_the_chosen_scorer_has_no_simulated_scores(world, tmp_path):
    tuning = json.loads(world["tune"].read_text())
    tuning["osd"]["scorer"] = "supercat_entropy"  # these runs have no supercategory head
    tune = world["root"] / "tune-super.json"
    tune.write_text(json.dumps(tuning))
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", tune, "--out", out) == 0
    page = (out / "index.html").read_text()
    assert "osd_chosen.png" not in page and "has no simulated scores here" in page
    assert "Most out-of-sample by " in page  # the best simulated scorer's images instead


def test_a_folder_report_scores_folds_and_summary_by_accuracy(tmp_path, run_cli):
    run = _fish_run(tmp_path)
    assert run_cli("oof", run)[0] == 0
    cv = json.loads((run / "cv.json").read_text())
    assert run_cli("report", run, "--out", tmp_path / "report")[0] == 0
    page = (tmp_path / "report" / "index.html").read_text()
    summary = page.split("</section>")[0]
    # cv.json leads with MAP@20; the page's metric for a single-label run is accuracy
    assert "OOF accuracy" in summary and f"{cv['accuracy']:.4f}" in summary
    curves = page.split("Training curves per fold")[1].split("</section>")[0]
    assert "<th>accuracy</th>" in curves and "MAP@20" not in curves
