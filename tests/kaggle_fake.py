"""A recording stand-in for kaggle's KaggleApi: same method names and parameters, no network.

Each call is appended to `calls` as (method, {argument: value}); the files Kaggle would read
(metadata, the folder to upload) are snapshotted at call time in `seen`.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import requests


def http_error(status: int, message: str = "") -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(message or f"{status} Client Error", response=response)


class FakeKaggleApi:
    COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE = "Could not submit to competition"

    def __init__(
        self, archive: dict[str, bytes] | None = None, dataset_exists: bool = True, raises=None
    ):
        self.archive = archive or {}
        self.dataset_exists = dataset_exists
        self.raises = raises or {}  # method name -> exception to raise
        self.calls: list[tuple[str, dict]] = []
        self.seen: dict[str, object] = {}
        self.config_values = {"username": "alice", "key": "s3cr3t-key-value"}

    def _record(self, name: str, **kwargs):
        self.calls.append((name, kwargs))
        if name in self.raises:
            raise self.raises[name]

    def competition_download_files(self, competition, path=None, force=False, quiet=True):
        self._record(
            "competition_download_files",
            competition=competition,
            path=path,
            force=force,
            quiet=quiet,
        )
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as zf:
            for name, data in self.archive.items():
                zf.writestr(name, data)

    def competition_submit(self, file_name, message, competition, quiet=False, sandbox=False):
        self._record(
            "competition_submit",
            file_name=file_name,
            message=message,
            competition=competition,
            quiet=quiet,
        )
        self.seen["submitted_bytes"] = Path(file_name).read_bytes()
        return SimpleNamespace(message="Successfully submitted", ref=123)

    def competition_submissions(
        self, competition, group=None, sort=None, page_number=-1, page_token="", page_size=20
    ):
        self._record("competition_submissions", competition=competition, page_size=page_size)
        return [
            SimpleNamespace(
                ref=2,
                date="2026-11-23T10:00:00.000Z",
                file_name="blend.csv",
                description="blend | CV 0.5100",
                status=SimpleNamespace(name="COMPLETE"),
                public_score="0.4921",
                private_score="0.4877",
            ),
            SimpleNamespace(
                ref=1,
                date="2026-11-22T09:00:00.000Z",
                file_name="prior.csv",
                description="prior | CV unknown",
                status=SimpleNamespace(name="PENDING"),
                public_score=None,
                private_score=None,
            ),
        ]

    def dataset_status(self, dataset, format=None):
        self._record("dataset_status", dataset=dataset)
        if not self.dataset_exists:
            raise http_error(404)
        return "ready"

    def _snapshot(self, folder, ignore_patterns=None):
        import fnmatch

        folder = Path(folder)
        self.seen["dataset_metadata"] = json.loads((folder / "dataset-metadata.json").read_text())
        # kaggle matches ignore patterns against each top-level name (DEFAULT_IGNORE_PATTERNS too)
        self.seen["dataset_files"] = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file()
            and not any(
                fnmatch.fnmatch(p.relative_to(folder).parts[0], pat)
                for pat in ignore_patterns or ()
            )
        )

    def dataset_create_new(
        self,
        folder,
        public=False,
        quiet=False,
        convert_to_csv=True,
        dir_mode="skip",
        ignore_patterns=None,
    ):
        self._record("dataset_create_new", folder=folder, public=public, dir_mode=dir_mode)
        self._snapshot(folder, ignore_patterns)
        return SimpleNamespace(
            error=None, url="https://www.kaggle.com/datasets/alice/fathom-weights", status="ok"
        )

    def dataset_create_version(
        self,
        folder,
        version_notes,
        quiet=False,
        convert_to_csv=True,
        delete_old_versions=False,
        dir_mode="skip",
        ignore_patterns=None,
    ):
        self._record(
            "dataset_create_version", folder=folder, version_notes=version_notes, dir_mode=dir_mode
        )
        self._snapshot(folder, ignore_patterns)
        return SimpleNamespace(
            error=None, url="https://www.kaggle.com/datasets/alice/fathom-weights", status="ok"
        )

    def kernels_push(self, folder, timeout=None, acc=None):
        self._record("kernels_push", folder=folder, timeout=timeout, acc=acc)
        self.seen["kernel_metadata"] = json.loads(
            (Path(folder) / "kernel-metadata.json").read_text()
        )
        return SimpleNamespace(
            error=None, url="https://www.kaggle.com/code/alice/x", version_number=3
        )

    def kernels_status(self, kernel):
        self._record("kernels_status", kernel=kernel)
        return SimpleNamespace(status=SimpleNamespace(name="RUNNING"), failure_message="")

    def kernels_output(
        self,
        kernel,
        path,
        file_pattern=None,
        force=False,
        quiet=True,
        page_token=None,
        page_size=20,
    ):
        self._record("kernels_output", kernel=kernel, path=path, force=force)
        out = Path(path) / "submission.csv"
        out.write_text("id,categories,osd\n")
        return [str(out)], ""


def kernel_template():
    """fathom/kaggle/kernel_template.py loaded as the kernel runs it: a standalone script, not
    through the fathom package (a kernel has no fathom until the script installs it)."""
    path = Path(__file__).resolve().parents[1] / "fathom" / "kaggle" / "kernel_template.py"
    spec = importlib.util.spec_from_file_location("kernel_template", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kaggle_mounts(tmp_path: Path, weights: str = "alice/fathom-weights") -> tuple[Path, dict]:
    """A kernel's /kaggle folders under tmp_path: `input/` with the (empty) weights dataset
    attached, and the environment that points the kernel template at `input/`, `w/` (its
    working folder) and `t/` (its temporary one)."""
    inp = tmp_path / "input"
    (inp / "datasets" / weights).mkdir(parents=True)
    (inp / "datasets" / weights / f"{weights.split('/')[1]}.json").write_text("{}")
    env = {
        "FATHOM_KAGGLE_INPUT": str(inp),
        "FATHOM_KAGGLE_WORKING": str(tmp_path / "w"),
        "FATHOM_KAGGLE_TMP": str(tmp_path / "t"),
    }
    return inp, env
