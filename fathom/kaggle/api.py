"""The one door to Kaggle: an authenticated `KaggleApi`, and Kaggle's errors in one line.

Why a module of its own: `import kaggle` authenticates at import time (it reads the config
folder, creates it if missing, and prints a page of help or exits when there are no
credentials), so it is imported here, lazily, with its output captured. Every command takes
the api object as an argument, so tests pass a recording stand-in instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fathom.errors import FathomError

COMPETITION = "fathomnet-out-of-sample-detection"

CREDENTIALS_HINT = (
    "no Kaggle credentials: create a token at https://www.kaggle.com/settings/api and save it as "
    "~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY "
    "(or KAGGLE_API_TOKEN) in the environment"
)


def add_slug_argument(parser) -> None:
    """The `--competition` option every Kaggle-facing command takes."""
    parser.add_argument(
        "--competition", default=COMPETITION, help=f"Kaggle slug (default {COMPETITION})"
    )


# Kaggle's naming rules, checked here before Kaggle refuses (or, worse, renames) anything.
# A slug is lowercase words joined by single dashes: Kaggle derives it from the title (the slug
# with spaces), and a `--` or a trailing dash would not survive that round trip.
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}")
KERNEL_SLUG_LENGTH = (5, 50)  # a kernel title: 5-50 characters
DATASET_SLUG_LENGTH = (6, 50)  # a dataset title: 6-50 characters


def check_owner(owner: str, what: str = "owner") -> str:
    """A Kaggle user name: letters, digits, `_` and `-` (never a path such as me/../x)."""
    if not _OWNER.fullmatch(owner or ""):
        raise FathomError(
            f"{what} {owner!r}: not a Kaggle user name (letters, digits, '_' and '-')"
        )
    return owner


def check_slug(slug: str, what: str, length: tuple[int, int]) -> str:
    low, high = length
    if not (_SLUG.fullmatch(slug or "") and low <= len(slug) <= high):
        raise FathomError(
            f"{what} {slug!r}: want {low}-{high} lowercase letters and digits, words joined by "
            "single dashes (no '--', no leading or trailing dash)"
        )
    return slug


def check_ref(ref: str, what: str = "dataset", length=DATASET_SLUG_LENGTH) -> tuple[str, str]:
    """OWNER/SLUG of a Kaggle dataset (or kernel), both parts checked."""
    owner, sep, slug = (ref or "").partition("/")
    if not sep:
        raise FathomError(f"{what} {ref!r}: want OWNER/SLUG")
    return check_owner(owner, f"{what} {ref!r}: owner"), check_slug(
        slug, f"{what} {ref!r}: slug", length
    )


def connect() -> Any:
    """An authenticated `kaggle.api.kaggle_api_extended.KaggleApi`, or FathomError with the hint."""
    sink = io.StringIO()  # kaggle prints its own multi-page help; we say it in one line
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        except ImportError:
            raise FathomError("the kaggle package is not installed (pip install kaggle)") from None
        except (Exception, SystemExit):
            raise FathomError(CREDENTIALS_HINT) from None
        api = KaggleApi()
        try:
            api.authenticate()
        except (Exception, SystemExit):
            raise FathomError(CREDENTIALS_HINT) from None
    warn_open_permissions()
    return api


def warn_open_permissions() -> None:
    """kaggle.json readable by others: say so (once, one line), as the kaggle CLI does."""
    folder = os.environ.get("KAGGLE_CONFIG_DIR") or str(Path.home() / ".kaggle")
    path = Path(folder) / "kaggle.json"
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        print(f"warning: {path} is readable by other users; run `chmod 600 {path}`")


def _secrets(api: Any = None) -> list[str]:
    values = [os.environ.get("KAGGLE_KEY", ""), os.environ.get("KAGGLE_API_TOKEN", "")]
    config = getattr(api, "config_values", None)
    if isinstance(config, dict):
        values += [str(config.get("key", "")), str(config.get("token", ""))]
    return [v for v in values if len(v) >= 6]


def redact(text: str, api: Any = None) -> str:
    """`text` with any Kaggle key or token replaced, so no message can leak one."""
    for secret in _secrets(api):
        text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def kaggle_errors(what: str, api: Any = None, competition: str | None = None) -> Iterator[None]:
    """Turn what KaggleApi raises into one FathomError line that says what to do."""
    import requests

    try:
        yield
    except FathomError:
        raise
    except requests.HTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        detail = redact(str(exc), api)
        if status == 401:
            raise FathomError(
                f"{what}: Kaggle rejected the credentials (401); {CREDENTIALS_HINT}"
            ) from None
        if status == 403 and competition:
            raise FathomError(
                f"{what}: Kaggle refused (403): accept the competition's rules first at "
                f"https://www.kaggle.com/competitions/{competition}/rules ({detail})"
            ) from None
        if status == 403:
            raise FathomError(f"{what}: Kaggle refused (403): no access ({detail})") from None
        if status == 404:
            raise FathomError(f"{what}: not found on Kaggle (404) ({detail})") from None
        raise FathomError(f"{what}: Kaggle answered HTTP {status} ({detail})") from None
    except requests.ConnectionError:
        raise FathomError(f"{what}: cannot reach Kaggle (no internet connection?)") from None
    except (ValueError, OSError) as exc:  # kaggle's own checks of metadata and folders
        raise FathomError(f"{what}: {redact(str(exc), api)}") from None


def http_status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def default_owner() -> str:
    """Your Kaggle user name from KAGGLE_USERNAME or kaggle.json (read as JSON; no import of kaggle)."""
    import json

    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    folder = os.environ.get("KAGGLE_CONFIG_DIR") or str(Path.home() / ".kaggle")
    try:
        return str(json.loads((Path(folder) / "kaggle.json").read_text()).get("username", ""))
    except (OSError, ValueError, AttributeError):
        return ""
