"""The manifest hashes every file a submission read once (issue 19 part 2): a run member and
its kNN member read the same checkpoints and eval.npz, hundreds of MB each."""

import hashlib

from fathom import manifest


def test_each_file_is_hashed_once_and_named_with_its_digest(tmp_path, monkeypatch):
    files = {n: tmp_path / n for n in ("best.pt", "eval.npz", "bank.npz", "sub.csv")}
    for name, path in files.items():
        path.write_bytes(name.encode() * 1000)
    hashed = []

    def spy(path):
        hashed.append(str(path))
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    monkeypatch.setattr(manifest, "sha256", spy)
    run = {"name": "r", "checkpoints": [files["best.pt"]], "eval_file": files["eval.npz"]}
    knn = {**run, "name": "r kNN", "kind": "knn", "banks": [files["bank.npz"]]}
    tuning = {
        "ensemble": {"method": "mean", "weights": [0.5, 0.5], "scores": {"mean": 0.4}},
        "thresholds": {},
        "osd": {},
    }
    out = manifest.build_manifest("s", files["sub.csv"], tmp_path, [run, knn], tuning, None, 3)
    assert sorted(hashed) == sorted(str(p) for p in files.values())
    want = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files.values()}
    for member in out["experiments"]:
        for entry in [*member["checkpoints"], member["eval"], *member.get("banks", [])]:
            assert entry["sha256"] == want[entry["path"]]
    assert [len(m.get("banks", [])) for m in out["experiments"]] == [0, 1]
