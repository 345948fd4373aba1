"""The `fathom` command: one subcommand per stage of the flow.

Each stage lives in `fathom/commands/<name>.py` and defines HELP, DESCRIPTION,
`add_arguments(parser)` and `run(args)`. A command group (`fathom kaggle <verb>`) is a
package `fathom/commands/<name>/` whose `__init__.py` defines HELP, DESCRIPTION and VERBS,
with one such module per verb. Heavy imports (torch, timm, kaggle) happen inside `run`, so
`fathom --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from fathom import __version__
from fathom.errors import FathomError

# Order is the order of the flow; `fathom --help` lists them this way.
COMMANDS = [
    "demo",
    "synth",
    "inspect",
    "images",
    "folds",
    "score",
    "validate",
    "prior",
    "cache",
    "weights",
    "train",
    "oof",
    "predict",
    "tune",
    "submit",
    "report",
    "kernel",
    "kaggle",
    "compare",
]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error of fathom's: the
    usage block argparse prints first would read as a second error (and wraps over several
    lines for the commands with many options); `--help` still shows it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class IntermixedParser(Parser):
    """Lets key=value overrides come before or after the options (`--fold 0 lr=1e-3`):
    plain argparse stops collecting positionals at the first option."""

    def parse_known_args(self, args=None, namespace=None):
        if getattr(self, "_intermixing", False):  # the intermixed parser calls back in here
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def positive_int(text: str) -> int:
    """argparse's type for a count of at least 1 (a usage error in one line otherwise)."""
    value = int(text) if text.strip().lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fathom",
        description=(
            "fathom takes a Kaggle image-classification competition from raw files to an "
            "uploaded submission. Each subcommand reads files and writes files; run "
            "`fathom <command> --help` for one stage. Start with `fathom demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fathom {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an unexpected error (or set FATHOM_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        add_command(sub, name, f"fathom.commands.{name.replace('-', '_')}")
    return parser


def add_command(sub, name: str, module_name: str) -> None:
    """Register one command module under `sub`; a group's VERBS become nested subcommands
    (`fathom NAME <action>`, the verb in `args.<name>_command`)."""
    module = importlib.import_module(module_name)
    p = sub.add_parser(
        name,
        help=module.HELP,
        description=getattr(module, "DESCRIPTION", module.HELP),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = getattr(module, "VERBS", None)
    if verbs is None:
        module.add_arguments(p)
        # also accepted after the command (`fathom train ... --debug`); SUPPRESS keeps the
        # top-level flag's value when it is not given here
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        p.set_defaults(_run=module.run)
        return
    group = p.add_subparsers(dest=f"{name}_command", metavar="<action>", required=True)
    for verb in verbs:
        add_command(group, verb, f"{module_name}.{verb.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        sys.exit(0)
    debug = args.debug or os.environ.get("FATHOM_DEBUG", "") not in ("", "0")
    prefix = f"fathom {args.command}"
    try:
        code = args._run(args)
    except FathomError as exc:
        print(f"{prefix}: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(
            f"{prefix}: interrupted; finished outputs are kept: run the same command again "
            "to resume",
            file=sys.stderr,
        )
        sys.exit(130)
    except OSError as exc:
        # a full disk or a folder without write permission, met outside fileio's writers
        from fathom.fileio import os_error

        known = os_error(exc)
        if isinstance(known, FathomError):
            print(f"{prefix}: error: {known}", file=sys.stderr)
            sys.exit(2)
        unexpected(prefix, exc, debug)
    except Exception as exc:  # a bug, or a fault no reader checks yet: one line, no traceback
        unexpected(prefix, exc, debug)
    sys.exit(code or 0)


def one_line(exc: BaseException) -> str:
    """An error's message on one line: a second line would read as another error."""
    return " ".join(str(exc).split("\n")).strip() or type(exc).__name__


def unexpected(prefix: str, exc: BaseException, debug: bool) -> None:
    """Exit 1 with one line that says what broke and how to report it; the traceback only
    when asked (--debug or FATHOM_DEBUG=1), since to a user it reads as their own mistake."""
    if debug:
        traceback.print_exc()
    text = one_line(exc)[:300]
    print(
        f"{prefix}: unexpected error ({type(exc).__name__}: {text}); this is a bug in fathom: "
        f"please report it "
        "(an issue in fathom's repository) with the output of the same command run with "
        "--debug (or FATHOM_DEBUG=1), which shows the traceback",
        file=sys.stderr,
    )
    sys.exit(1)
