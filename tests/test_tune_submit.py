import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _fake_runs import cli, three_runs  # noqa: E402

from fathom.manifest import read_manifest, sha256  # noqa: E402
from fathom.score import score_files  # noqa: E402
from fathom.submission import read_submission, validate  # noqa: E402
from fathom.synth.fathomnet import TRUTH_FILE  # noqa: E402

HOLDOUT = None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small synthetic competition with two experiment runs and one held-out-category run."""
    root = tmp_path_factory.mktemp("tune")
    return three_runs(root)


def test_tune_then_submit_writes_a_valid_scored_submission(world, tmp_path, capsys):
    out = tmp_path / "tune.json"
    assert cli("tune", world["good"], world["weak"], "--holdout", world["held"], "--out", out) == 0
    printed = capsys.readouterr().out
    assert "rank average" in printed and "osd scorers" in printed
    tuning = json.loads(out.read_text())
    assert set(tuning["ensemble"]["scores"]) == {"mean", "rank", "weighted", "weighted_in_sample"}
    assert (
        tuning["ensemble"]["weights"][0] > tuning["ensemble"]["weights"][1]
    )  # the good model leads
    sims = tuning["osd"]["simulated_sauc"]
    assert sims["disagreement"] is None  # one held-out run cannot disagree with itself
    # the fake deep eval images are shifted: the label-free test sees it and `domain` is used
    assert tuning["osd"]["shift"]["auc"] > 0.6
    assert "domain" in tuning["osd"]["scorer"].split("+") and "shifted" in tuning["osd"]["why"]
    assert len(tuning["thresholds"]["per_category"]) == 290

    subs = tmp_path / "subs"
    assert cli("submit", out, "--name", "ab", "--out-dir", subs) == 0
    csv, manifest_path = subs / "ab.csv", subs / "ab.json"
    frame = read_submission(csv)
    ids = pd.read_csv(world["comp"] / TRUTH_FILE, dtype=str)["id"]
    assert validate(frame, set(ids), range(1, 291)) == []
    scored = score_files(csv, world["comp"] / TRUTH_FILE)
    assert scored["map20"] > 0.5 and scored["sauc"] > 0.2

    m = read_manifest(manifest_path)
    assert m["csv_sha256"] == sha256(csv)
    assert [e["name"] for e in m["experiments"]] == ["good", "weak"]
    assert len(m["experiments"][0]["checkpoints"]) == 3
    assert m["experiments"][0]["checkpoints"][0]["sha256"] == sha256(
        world["good"] / "fold0" / "best.pt"
    )
    assert m["ensemble"]["weights"] == tuning["ensemble"]["weights"]
    assert m["osd"]["scorer"] == tuning["osd"]["scorer"]
    assert m["osd"]["estimated_sauc"] is None  # `domain` cannot be rated by the simulation
    assert m["cv"]["map20"] == pytest.approx(
        tuning["ensemble"]["scores"][tuning["ensemble"]["method"]]
    )
    assert m["created_utc"].endswith("Z")


def test_submit_refuses_to_overwrite(world, tmp_path, capsys):
    out = tmp_path / "tune.json"
    assert cli("tune", world["good"], "--osd", "max_prob", "--out", out) == 0
    subs = tmp_path / "subs"
    assert cli("submit", out, "--name", "x", "--out-dir", subs) == 0
    before = (subs / "x.csv").read_bytes(), (subs / "x.json").read_bytes()
    capsys.readouterr()
    assert cli("submit", out, "--name", "x", "--out-dir", subs, "--osd", "entropy") == 2
    assert "already exists" in capsys.readouterr().err
    assert ((subs / "x.csv").read_bytes(), (subs / "x.json").read_bytes()) == before
    # a leftover manifest alone also blocks, and nothing is half-written
    (subs / "y.json").write_text("{}")
    assert cli("submit", out, "--name", "y", "--out-dir", subs) == 2
    assert not (subs / "y.csv").exists()
    assert (
        cli("submit", out, "--name", "x", "--out-dir", subs, "--osd", "entropy", "--overwrite") == 0
    )
    assert read_manifest(subs / "x.json")["osd"]["scorer"] == "entropy"
    # the tuning file itself is not replaced silently either
    assert cli("tune", world["good"], "--osd", "max_prob", "--out", out) == 2


def test_feature_scorer_on_eval_uses_each_folds_reference(world, tmp_path):
    out = tmp_path / "tune.json"
    assert cli("tune", world["good"], "--osd", "knn", "--out", out) == 0
    assert cli("submit", out, "--name", "knn", "--out-dir", tmp_path) == 0
    scored = score_files(tmp_path / "knn.csv", world["comp"] / TRUTH_FILE)
    assert scored["sauc"] > 0.5  # the fake deep images are shifted in feature space


def test_tune_rejects_bad_input(world, tmp_path, capsys):
    assert cli("tune", world["good"], "--out", tmp_path / "t.json") == 2  # no holdout, no --osd
    assert "--osd" in capsys.readouterr().err
    assert cli("tune", world["good"], "--osd", "magic", "--out", tmp_path / "t.json") == 2
    assert cli("tune", tmp_path / "nope", "--osd", "max_prob", "--out", tmp_path / "t.json") == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    np.savez(bad / "oof.npz", ids=np.array(["a"]))
    assert (
        cli("tune", bad, "--comp", world["comp"], "--osd", "max_prob", "--out", tmp_path / "t.json")
        == 2
    )
    assert "lacks array" in capsys.readouterr().err


def test_report_writes_every_plot_and_links_it(world, tmp_path):
    from PIL import Image

    tune = tmp_path / "tune.json"
    assert cli("tune", world["good"], world["weak"], "--holdout", world["held"], "--out", tune) == 0
    out = tmp_path / "report"
    assert cli("report", world["good"], world["weak"], "--tune", tune, "--out", out) == 0
    page = (out / "index.html").read_text()
    expected = [
        "category_frequency.png",
        "curves_good.png",
        "curves_weak.png",
        "per_category_ap.png",
        "model_comparison.png",
        "osd_histograms.png",
        "supercategory_confusions.png",
    ]
    for name in expected:
        assert f'src="{name}"' in page, name
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 200
    assert "ensemble: fitted weights" in page
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_the_frequency_prior_can_join_the_ensemble(world, tmp_path):
    out = tmp_path / "tune.json"
    assert cli("tune", world["weak"], "--prior", "--osd", "max_prob", "--out", out) == 0
    tuning = json.loads(out.read_text())
    kinds = [e["kind"] for e in tuning["experiments"]]
    assert kinds == ["run", "prior"]
    assert len(tuning["ensemble"]["weights"]) == 2
    assert cli("submit", out, "--name", "p", "--out-dir", tmp_path) == 0
    m = read_manifest(tmp_path / "p.json")
    assert m["experiments"][1]["name"] == "frequency prior"
    assert "checkpoints" not in m["experiments"][1] or m["experiments"][1]["checkpoints"] == []
    ids = pd.read_csv(world["comp"] / TRUTH_FILE, dtype=str)["id"]
    assert validate(read_submission(tmp_path / "p.csv"), set(ids), range(1, 291)) == []


def test_a_member_with_weight_zero_does_not_shape_the_osd(world, tmp_path):
    both, solo = tmp_path / "both.json", tmp_path / "solo.json"
    assert cli("tune", world["good"], world["weak"], "--osd", "knn", "--out", both) == 0
    assert cli("tune", world["good"], "--osd", "knn", "--out", solo) == 0
    tuning = json.loads(both.read_text())
    tuning["ensemble"].update(method="weighted", weights=[1.0, 0.0])
    both.write_text(json.dumps(tuning))
    subs = tmp_path / "subs"
    assert cli("submit", both, "--name", "both", "--out-dir", subs) == 0
    assert cli("submit", solo, "--name", "solo", "--out-dir", subs) == 0
    a, b = read_submission(subs / "both.csv"), read_submission(subs / "solo.csv")
    assert a["osd"].tolist() == b["osd"].tolist()
    assert a["categories"].tolist() == b["categories"].tolist()
    # the zero-weight member is still recorded in the manifest
    assert [e["name"] for e in read_manifest(subs / "both.json")["experiments"]] == [
        "good",
        "weak",
    ]


def test_the_osd_estimate_is_measured_on_rows_that_did_not_choose_the_scorer(world):
    """Without a shift, the best simulated scorer is chosen; its recorded estimate is the
    cross-fitted one, not its own (optimistic) figure on the rows that chose it."""
    from fathom.data import open_dataset
    from fathom.runs import open_run
    from fathom.tune import tune_osd

    labels = open_dataset(world["comp"]).labels()
    info = tune_osd([], [], [open_run(world["held"])], labels)
    assert "domain" not in info["scorer"]
    assert info["estimate"].startswith("cross-fitted")
    assert info["estimated_sauc"] != pytest.approx(info["simulated_sauc"][info["scorer"]])
    named = tune_osd([], [], [open_run(world["held"])], labels, osd_name="entropy")
    assert named["estimated_sauc"] == pytest.approx(named["simulated_sauc"]["entropy"])


def test_best_of_noise_scorers_is_estimated_near_zero_not_at_its_maximum():
    from fathom.metrics import sauc
    from fathom.osd import crossfit_choice_sauc

    rng = np.random.default_rng(0)
    unseen = np.arange(120) % 3 == 0
    scores = {f"s{i}": rng.random(120) for i in range(30)}
    best_in_sample = max(sauc(unseen, s) for s in scores.values())
    estimate = crossfit_choice_sauc(scores, unseen)
    assert best_in_sample > 0.15 and abs(estimate) < best_in_sample - 0.1


def test_domain_gets_no_estimate_in_the_manifest():
    from fathom.manifest import osd_summary

    tuning = {"osd": {"scorer": "mahalanobis", "simulated_sauc": {"domain": 0.4, "knn": 0.2}}}
    assert osd_summary(tuning, "domain")["estimated_sauc"] is None  # named at submit time
    assert osd_summary(tuning, "knn")["estimated_sauc"] == 0.2
    tuned = {
        "osd": {**tuning["osd"], "scorer": "domain", "estimated_sauc": None, "estimate": "none"}
    }
    assert osd_summary(tuned, "domain")["estimated_sauc"] is None


def test_probability_scorers_read_mean_probabilities_under_a_rank_ensemble(world, tmp_path):
    from fathom.ensemble import rank_average, weighted_mean
    from fathom.osd import max_prob, to_unit
    from fathom.runs import read_tuning
    from fathom.submit import ensemble_eval, eval_osd

    out = tmp_path / "tune.json"
    assert cli("tune", world["good"], world["weak"], "--osd", "max_prob", "--out", out) == 0
    tuning = read_tuning(out)
    tuning["ensemble"]["method"] = "rank"
    tuning["ensemble"]["weights"] = [0.5, 0.5]
    ens = ensemble_eval(tuning, world["comp"])
    members = [np.load(world[n] / "eval.npz")["probs"] for n in ("good", "weak")]
    np.testing.assert_allclose(ens["scores"], rank_average(members))
    np.testing.assert_allclose(ens["probs"], weighted_mean(members, [1, 1]))
    np.testing.assert_allclose(eval_osd(ens, "max_prob"), to_unit(max_prob(ens["probs"])))


def test_report_reads_the_simulated_scores_tune_stored(world, tmp_path):
    from fathom import osd
    from fathom.report import stored_osd_scores
    from fathom.runs import open_run, read_tuning
    from fathom.tune import osd_scores_path, tune_runs, write_tuning

    out = tmp_path / "t.json"
    write_tuning(out, tune_runs([world["good"], world["weak"]], [world["held"]]))
    tuning = read_tuning(out)
    assert tuning["osd"]["scores_file"] == osd_scores_path(out).name == "t.osd.npz"
    stored = stored_osd_scores(tuning)
    held = open_run(world["held"]).oof()
    assert list(stored["ids"]) == list(held["ids"])
    unseen = np.load(osd_scores_path(out))["unseen"]
    models = [osd.ModelRows(held["probs"], held["logits"], held["features"], held["fold"])]
    rerun = osd.simulate_scores(models, unseen)
    for name, scores in rerun.items():
        if scores is None:
            assert name not in stored
        else:
            np.testing.assert_array_equal(stored[name], scores)
    osd_scores_path(out).unlink()  # gone: the report reruns the simulation instead
    assert stored_osd_scores(tuning) is None
