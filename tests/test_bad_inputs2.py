"""Bad inputs and silent wrong answers of the second campaign (issues 16 and 21): planted
symbolic links, a full disk under torch's zip writer, hand-edited tuning files, kNN banks,
stale or non-finite OOF files, runs that share a folder name. Each ends in one line naming
the file and the key (exit status 2), or in the right answer; nothing a user owns is lost.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fathom import fileio
from fathom.errors import FathomError

# --- issue 16.3: outputs replace a planted symbolic link, never write through it


@pytest.mark.parametrize(
    "write",
    [
        lambda p: fileio.write_text(p, "new"),
        lambda p: fileio.write_json(p, {"new": 1}),
        lambda p: fileio.write_csv(p, pd.DataFrame({"new": [1]})),
        lambda p: fileio.save_npz(p, new=np.zeros(3)),
        lambda p: fileio.save_torch(p, {"new": 1}),
    ],
    ids=["text", "json", "csv", "npz", "torch"],
)
def test_a_planted_symlink_is_replaced_not_written_through(tmp_path, write):
    outside = tmp_path / "elsewhere" / "precious.txt"
    outside.parent.mkdir()
    outside.write_text("keep me")
    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)
    target = out / "oof.npz"
    target.symlink_to(outside)
    write(target)
    assert outside.read_text() == "keep me"
    assert not target.is_symlink() and target.is_file()
    assert sorted(p.name for p in out.iterdir()) == ["oof.npz"]  # no temp left


def test_a_temp_swapped_for_a_link_is_never_renamed_into_place(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    target = tmp_path / "out" / "sub.csv"
    with pytest.raises(FathomError, match="symbolic link"):
        with fileio.atomic_path(target) as tmp:
            tmp.unlink()
            tmp.symlink_to(outside)
    assert outside.read_text() == "keep me"
    assert not target.exists() and list(target.parent.iterdir()) == []


# --- issue 16.4: a full disk (here: a real file-size limit) under torch.save

_FSIZE = """
import resource, signal, sys
import torch
from fathom import fileio
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from fathom.errors import FathomError
try:
    fileio.save_torch(sys.argv[1], {"weights": torch.zeros(1_000_000)})
except FathomError as exc:
    print("FATHOM", exc)
"""


def test_a_checkpoint_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    import torch

    path = fileio.save_torch(tmp_path / "last.pt", {"epoch": torch.tensor(1)})
    before = path.read_bytes()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", _FSIZE, str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip()
    assert line.startswith(f"FATHOM {path}: cannot write (a file-size limit"), line
    assert "\n" not in line and "enforce fail" not in line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_plain_write_past_a_size_limit_is_one_line(tmp_path):
    import errno

    exc = OSError(errno.EFBIG, "File too large")
    err = fileio.os_error(exc, tmp_path / "oof.npz")
    assert isinstance(err, FathomError) and f"{tmp_path / 'oof.npz'}: file too large" in str(err)
