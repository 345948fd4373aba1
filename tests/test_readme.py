"""Every shell command README.md shows, checked as a newcomer would paste it.

The commands are read from the README's ```bash blocks (a line's `# ...` comment dropped, `&&`
splitting one line into several commands); nothing here lists them again, so a command added
to the README is checked too. How each is checked:

- default run (fast, no training): every `fathom ...` command (and the `fathom ...` after
  `torchrun ... -m`) parses with fathom's own parser; every `fathom train` config resolves and
  takes its key=value overrides (configs/NAME.toml, then the packaged ones); every
  `upload-weights --config` resolves; every `make TARGET` is a Makefile target.
- `slow` (`pytest -m slow`): the README's sections run for real, in one scratch folder, in the
  order a newcomer needs them (Training, then Tuning, Kaggle and the folder dataset), on the
  synthetic competition with tiny settings appended (TINY below: a small competition, one
  epoch, 32 px, no ImageNet download). Kaggle's network is the recording stand-in
  tests/kaggle_fake.py (credentials: KAGGLE_USERNAME=me). Not run, only parsed: `fathom demo`
  (tests/test_demo.py runs it), `make` (it installs a venv), `torchrun`, `--gpus` (no GPU here),
  `weights fetch` (the Hugging Face hub), and the real-competition section (the real data and a
  GPU; each of its subcommands runs in the other sections).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from kaggle_fake import FakeKaggleApi

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Command:
    section: str
    line: int  # in README.md, 1-based
    argv: tuple[str, ...]

    @property
    def fathom_argv(self) -> list[str] | None:
        """The arguments after `fathom` (or `torchrun ... -m fathom`); None for another tool."""
        argv = list(self.argv)
        if argv[0] == "fathom":
            return argv[1:]
        if argv[0] == "torchrun" and "-m" in argv:
            at = argv.index("-m")
            return argv[at + 2 :] if argv[at + 1] == "fathom" else None
        return None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}): {shlex.join(self.argv)}"


def readme_commands(text: str) -> list[Command]:
    commands, section, in_bash = [], "", False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```bash":
            in_bash = True
        elif line.strip().startswith("```"):
            in_bash = False
        elif in_bash and line.strip():
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                commands.append(Command(section, number, tuple(tokens[:cut])))
                tokens = tokens[cut + 1 :]
    return commands


COMMANDS = readme_commands(README.read_text())


def test_the_readme_shows_commands_in_every_kind_of_block():
    # the extraction itself: if it found nothing, every test below would pass vacuously
    sections = {c.section for c in COMMANDS}
    assert len(COMMANDS) > 30
    assert {"Training", "Tuning, osd and submitting", "Single-label folder datasets"} <= sections
    assert all(c.argv[0] in ("fathom", "make", "torchrun") for c in COMMANDS), [
        str(c) for c in COMMANDS if c.argv[0] not in ("fathom", "make", "torchrun")
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"L{c.line}-{c.argv[0]}")
def test_each_readme_command_parses_and_its_config_resolves(command, tmp_path, monkeypatch):
    from fathom.cli import build_parser
    from fathom.config import load_config, resolve_config_path

    monkeypatch.chdir(tmp_path)  # not the checkout: `fathom/configs/...` paths must not resolve
    if command.argv[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in command.argv[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), str(command)
        return
    argv = command.fathom_argv
    assert argv, f"{command}: not a fathom command"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{command}: does not parse (exit {exc.code})")
    if args.command == "train" and not args.list:
        cfg = load_config(args.config, list(args.overrides), name=args.name)
        assert cfg.name
    if getattr(args, "kaggle_command", None) == "upload-weights":
        for config in args.configs:
            assert resolve_config_path(config).is_file()


# --- the slow run: the README's sections, for real ---------------------------------------

# appended to the README's own arguments (argparse and key=value overrides: the last one wins)
TINY = {
    "synth": ["--n-train", "300", "--n-eval", "120", "--width", "64", "--height", "48"],
    "synth folder": ["--smallest", "3", "--size", "32"],
    "train": [
        "epochs=1",
        "stage1_epochs=0",
        "img_size=32",
        "cache_size=32",
        "pretrained=false",
        "num_workers=0",
    ],
    "cache": ["--size", "32"],
}
NOT_RUN = {"demo", "torchrun", "make", "--gpus", "weights"}
STORY = [
    "Training",
    "Tuning, osd and submitting",
    "Kaggle: credentials, weights, kernels",
    "Single-label folder datasets",
]


def _tiny(argv: list[str]) -> list[str]:
    if argv[0] == "synth":
        return argv + TINY["synth folder" if "folder" in argv else "synth"]
    if argv[0] == "train" and "--list" not in argv:
        return argv + TINY["train"]
    if argv[0] == "cache":
        return argv + TINY["cache"]
    return argv


def _skipped(command: Command) -> bool:
    return (
        command.argv[0] in NOT_RUN
        or bool(set(command.argv) & NOT_RUN)
        or (command.fathom_argv is not None and command.fathom_argv[:1] == ["demo"])
    )


@pytest.mark.slow
def test_the_readme_runs_as_pasted(tmp_path, monkeypatch, run_cli):
    import fathom.kaggle.api as kaggle_api

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_USERNAME", "me")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-key")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    fake = FakeKaggleApi()
    monkeypatch.setattr(kaggle_api, "connect", lambda *a, **k: fake)
    ran = []
    for section in STORY:
        for command in [c for c in COMMANDS if c.section == section]:
            if _skipped(command):
                continue
            code, out, err = run_cli(*_tiny(command.fathom_argv))
            assert code in (0, None), f"{command}\n{out[-2000:]}\n{err[-2000:]}"
            ran.append(command)
    assert len(ran) > 20
    assert (tmp_path / "runs" / "report" / "index.html").is_file()
    assert (tmp_path / "submissions" / "fish.csv").is_file()
    assert any(name == "kernels_push" for name, _ in fake.calls)


def test_upload_weights_takes_a_packaged_recipe_by_name_from_any_folder(
    tmp_path, monkeypatch, run_cli
):
    monkeypatch.chdir(tmp_path)  # no fathom/configs/ here: the name must be looked up
    code, out, err = run_cli(
        "kaggle",
        "upload-weights",
        "--config",
        "fathomnet_effb0",
        "--dataset",
        "me/fathom-w",
        "--out",
        "staged",
        "--dry-run",
    )
    assert code in (0, None), err
    assert (tmp_path / "staged" / "configs" / "fathomnet_effb0.toml").is_file()


def test_every_command_in_the_readme_table_exists(run_cli):
    # the table's first column is a synopsis (`fathom train CONFIG [key=value ...]`), not a
    # command to paste: its words up to the first placeholder must name a command (and verb)
    synopses = re.findall(r"^\| `fathom ([^`]+)`", README.read_text(), re.M)
    rows = []
    for synopsis in synopses:
        words = []
        for token in synopsis.split():
            if not re.fullmatch(r"[a-z-]+(/[a-z-]+)*", token) or token.startswith("-"):
                break
            words.append(token)
        rows.append(" ".join(words))
    assert len(rows) > 15
    for words in rows:
        head, *rest = words.split()
        verbs = rest[0].split("/") if rest and not rest[0].startswith("-") else [None]
        for verb in verbs:
            code, out, _ = run_cli(head, *([verb] if verb else []), "--help")
            assert code == 0 and out.startswith("usage: fathom"), words
