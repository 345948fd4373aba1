"""The generated kernel script's own rules, tested on its functions here (no wheel, no pip):
a failed step ends it in one line, a changed dataset is unpacked afresh, and no path it reads
climbs out of its folder; and `kernel build` never replaces a kernel folder unasked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kaggle_fake import kernel_template

from fathom.cli import main
from fathom.errors import FathomError
from fathom.kaggle import kernels

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "fathom" / "kaggle" / "kernel_template.py"


def test_a_failed_step_ends_the_kernel_in_one_line_with_its_exit_status(tmp_path):
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(TEMPLATE)!r})\n"
        "t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)\n"
        "t.run_step('fathom predict', [sys.executable, '-c', 'import sys; sys.exit(3)'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "fathom kernel: step `fathom predict` failed with exit status 3"
    ]
    kernel_template().run_step("ok", [sys.executable, "-c", "pass"])  # success says nothing


def _zip_runs(src_parent: Path, weights: Path) -> None:
    weights.mkdir(parents=True, exist_ok=True)
    shutil.make_archive(str(weights / "runs"), "zip", str(src_parent))


def test_a_changed_dataset_is_unpacked_again_not_shadowed_by_the_last_unpack(tmp_path):
    tpl = kernel_template()
    src = tmp_path / "src"
    (src / "r18" / "fold0").mkdir(parents=True)
    (src / "r18" / "fold0" / "best.pt").write_bytes(b"first")
    weights = tmp_path / "weights"
    _zip_runs(src, weights)
    scratch = tmp_path / "scratch"  # shared by both kernel runs, as on one machine
    first = tpl.unpacked(weights, "runs", scratch)
    assert (first / "r18" / "fold0" / "best.pt").read_bytes() == b"first"
    (src / "r18" / "fold0" / "best.pt").write_bytes(b"second")
    _zip_runs(src, weights)
    again = tpl.unpacked(weights, "runs", scratch)
    assert (again / "r18" / "fold0" / "best.pt").read_bytes() == b"second"
    # the same archive once more is not unpacked a third time
    (again / "r18" / "marker").write_text("x")
    assert (tpl.unpacked(weights, "runs", scratch) / "r18" / "marker").is_file()


def test_an_unfinished_unpack_is_redone(tmp_path):
    tpl = kernel_template()
    src = tmp_path / "src"
    (src / "r18").mkdir(parents=True)
    (src / "r18" / "config.json").write_text("{}")
    _zip_runs(src, tmp_path / "w")
    runs = tpl.unpacked(tmp_path / "w", "runs", tmp_path / "s")
    (runs.parent / ".complete").unlink()  # killed before it finished
    (runs / "r18" / "config.json").unlink()
    assert (tpl.unpacked(tmp_path / "w", "runs", tmp_path / "s") / "r18" / "config.json").is_file()


@pytest.mark.parametrize(
    "arg",
    [
        "{weights}/configs/../../etc/passwd",
        "folds={folds}/../../../etc/passwd",
        "{runs}//etc/passwd",
    ],
)
def test_a_step_path_that_climbs_out_of_its_folder_is_refused(arg):
    tpl = kernel_template()
    with pytest.raises(SystemExit, match="is not a path inside"):
        tpl.check_step_paths(["train", arg])
    tpl.check_step_paths(["train", "{weights}/configs/effb0.toml", "folds={folds}/a.csv"])


def test_a_tuning_member_name_that_climbs_out_is_refused(tmp_path):
    tpl = kernel_template()
    (tmp_path / "tune.json").write_text(
        json.dumps({"experiments": [{"name": "../../etc", "path": "/x", "kind": "run"}]})
    )
    with pytest.raises(SystemExit, match="'../../etc' is not a path inside runs/"):
        tpl.kernel_tuning(tmp_path, tmp_path / "runs", tmp_path, tmp_path)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--config", "../../etc/passwd"),
        ("--folds-file", "../secrets.csv"),
        ("--config", "/etc/passwd"),
    ],
)
def test_kernel_build_refuses_a_train_path_out_of_the_dataset(tmp_path, capsys, option, value):
    argv = ["kernel", "build", "fathom-train", "--kind", "train", "--owner", "alice"]
    argv += ["--config", "effb0.toml", "--folds-file", "mlskf5.csv", "--fold", "0"]
    argv += [option, value, "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "must be a plain name" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    with pytest.raises(FathomError, match="run '../x' must be a plain name"):
        kernels.KernelSpec(
            name="fathom-p", owner="a", weights_dataset="a/fathom-weights", runs=("../x",)
        ).check()


def test_kernel_build_keeps_an_existing_kernel_folder_unless_overwrite(tmp_path, capsys):
    argv = ["kernel", "build", "fathom-prior", "--kind", "prior", "--owner", "alice"]
    argv += ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    script = tmp_path / "fathom-prior" / "fathom-prior.py"
    script.write_text(script.read_text() + "\n# my hand edit\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert script.read_text().endswith("# my hand edit\n")
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--overwrite"])
    assert exit_info.value.code == 0 and "# my hand edit" not in script.read_text()


def test_kernel_build_of_several_folds_writes_none_when_one_folder_exists(tmp_path):
    (tmp_path / "fathom-train-fold2").mkdir()
    (tmp_path / "fathom-train-fold2" / "notes.txt").write_text("mine")
    argv = ["kernel", "build", "fathom-train", "--kind", "train", "--owner", "alice"]
    argv += ["--config", "effb0.toml", "--folds-file", "mlskf5.csv", "--n-folds", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fathom-train-fold2"]


def test_keeping_an_output_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    tpl = kernel_template()
    (tmp_path / "made.csv").write_text("id,categories,osd\n")
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("precious")
    working = tmp_path / "working"
    working.mkdir()
    (working / ".submission.csv.tmp").symlink_to(victim)
    (working / "submission.csv").symlink_to(victim)
    assert tpl.keep({"submission.csv": "{tmp}/made.csv"}, {"tmp": str(tmp_path)}, working) == []
    assert victim.read_text() == "precious"
    assert not (working / "submission.csv").is_symlink()
    assert (working / "submission.csv").read_text() == "id,categories,osd\n"


def test_a_predict_kernel_spreads_its_runs_over_both_gpus(tmp_path, capsys):
    tpl = kernel_template()
    (tmp_path / "gpus.txt").write_text("2\n")
    gpus = tpl.visible_gpus(tmp_path, environ={})
    assert gpus == ["0", "1"]
    assert tpl.visible_gpus(tmp_path, environ={"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5"]
    assert tpl.visible_gpus(tmp_path / "none", environ={}) == []  # no start-up record: no GPU
    # each "step" records the GPU it was given
    record = [sys.executable, "-c", "import os, sys; open(sys.argv[1], 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"]  # fmt: skip
    steps = [[str(tmp_path / f"run{k}.txt")] for k in range(3)]
    tpl.run_on_gpus(steps, gpus, dict(os.environ), tmp_path, record)
    assert [(tmp_path / f"run{k}.txt").read_text() for k in range(3)] == ["0", "1", "0"]
    fail = [sys.executable, "-c", "import sys; sys.exit(int(sys.argv[1]))"]
    with pytest.raises(SystemExit, match="on GPU 1 failed with exit status 4"):
        tpl.run_on_gpus([["0"], ["4"]], gpus, dict(os.environ), tmp_path, fail)


def test_startup_writes_how_many_gpus_it_saw(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import timm  # noqa: F401  (imported with the real torch, before torch is faked)

    from fathom.kaggle import startup

    cuda = SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        get_device_name=lambda i: "Tesla T4",
        get_device_capability=lambda i: (7, 5),
        get_arch_list=lambda: ["sm_75"],
    )
    fake = SimpleNamespace(__version__="2.10.0", version=SimpleNamespace(cuda="12.8"), cuda=cuda)
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert startup.main(["--gpus-file", str(tmp_path / "gpus.txt")]) == 0
    assert (tmp_path / "gpus.txt").read_text() == "2\n"
