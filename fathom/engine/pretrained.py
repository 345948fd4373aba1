"""Pretrained weights the way a timm user gets them, and loading a weights file into a backbone.

`pretrained=true` means timm's default weights for the model: the file named by its pretrained
config (`hf_hub_id`, else `url`), taken from the standard Hugging Face cache when it is there,
else downloaded into that cache with `huggingface_hub.hf_hub_download` (which honours
`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE` and tokens). Offline (`HF_HUB_OFFLINE=1`, or no
network) only the cache counts. Weights that cannot be had are a one-line FathomError naming
the model and where fathom looked: a run that asked for ImageNet weights never starts from
random ones.

`pretrained=PATH` loads that file. Either way the file goes through `load_weights_file`, which
keeps every backbone tensor, makes the head new, and refuses a file that does not fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from fathom.errors import FathomError

# timm's own preference when a hub repo holds several weight files
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class HubWeights:
    """Where timm's default weights for one model live on the Hugging Face hub."""

    model: str
    repo_id: str
    revision: str | None
    filenames: tuple[str, ...]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline() -> bool:
    """HF_HUB_OFFLINE read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return _truthy(env) if env is not None else bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hub_weights(name: str) -> HubWeights | None:
    """timm's default pretrained source for `name` on the hub; None when it has only a url."""
    cfg = _pretrained_cfg(name)
    if not cfg.hf_hub_id:
        return None
    repo_id, _, revision = cfg.hf_hub_id.partition("@")  # timm's hf_split
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILES
    return HubWeights(name, repo_id, revision or None, files)


def _pretrained_cfg(name: str):
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # timm raises different errors for names without a pretrained cfg
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise FathomError(
            f"model {name}: timm has no pretrained weights for it; "
            "set pretrained=false, or pretrained=PATH to a weights file"
        )
    return cfg


def cached_file(name: str) -> Path | None:
    """The local file of `name`'s default weights in the HF (or torch hub) cache; never a download."""
    from huggingface_hub import try_to_load_from_cache

    hub = hub_weights(name)
    if hub is not None:
        for filename in hub.filenames:
            hit = try_to_load_from_cache(
                hub.repo_id, filename, cache_dir=hub_cache_dir(), revision=hub.revision
            )
            if isinstance(hit, str):
                return Path(hit)
        return None
    url = _pretrained_cfg(name).url
    local = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return local if local.is_file() else None


def fetch(name: str) -> Path:
    """`name`'s default weights file: from the cache, else downloaded into it (unless offline).
    FathomError, one line, naming the model and where fathom looked, when neither works."""
    local = cached_file(name)
    if local is not None:
        return local
    hub = hub_weights(name)
    if hub is None:
        return _fetch_url(name)
    where = f"{hub.repo_id} in the Hugging Face cache {hub_cache_dir()}"
    if offline():
        raise FathomError(
            f"pretrained weights for {name}: not in {where}, and HF_HUB_OFFLINE is set "
            f"(fetch them where there is internet: fathom weights fetch; or pretrained=PATH)"
        )
    from huggingface_hub import hf_hub_download

    missing_here, missing_there = _hub_missing_file_errors()
    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, as HF_HUB_OFFLINE above
    for filename in hub.filenames:
        try:
            path = hf_hub_download(
                hub.repo_id,
                filename,
                revision=hub.revision,
                cache_dir=hub_cache_dir(),
                endpoint=endpoint,
                library_name="timm",
                library_version=timm.__version__,
            )
            return Path(path)
        except Exception as exc:  # network, auth, missing repo: all end the same way
            # a repo without this file: try the next (not a cache miss with no network,
            # which older huggingface_hub releases make a kind of the same error)
            if isinstance(exc, missing_there) and not isinstance(exc, missing_here):
                continue
            reason = _first_words(str(exc))
            raise FathomError(
                f"pretrained weights for {name}: not in {where}, and downloading "
                f"{hub.repo_id}/{filename} from {endpoint or 'huggingface.co'} failed "
                f"({type(exc).__name__}{': ' + reason if reason else ''})"
            ) from None
    raise FathomError(
        f"pretrained weights for {name}: {hub.repo_id} has none of {', '.join(hub.filenames)}"
    )


def _hub_missing_file_errors() -> tuple[type, type]:
    """(the file is not in the local cache, the repo has no such file) as this
    huggingface_hub names them: `errors.RemoteEntryNotFoundError` is recent (Kaggle's image
    may hold a release without it), `utils.EntryNotFoundError` is the older name. The local
    one must be caught first: in older releases it is a kind of EntryNotFoundError."""
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        from huggingface_hub.utils import LocalEntryNotFoundError
    try:
        from huggingface_hub.errors import RemoteEntryNotFoundError as remote
    except ImportError:
        try:
            from huggingface_hub.errors import EntryNotFoundError as remote
        except ImportError:
            from huggingface_hub.utils import EntryNotFoundError as remote
    return LocalEntryNotFoundError, remote


def _first_words(text: str, limit: int = 200) -> str:
    """An error's first line, shortened at a word boundary (never cut mid-word)."""
    import textwrap

    lines = text.strip().splitlines()
    return textwrap.shorten(lines[0], limit, placeholder=" ...") if lines else ""


def _fetch_url(name: str) -> Path:
    url = _pretrained_cfg(name).url
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if offline():
        raise FathomError(
            f"pretrained weights for {name}: not at {target}, and HF_HUB_OFFLINE is set"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=True)
    except Exception as exc:
        raise FathomError(
            f"pretrained weights for {name}: not at {target}, and downloading {url} failed "
            f"({type(exc).__name__})"
        ) from None
    return target


def load_weights_file(backbone: nn.Module, path: Path, name: str) -> None:
    """Load every backbone tensor of `path` into `backbone`; the head stays new.

    The file's own head (another task's, or none) is dropped, so weights trained for 1000
    ImageNet classes or 290 FathomNet ones load under any head. Anything else missing, extra
    or of another shape is a FathomError: a file that does not fit never trains as random init.
    """
    if not path.is_file():
        raise FathomError(f"{path}: no such weights file for {name}")
    try:
        # timm's reader: safetensors or torch files, `state_dict`/`model` wrappers, `module.`
        # prefixes; weights_only, since a weights file is untrusted input
        state = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # torch and timm raise many types for a file that is not weights
        text = _first_line(exc)
        # torch's message for a pickle it refuses advises weights_only=False, the unsafe way
        if "weights_only" in text or "weights only" in text.lower():
            text = "truncated, not a weights file, or holding objects other than tensors"
        raise FathomError(f"{path}: cannot load as {name} weights ({text})") from None
    head = {n for n, _ in _named_tensors(backbone.get_classifier())}
    head_prefix = _head_prefix(backbone)
    heads = {f"{head_prefix}{n}" for n in head}
    classifier = backbone.pretrained_cfg.get("classifier") if backbone.pretrained_cfg else None
    dropped = tuple(
        f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier or ())
    )
    state = {
        k: v for k, v in state.items() if k not in heads and not (dropped and k.startswith(dropped))
    }
    try:
        result = backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise FathomError(f"{path}: not {name} weights ({_first_line(exc)})") from None
    missing = [k for k in result.missing_keys if k not in heads]
    if missing or result.unexpected_keys:
        bad = missing or result.unexpected_keys
        what = "lacks" if missing else "has unknown"
        raise FathomError(
            f"{path}: not {name} weights ({what} {len(bad)} tensor(s), e.g. {bad[0]!r})"
        )


def _named_tensors(module: nn.Module):
    yield from module.named_parameters()
    yield from module.named_buffers()


def _head_prefix(backbone: nn.Module) -> str:
    head = backbone.get_classifier()
    for n, m in backbone.named_modules():
        if m is head:
            return f"{n}." if n else ""
    return ""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


# --- a folder of pretrained files for machines without internet (Kaggle kernels)

EXPORT_MANIFEST = "fathom-pretrained.json"


def export(configs: list[str], out: str | Path) -> list[dict]:
    """Put the pretrained files that `configs` need into `out`, laid out as a Hugging Face hub
    cache (plain files, no symbolic links, so it survives a Kaggle dataset's zip). A machine
    with `HF_HUB_CACHE=out HF_HUB_OFFLINE=1` then finds them as `pretrained=true` looks for
    them: the training kernels do exactly that. Returns (and writes to `out/fathom-pretrained.json`)
    one entry per model: model, repo, file (relative to out), bytes."""
    import shutil

    from fathom import fileio
    from fathom.config import load_config

    out = Path(out)
    models: dict[str, list[str]] = {}
    for name in configs:
        cfg = load_config(name)
        if cfg.pretrained is True:
            models.setdefault(cfg.model, []).append(cfg.name)
    if not models:
        raise FathomError(
            f"{', '.join(configs)}: no config asks for pretrained=true; nothing to fetch"
        )
    entries = []
    for model, users in models.items():
        hub = hub_weights(model)
        if hub is None:
            raise FathomError(
                f"model {model}: timm's weights are not on the Hugging Face hub; give the "
                "kernel a weights file instead (pretrained=PATH)"
            )
        source = fetch(model)
        # the cache's own layout: snapshots/<commit>/<file> and refs/<revision> -> commit
        commit = source.parent.name if source.parent.parent.name == "snapshots" else "local"
        repo_dir = f"models--{hub.repo_id.replace('/', '--')}"
        rel = Path(repo_dir) / "snapshots" / commit / source.name
        with fileio.atomic_path(out / rel) as tmp:
            shutil.copyfile(source, tmp)  # follows the cache's link to the blob
        fileio.write_text(out / repo_dir / "refs" / (hub.revision or "main"), commit)
        entries.append(
            {
                "model": model,
                "configs": users,
                "repo": hub.repo_id,
                "file": rel.as_posix(),
                "bytes": (out / rel).stat().st_size,
            }
        )
    fileio.write_json(out / EXPORT_MANIFEST, {"models": entries})
    return entries
