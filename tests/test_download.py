"""The image downloader against a local server (127.0.0.1) that injects faults."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from image_server import FaultServer, make_png

from fathom.cli import main
from fathom.data.images import (
    DownloadConfig,
    ImageTarget,
    Job,
    download,
    fetch_images,
    image_targets,
    safe_target,
    write_failed,
)
from fathom.errors import FathomError

FAST = DownloadConfig(
    workers=8, retries=3, backoff=0.01, max_backoff=0.05, read_timeout=0.5, connect_timeout=2
)

# name -> (fault, how many first requests suffer it); 99 = every request
PLAN = {
    "good0.png": ("ok", 0),
    "good1.png": ("ok", 0),
    "good2.png": ("ok", 0),
    "good3.png": ("ok", 0),
    "flaky500.png": ("500", 2),
    "slow_once.png": ("slow", 1),
    "trunc_once.png": ("truncated", 1),
    "nolen_once.png": ("nolength", 1),
    "drop_once.png": ("drop", 1),
    "corrupt_once.png": ("corrupt", 1),
    "always500.png": ("500", 99),
    "always_corrupt.png": ("corrupt", 99),
    "always_trunc.png": ("truncated", 99),
    "always_drop.png": ("drop", 99),
}
EVENTUALLY_OK = {n for n, (_, times) in PLAN.items() if times < 99}
ALWAYS_BAD = set(PLAN) - EVENTUALLY_OK


@pytest.fixture
def images():
    return {name: make_png(i) for i, name in enumerate(sorted(PLAN))}


def _jobs(server: FaultServer, plan: dict) -> list[Job]:
    jobs = [Job(server.url(fault, times, name), name) for name, (fault, times) in plan.items()]
    jobs.append(Job(server.url("ok", 0, "good0.png"), "../escaped.png"))
    jobs.append(Job(server.url("ok", 0, "good0.png"), "/tmp/absolute.png"))
    jobs.append(Job(server.url("ok", 0, "missing.png"), "missing.png"))  # 404: no retry
    return jobs


def test_faults_good_images_intact_bad_ones_never_final_and_resume(tmp_path, images):
    root = tmp_path / "images"
    with FaultServer(images) as server:
        report = download(_jobs(server, PLAN), root, FAST, progress=False)
        hits_first = dict(server.hits)

    # Every image that the server eventually serves arrived byte for byte.
    for name in EVENTUALLY_OK:
        assert (root / name).read_bytes() == images[name], name
    # No bad file has its final name, no temp file is left, nothing escaped the folder.
    for name in ALWAYS_BAD | {"missing.png"}:
        assert not (root / name).exists(), name
    assert not list(root.rglob("*.tmp"))
    assert not (tmp_path / "escaped.png").exists()
    assert sorted(p.name for p in root.iterdir()) == sorted(EVENTUALLY_OK)

    failed = {o.job.file_name: o for o in report.failed}
    assert set(failed) == ALWAYS_BAD | {"missing.png", "../escaped.png", "/tmp/absolute.png"}
    assert "escapes" in failed["../escaped.png"].reason and failed["../escaped.png"].attempts == 0
    assert failed["missing.png"].reason == "HTTP 404" and failed["missing.png"].attempts == 1
    assert failed["always500.png"].attempts == FAST.retries + 1
    assert failed["always_corrupt.png"].reason.startswith("not a decodable image")
    # The 500s were retried exactly until they stopped.
    assert hits_first["/500/2/flaky500.png"] == 3

    csv = write_failed(root / "failed.csv", report)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["file_name", "url", "reason", "attempts"]
    assert set(table["file_name"]) == set(failed)

    # Second run: the server has healed; only what is missing is fetched.
    healed = {name: ("ok", 0) for name in PLAN}
    with FaultServer(images) as server:
        report2 = download(_jobs(server, healed), root, FAST, progress=False)
        fetched = {path.rsplit("/", 1)[1] for path in server.hits}
    assert fetched == ALWAYS_BAD | {"missing.png"}
    assert report2.count("skipped") == len(EVENTUALLY_OK)
    assert report2.count("ok") == len(ALWAYS_BAD)
    for name in PLAN:
        assert (root / name).read_bytes() == images[name]
    assert write_failed(root / "failed.csv", report2) is not None  # the refused names remain


def test_existing_corrupt_or_partial_file_is_fetched_again(tmp_path, images):
    root = tmp_path / "images"
    root.mkdir()
    (root / "good0.png").write_bytes(images["good0.png"][:100])  # a partial file from elsewhere
    (root / "good1.png").write_bytes(images["good1.png"])  # complete: must not be fetched
    with FaultServer(images) as server:
        jobs = [Job(server.url("ok", 0, n), n) for n in ("good0.png", "good1.png")]
        report = download(jobs, root, FAST, progress=False)
        assert set(server.hits) == {"/ok/0/good0.png"}
    assert report.count("ok") == 1 and report.count("skipped") == 1
    assert (root / "good0.png").read_bytes() == images["good0.png"]


@pytest.mark.parametrize(
    "name", ["../x.png", "a/../../x.png", "/etc/x.png", "a\\..\\x.png", "", "."]
)
def test_escaping_names_are_refused(tmp_path, name):
    with pytest.raises(FathomError):
        safe_target(tmp_path, name)


def test_nested_names_stay_inside(tmp_path):
    assert safe_target(tmp_path, "sub/x.png") == tmp_path / "sub" / "x.png"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(FathomError):
        safe_target(tmp_path, "link/x.png")


def test_images_command_fills_the_competition_layout(tmp_path, images, capsys):
    comp = tmp_path / "comp"
    (comp / "object_detection").mkdir(parents=True)
    names = ["good0.png", "good1.png", "always500.png"]
    with FaultServer(images) as server:
        coco = {
            "images": [
                {"id": i, "file_name": n, "coco_url": server.url(*PLAN[n], n)}
                for i, n in enumerate(names)
            ],
            "categories": [],
        }
        (comp / "object_detection" / "eval.json").write_text(json.dumps(coco))
        argv = [
            "images",
            str(comp),
            "--split",
            "eval",
            "--retries",
            "1",
            "--quiet",
            "--workers",
            "4",
        ]
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "2 fetched, 0 already complete, 1 failed" in out
    assert (comp / "images" / "eval" / "good1.png").read_bytes() == images["good1.png"]
    failed = pd.read_csv(comp / "images" / "eval" / "failed.csv")
    assert failed["file_name"].tolist() == ["always500.png"]
    assert failed["reason"].tolist() == ["HTTP 500"]


def test_images_command_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["images", "--json", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert "--json needs --out" in capsys.readouterr().err


def test_images_folder_outside_is_never_written(tmp_path, images):
    root = tmp_path / "images"
    with FaultServer(images) as server:
        report = download(
            [Job(server.url("ok", 0, "good0.png"), "sub/../../up.png")], root, FAST, progress=False
        )
    assert report.count("failed") == 1 and not (tmp_path / "up.png").exists()
    assert Path(root).is_dir() and not list(root.iterdir())


def test_completeness_check_catches_truncation_and_flipped_bytes(tmp_path):
    import io

    from PIL import Image

    from fathom.data.images import is_complete_image

    png = make_png(7, size=(64, 64))
    (tmp_path / "ok.png").write_bytes(png)
    (tmp_path / "short.png").write_bytes(png[:-20])  # IEND lost
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF  # inside IDAT: only the CRC notices
    (tmp_path / "flipped.png").write_bytes(bytes(flipped))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buf, format="JPEG")
    (tmp_path / "ok.jpg").write_bytes(buf.getvalue())
    (tmp_path / "short.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert is_complete_image(tmp_path / "ok.png") and is_complete_image(tmp_path / "ok.jpg")
    for bad in ("short.png", "flipped.png", "short.jpg"):
        assert not is_complete_image(tmp_path / bad), bad
    assert is_complete_image(tmp_path / "ok.png", full=True)


def test_a_local_write_error_fails_that_image_only(tmp_path, images):
    root = tmp_path / "images"
    (root / "good1.png").mkdir(parents=True)  # a folder where the image should go
    with FaultServer(images) as server:
        jobs = [Job(server.url("ok", 0, n), n) for n in ("good0.png", "good1.png")]
        report = download(jobs, root, FAST, progress=False)
    failed = {o.job.file_name: o.reason for o in report.failed}
    assert list(failed) == ["good1.png"] and "Error" in failed["good1.png"]
    assert (root / "good0.png").read_bytes() == images["good0.png"]
    assert not list(root.glob(".*.tmp"))


def test_image_targets_pick_the_json_and_folder(tmp_path):
    comp = tmp_path / "comp"
    comp.mkdir()
    json_for = comp / "object_detection"
    assert image_targets(comp) == [
        ImageTarget(json_for / "train.json", comp / "images" / "train", "train"),
        ImageTarget(json_for / "eval.json", comp / "images" / "eval", "eval"),
    ]
    assert image_targets(comp, "eval", out=tmp_path / "o") == [
        ImageTarget(json_for / "eval.json", tmp_path / "o", "eval")
    ]
    assert image_targets(json=tmp_path / "x.json", out=tmp_path / "o") == [
        ImageTarget(tmp_path / "x.json", tmp_path / "o", "x")
    ]
    for kwargs, message in [
        ({}, "give a competition folder"),
        ({"comp": comp, "out": tmp_path / "o"}, "--out needs one --split"),
        ({"json": tmp_path / "x.json"}, "--json needs --out"),
        ({"comp": tmp_path / "nowhere"}, "no such competition folder"),
    ]:
        with pytest.raises(FathomError, match=message):
            fetch_images(**kwargs)  # refused at the call, before anything is fetched


def _write_coco(path: Path, images: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "categories": []}))
    return path


def test_each_split_is_reported_before_the_next_is_read(tmp_path, images):
    comp = tmp_path / "comp"
    with FaultServer(images) as server:
        url = server.url("ok", 0, "good0.png")
        _write_coco(
            comp / "object_detection" / "train.json", [{"file_name": "a.png", "coco_url": url}]
        )
        _write_coco(comp / "object_detection" / "eval.json", [{"coco_url": url}])
        reports = fetch_images(comp, cfg=FAST, progress=False)
        first = next(reports)
        assert first.target.name == "train" and first.report.count("ok") == 1
        assert first.failed_csv is None
        with pytest.raises(FathomError, match=r"eval.json, images\[0\]: no `file_name`"):
            next(reports)
    assert (comp / "images" / "train" / "a.png").read_bytes() == images["good0.png"]


def test_images_command_json_limit_rerun_and_exit_status(tmp_path, images, capsys):
    out = tmp_path / "imgs"
    names = ["good0.png", "always500.png", "good1.png"]
    with FaultServer(images) as server:
        coco = _write_coco(
            tmp_path / "other.json",
            [{"file_name": n, "coco_url": server.url(*PLAN[n], n)} for n in names],
        )
        argv = ["images", "--json", str(coco), "--out", str(out), "--retries", "0", "--quiet"]
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--limit", "2"])
        assert exit_info.value.code == 1
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("other: 1 fetched, 0 already complete, 1 failed, ")
        assert lines[0].endswith(f"images/s) -> {out}")
        assert lines[1] == (
            f"other: failures listed in {out / 'failed.csv'} "
            "(e.g. always500.png: HTTP 500); rerun to retry them"
        )
        assert not (out / "good1.png").exists()  # beyond --limit

        # the server heals: a rerun fetches only what is missing and clears failed.csv
        coco.write_text(coco.read_text().replace("/500/99/", "/ok/0/"))
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("other: 2 fetched, 1 already complete, 0 failed")
    assert not (out / "failed.csv").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
