"""One module per `fathom` subcommand (see fathom/cli.py)."""
