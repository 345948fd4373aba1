import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from fathom.cli import COMMANDS

COMMANDS_DIR = Path(__file__).resolve().parents[1] / "fathom" / "commands"
GROUPS = {
    name: importlib.import_module(f"fathom.commands.{name}").VERBS
    for name in COMMANDS
    if (COMMANDS_DIR / name / "__init__.py").is_file()
}


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


@pytest.mark.parametrize("group,verb", [(g, v) for g, verbs in GROUPS.items() for v in verbs])
def test_every_verb_of_a_group_has_help_with_an_example(run_cli, group, verb):
    code, out, _ = run_cli(group, verb, "--help")
    assert code == 0 and "example" in out
    assert out.startswith(f"usage: fathom {group} {verb} ")
    _, group_help, _ = run_cli(group, "--help")
    assert verb in group_help


def test_a_group_needs_one_of_its_verbs(run_cli):
    assert set(GROUPS) >= {"kaggle", "kernel"}
    code, _, err = run_cli("kaggle")
    assert code == 2 and "required: <action>" in err
    code, _, err = run_cli("kernel", "nope")
    assert code == 2 and "invalid choice: 'nope'" in err


@pytest.mark.parametrize(
    "argv,prog,says",
    [
        (["trian"], "fathom", "invalid choice: 'trian'"),
        (["train", "default", "--fold", "x"], "fathom train", "--fold"),
        (["kaggle", "submit", "a.csv", "--nope"], "fathom", "unrecognized arguments: --nope"),
        (["kaggle", "submit"], "fathom kaggle submit", "required: file"),
        (["tune"], "fathom tune", "required"),
    ],
)
def test_a_usage_error_is_one_line_that_names_the_command_and_its_help(run_cli, argv, prog, says):
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and says in lines[0]
    assert lines[0].endswith(f"(see `{prog} --help`)")


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_a_groups_verbs_are_thin_adapters(group):
    """At most ~80 lines each, importing no other command (the logic lives in the library)."""
    for path in sorted((COMMANDS_DIR / group).glob("*.py")):
        assert len(path.read_text().splitlines()) <= 80, path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                assert not any(n.startswith("fathom.commands") for n in names), path


def test_missing_folder_is_one_line_error(run_cli, tmp_path):
    code, out, err = run_cli("folds", tmp_path / "nowhere")
    assert code == 2 and err.count("\n") == 1 and "no such competition or dataset folder" in err


HEAVY = ("torch", "sklearn", "pandas", "timm", "kaggle")
ALL_HELPS = (
    [[]]
    + [[name] for name in COMMANDS]
    + [[group, verb] for group, verbs in GROUPS.items() for verb in verbs]
)


def _heavy_modules_after(*argv: str) -> list[str]:
    """The heavy libraries loaded by `fathom ARGV` in a fresh interpreter (so nothing a test
    imported before counts)."""
    probe = (
        "import sys\n"
        "from fathom.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("loaded:")]
    return line.split()[1:]


def test_no_help_loads_torch_sklearn_or_pandas():
    # every help in one interpreter each would cost ~0.1 s x 25; building the whole parser
    # (what any `--help` does) is the part that matters, then each command's own help text
    probe = (
        "import sys, contextlib, io\n"
        "from fathom.cli import main\n"
        f"for argv in {ALL_HELPS!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv + ['--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


@pytest.mark.parametrize(
    "argv",
    [["train", "--list"], ["train", "default", "epohcs=1"], ["synth", "--help"]],
    ids=["train-list", "mistyped-key", "synth-help"],
)
def test_quick_answers_do_not_load_torch(argv):
    assert _heavy_modules_after(*argv) == []


def test_spelled_out_help_defaults_match_the_configs():
    from fathom import help_defaults
    from fathom.data.csvtable import FORMATS
    from fathom.data.images import DownloadConfig
    from fathom.synth.csvcomp import CsvSynthConfig
    from fathom.synth.fathomnet import SynthConfig
    from fathom.synth.imagefolder import FolderSynthConfig

    for table, cls in [
        (help_defaults.SYNTH, SynthConfig),
        (help_defaults.FOLDER_SYNTH, FolderSynthConfig),
        (help_defaults.CSV_SYNTH, CsvSynthConfig),
        (help_defaults.DOWNLOAD, DownloadConfig),
    ]:
        assert table == {k: getattr(cls(), k) for k in table}
    assert help_defaults.CSV_FORMATS == FORMATS
