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
import sys

from fathom import __version__
from fathom.errors import FathomError

# Order is the order of the flow; `fathom --help` lists them this way.
COMMANDS = [
    "demo",
    "synth",
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


class IntermixedParser(argparse.ArgumentParser):
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fathom",
        description=(
            "fathom takes a Kaggle image-classification competition from raw files to an "
            "uploaded submission. Each subcommand reads files and writes files; run "
            "`fathom <command> --help` for one stage. Start with `fathom demo`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fathom {__version__}")
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
    try:
        code = args._run(args)
    except FathomError as exc:
        print(f"fathom {args.command}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"fathom {args.command}: interrupted; finished outputs are kept", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
