"""Atomic file writes: every output is written to a temp file beside it, then renamed.

A reader (or a resumed job) therefore sees either the old file or the complete new one,
never a half-written file, even if the writer is killed mid-write. A write that fails (a full
disk, a read-only folder) leaves the old file as it was and says which path and why.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it onto `path` if the block succeeds."""
    from fathom.errors import FathomError

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise FathomError(f"{path}: is a folder, not a file (choose a file name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates a new file (O_EXCL): a link planted under any name it could pick is
        # never opened
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_error(exc, path) from None
    # mkstemp makes the file 0600 whatever the umask: give it the mode open() would have, so
    # that teammates, a web server or a container with another uid can read what is written
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            if tmp_path.is_symlink():
                # the block's writer reopened the temp by name: had it been swapped for a link,
                # what was written went elsewhere and must not be renamed into place
                raise FathomError(f"{tmp_path}: became a symbolic link while written; not used")
            # the rename replaces whatever holds the name, a planted symbolic link included,
            # and never writes through it: the file a link points to stays as it was
            os.replace(tmp_path, path)
        except OSError as exc:
            raise os_error(exc, path) from None
    finally:
        if os.path.lexists(tmp_path):
            tmp_path.unlink()


def _umask() -> int:
    try:  # Linux says it without changing it: setting it, even briefly, races other threads
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it: put it back
    os.umask(mask)
    return mask


def os_error(exc: OSError, path: str | os.PathLike | None = None):
    """A FathomError naming the path and the reason, for the faults a user can fix (a full
    disk, a read-only or foreign folder); other OSErrors are returned unchanged."""
    from fathom.errors import FathomError

    where = exc.filename or path or "?"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FathomError(f"{where}: no space left on the disk (free some, then run again)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FathomError(f"{where}: permission denied (choose a folder you can write to)")
    if exc.errno == errno.EROFS:
        return FathomError(f"{where}: the file system is read-only (choose another folder)")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and path is not None:
        return FathomError(f"{where}: a file stands where {path} needs a folder")
    if exc.errno == errno.EFBIG:
        return FathomError(
            f"{where}: file too large (a file-size limit, `ulimit -f`, or the file system's)"
        )
    return exc


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove a file can be written in it, before long work
    rather than after it: FathomError naming the folder and why otherwise."""
    from fathom.errors import FathomError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FathomError(f"{folder}: the {what} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fathom-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        err = os_error(exc, folder)
        if isinstance(err, FathomError):
            raise FathomError(f"{err} (the {what})") from None
        raise
    return folder


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def plain_name(name: str, what: str = "name") -> str:
    """`name` if it is one plain file-name part, else FathomError: a name such as `../../x`
    or `/tmp/x` that becomes part of a path (runs/<name>) must never lead outside its folder.
    (A leading dot is refused too: `.` and `..` are the folder itself and its parent.)"""
    from fathom.errors import FathomError

    if (
        not isinstance(name, str)
        or not name.strip()
        or name.startswith(".")
        or any(ch in name for ch in "/\\\x00")
    ):
        raise FathomError(
            f"{what} {name!r} must be a plain name (no '/', no leading '.'), not a path"
        )
    return name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's SHA-256 hex digest, read in chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike, missing: str = "no such file") -> Any:
    """A JSON file's content; a missing or malformed file is a one-line FathomError."""
    from fathom.errors import FathomError

    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FathomError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise FathomError(f"{path}: not a UTF-8 text file") from None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame, **kwargs) -> Path:
    """Write a pandas DataFrame as CSV (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    from fathom.errors import FathomError

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            # torch's zip writer turns a failed write (a full disk, a file-size limit) into a
            # RuntimeError: "file write failed", or "[enforce fail at inline_container.cc]
            # unexpected pos ..." when a short write leaves the file shorter than it counted.
            # The previous file is untouched, since only the temp file was being written.
            if not _torch_write_failed(exc):
                raise
            raise FathomError(
                f"{path}: cannot write ({_why_write_failed(path)}: free some space, then run "
                "again; the previous file is kept)"
            ) from None
    return Path(path)


def _torch_write_failed(exc: RuntimeError) -> bool:
    text = str(exc).lower()
    return any(
        key in text for key in ("write", "inline_container", "unexpected pos", "streamwriter")
    )


def _why_write_failed(path: Path) -> str:
    """The likely reason a write stopped short: torch's message does not say."""
    import resource
    import shutil

    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            return f"a file-size limit of {soft} bytes is set (`ulimit -f`), or the disk is full"
        if shutil.disk_usage(Path(path).parent).free < 64 << 20:
            return "the disk is full"
    except (OSError, ValueError):
        pass
    return "the disk is probably full"


def load_torch(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """A torch file's content, tensors and plain containers only (weights_only: a checkpoint
    from a Kaggle dataset is untrusted input). A truncated, random or pickled-object file is a
    one-line FathomError; torch's own message would advise the unsafe weights_only=False."""

    import torch

    from fathom.errors import FathomError

    path = Path(path)
    if not path.is_file():
        raise FathomError(f"{path}: missing ({what})")
    try:
        with warnings.catch_warnings():
            # torch warns about a pickle protocol it may not handle, two lines before the one
            # this function says about the same file
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise os_error(exc, path) from None
    except Exception:  # torch raises several types: RuntimeError, UnpicklingError, EOFError
        raise FathomError(
            f"{path}: cannot read as a {what} (truncated, not a torch file, or holding "
            "objects other than tensors, which fathom never loads)"
        ) from None


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path)


def load_npz(path: str | os.PathLike, keys=None) -> dict:
    """The arrays of an .npz (all, or only those named in `keys`), as np.load gives them, but
    without copying: a stored (uncompressed) member, as `save_npz` writes them, is a read-only
    view of a private map of the file (numpy's zip reader copies it through zipfile in chunks,
    checking its CRC: ~4 s for FathomNet's three eval.npz, 1.4 GB). Anything else (a compressed
    member, a header version it does not know) is read by np.load. The map outlives the file
    name: `save_npz` replaces a file by renaming over it, so a view keeps the old contents."""
    import mmap
    import zipfile

    import numpy as np

    wanted = None if keys is None else set(keys)
    out, fallback = {}, []
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
        view = None
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            if wanted is not None and key not in wanted:
                continue
            span = _npy_span(fh, info) if info.filename.endswith(".npy") else None
            if span is None:
                fallback.append(key)
                continue
            if view is None:  # the whole file once: every member is a view of the same map
                view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            offset, shape, fortran, dtype = span
            count = int(np.prod(shape, dtype=np.int64))
            flat = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
            out[key] = flat.reshape(shape, order="F" if fortran else "C")
    if fallback:
        with np.load(path, allow_pickle=False) as data:
            out.update({k: data[k] for k in fallback})
    return out


def _npy_span(fh, info) -> tuple | None:
    """(offset of the data in the file, shape, Fortran order, dtype) of a stored .npy member,
    or None where it is not plainly mappable (compressed, encrypted, object dtype, a header
    numpy may read differently, or data running past the member)."""
    import struct
    import zipfile

    from numpy.lib import format as npy

    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    fh.seek(info.header_offset)
    local = fh.read(30)  # the local file header; its name and extra field lengths may differ
    if len(local) != 30 or local[:4] != b"PK\x03\x04":  # from the central directory's
        return None
    start = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
    fh.seek(start)
    version = npy.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(fh)
    else:
        return None
    offset = fh.tell()
    count = 1
    for n in shape:
        count *= n
    if dtype.hasobject or offset + count * dtype.itemsize > start + info.file_size:
        return None
    return offset, shape, fortran, dtype
