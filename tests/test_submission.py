import numpy as np
import pandas as pd
import pytest

from fathom.errors import FathomError
from fathom.submission import (
    make_submission,
    rank_categories,
    read_submission,
    validate,
    write_submission,
)
from fathom.synth.fathomnet import TRUTH_FILE

CATS = list(range(1, 31))


def test_rank_categories_best_first_distinct():
    probs = np.zeros((2, 30))
    probs[0, [4, 9, 2]] = [0.9, 0.8, 0.7]
    ranked = rank_categories(probs, CATS)
    assert ranked[0][:3] == [5, 10, 3]
    assert all(len(r) == 20 and len(set(r)) == 20 for r in ranked)
    assert ranked[1] == CATS[:20]  # ties keep category order


def test_make_and_write_submission(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(5)]
    frame = make_submission(ids, rng.random((5, 30)), CATS, [0.1, 0.5, 1.2, -0.1, 0.3])
    path = write_submission(tmp_path / "s.csv", frame, ids, CATS)
    back = read_submission(path)
    assert list(back.columns) == ["id", "categories", "osd"]
    assert validate(back, ids, CATS) == []
    assert all(len(c.split(" ")) == 20 for c in back["categories"])
    assert back["osd"].astype(float).between(0, 1).all()
    with pytest.raises(FathomError, match="already exists"):
        write_submission(path, frame, ids, CATS)
    bad = frame.assign(id=["other"] + ids[1:])
    with pytest.raises(FathomError, match="not written"):
        write_submission(tmp_path / "bad.csv", bad, ids, CATS)
    assert not (tmp_path / "bad.csv").exists()


@pytest.mark.parametrize(
    "categories, osd, expected",
    [
        ("1.0 2", "0.5", "not a plain integer"),
        ("[1, 2]", "0.5", "not a plain integer"),
        ("1  2", "0.5", "empty guess"),
        ("1 2 ", "0.5", "empty guess"),
        ("1 2 2", "0.5", "more than once"),
        ("1 31", "0.5", "not a known category"),
        (" ".join(map(str, range(1, 22))), "0.5", "at most 20"),
        ("", "0.5", "empty"),
        ("1", "nan", "osd"),
        ("1", "1.5", "osd"),
        ("1", "x", "osd"),
    ],
)
def test_validate_row_problems(categories, osd, expected):
    frame = pd.DataFrame({"id": ["a", "b"], "categories": ["1 2", categories], "osd": ["0.1", osd]})
    problems = validate(frame, ["a", "b"], CATS)
    assert len(problems) >= 1
    assert problems[0].line == 3 and expected in problems[0].message


def test_validate_ids_and_header():
    frame = pd.DataFrame({"id": ["a", "a", "z"], "categories": ["1"] * 3, "osd": ["0"] * 3})
    messages = [str(p) for p in validate(frame, ["a", "b"], CATS)]
    assert any("line 3: id a appears again" in m for m in messages)
    assert any("line 4" in m and "not an eval image" in m for m in messages)
    assert any("1 eval image(s) missing, e.g. b" in m for m in messages)
    wrong = pd.DataFrame({"id": ["a"], "categories": ["1"]})
    assert "header must be" in str(validate(wrong, ["a"], CATS)[0])


def test_validate_and_score_cli(run_cli, small_comp, tmp_path):
    eval_json = small_comp / "object_detection/eval.json"
    sub = tmp_path / "prior.csv"
    code, _, _ = run_cli("prior", small_comp, "--out", sub)
    assert code == 0
    code, out, _ = run_cli("validate", sub, "--eval", eval_json)
    assert code == 0 and "valid" in out
    code, out, _ = run_cli("score", sub, "--truth", small_comp / TRUTH_FILE, "--json")
    import json

    result = json.loads(out)
    assert set(result) == {"map20", "sauc", "score"}
    assert 0 < result["map20"] < 1 and result["sauc"] == 0.0  # constant osd
    assert result["score"] == pytest.approx(result["map20"] / 2)
    # a perfect submission scores 1 on both
    truth = pd.read_csv(small_comp / TRUTH_FILE, dtype=str)
    perfect = tmp_path / "perfect.csv"
    truth.to_csv(perfect, index=False)
    code, out, _ = run_cli("score", perfect, "--truth", small_comp / TRUTH_FILE, "--json")
    assert json.loads(out) == {"map20": 1.0, "sauc": 1.0, "score": 1.0}
    # break a row: validate reports it with its line and exits non-zero
    broken = read_submission(sub)
    broken.loc[3, "categories"] = broken.loc[3, "categories"].replace(" ", "  ", 1)
    broken.to_csv(tmp_path / "broken.csv", index=False)
    code, out, _ = run_cli("validate", tmp_path / "broken.csv", "--eval", eval_json)
    assert code == 1 and "line 5" in out and "INVALID" in out
    code, _, err = run_cli("validate", tmp_path / "nope.csv", "--eval", eval_json)
    assert code == 2 and "no such file" in err
