import subprocess
import sys

import pytest

from fathom.cli import COMMANDS


def test_top_level_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "fathom", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(run_cli, name):
    code, out, _ = run_cli(name, "--help")
    assert code == 0 and "example" in out and len(out) > 200


def test_missing_folder_is_one_line_error(run_cli, tmp_path):
    code, out, err = run_cli("folds", tmp_path / "nowhere")
    assert code == 2 and err.count("\n") == 1 and "no such competition or dataset folder" in err
