"""Kaggle kernels generated from the package: `kernels/<name>/` = metadata + one script.

The script is `fathom/kernel_template.py` with its SETTINGS filled in: which competition and
datasets to find under /kaggle/input, and which fathom commands to run there. Kinds:

- `predict`: every run's `fathom predict` on the hidden eval set, then `fathom submit` to
  /kaggle/working/submission.csv (internet off, as code competitions require); the
  `fathom predict` options among `--arg`s (`--arg=--tiles=3`, `--arg=--tta`) go to every
  predict step, the others to submit;
- `train`: two folds of one experiment, one per T4 of Kaggle's "GPU T4 x2" (K folds make
  ceil(K/2) kernels, which Kaggle runs as separate jobs at once);
- `prior`: the frequency-prior baseline, a check that the kernel machinery works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fathom import fileio
from fathom.errors import FathomError
from fathom.fileio import plain_name
from fathom.kaggle.api import (
    COMPETITION,
    CREDENTIALS_HINT,
    KERNEL_SLUG_LENGTH,
    check_owner,
    check_ref,
    check_slug,
    default_owner,
    kaggle_errors,
)
from fathom.runs import MODEL_FILES, read_tuning, run_members

KINDS = ("predict", "train", "prior")
METADATA = "kernel-metadata.json"
# the accelerators a kernel's metadata may name (kagglesdk's documented machine shapes; the TPU
# is left out: fathom trains with torch on CUDA). NvidiaTeslaT4 is "GPU T4 x2": two T4s.
MACHINE_SHAPES = ("NvidiaTeslaT4", "NvidiaTeslaP100")
DEFAULT_MACHINE = "NvidiaTeslaT4"
# Kaggle's image has a torch without Pascal (sm_60) kernels: a P100 fails at its first CUDA op
NEEDS_OWN_TORCH = {
    "NvidiaTeslaP100": "Kaggle's image has a torch built without Pascal (sm_60) kernels, so a "
    "P100 fails at the first CUDA operation (kaggle-cli issue 1151)"
}
FOLDS_PER_TRAIN_KERNEL = 2  # one per T4 of NvidiaTeslaT4
# `fathom predict` options a predict kernel's --arg may carry (to its predict steps), and
# whether each takes a value
PREDICT_OPTIONS = {
    "--tiles": True,
    "--tile-overlap": True,
    "--tile-blend": True,
    "--tta": False,
    "--no-tta": False,
}
_SETTINGS_LINE = re.compile(
    r"^SETTINGS: dict = \{.*?^\}  # `fathom kernel build` writes the real settings here$",
    re.S | re.M,
)


@dataclass(frozen=True)
class KernelSpec:
    name: str  # the kernel's slug; its title is the slug with spaces, so the two always agree
    owner: str
    kind: str = "predict"
    weights_dataset: str = ""  # owner/slug written by `fathom kaggle upload-weights`
    competition: str = COMPETITION
    images_dataset: str | None = None  # owner/slug of a dataset holding the images, if any
    runs: tuple[str, ...] = ()  # predict: run folder names inside the weights dataset
    config: str | None = None  # train: a config file name under the dataset's configs/
    fold: int | None = None  # train: one fold (or `folds`)
    folds: tuple[int, ...] = ()  # train: the folds, one per GPU at once
    folds_file: str | None = None  # train: a file name under the dataset's folds/
    extra_args: tuple[str, ...] = ()  # for `submit` (appended) or `train` (key=value overrides)
    predict_args: tuple[str, ...] = ()  # predict: options of every `fathom predict` step
    gpu: bool = True
    machine_shape: str | None = DEFAULT_MACHINE
    private: bool = True
    torch_build: str | None = None  # a torch wheel in the weights dataset, installed first

    @property
    def train_folds(self) -> tuple[int, ...]:
        return self.folds or ((self.fold,) if self.fold is not None else ())

    def check(self) -> None:
        check_slug(self.name, "kernel name", KERNEL_SLUG_LENGTH)
        if not self.owner:
            raise FathomError("kernel owner (your Kaggle user name) is empty: pass --owner")
        check_owner(self.owner, "kernel owner")
        if self.kind not in KINDS:
            raise FathomError(f"kernel kind {self.kind!r}: choose from {', '.join(KINDS)}")
        check_ref(self.weights_dataset, "weights dataset")
        if self.images_dataset:
            check_ref(self.images_dataset, "images dataset")
        if self.gpu and self.machine_shape not in MACHINE_SHAPES:
            raise FathomError(
                f"--machine-shape {self.machine_shape!r}: choose from {', '.join(MACHINE_SHAPES)}"
            )
        if self.gpu and self.machine_shape in NEEDS_OWN_TORCH and not self.torch_build:
            raise FathomError(
                f"--machine-shape {self.machine_shape}: {NEEDS_OWN_TORCH[self.machine_shape]}; "
                f"use {DEFAULT_MACHINE} (two T4s), or name a torch wheel with sm_60 kernels "
                "that the weights dataset holds (--torch-build FILE.whl)"
            )
        if self.torch_build is not None:
            plain_name(self.torch_build, "--torch-build")
            if not re.fullmatch(r"torch-[^-]+-[^-]+-[^-]+-[^-]+\.whl", self.torch_build):
                raise FathomError(
                    f"--torch-build {self.torch_build!r}: want a torch wheel's file name "
                    "(torch-VERSION-PY-ABI-PLATFORM.whl)"
                )
        # the path rule: a name becomes a path under the dataset's runs/, configs/ or folds/
        for run in self.runs:
            plain_name(run, "run")
        if self.config is not None:
            plain_name(self.config, "--config")
        if self.folds_file is not None:
            plain_name(self.folds_file, "--folds-file")
        if self.kind == "predict" and not self.runs:
            raise FathomError("a predict kernel needs its runs (--tune FILE, or --run EXP)")
        if self.kind == "train" and (
            not self.config or not self.train_folds or not self.folds_file
        ):
            raise FathomError(
                "a train kernel needs --config, --fold (or --n-folds) and --folds-file"
            )
        if any(k < 0 for k in self.train_folds):
            raise FathomError(f"fold numbers start at 0, not {min(self.train_folds)}")

    @property
    def title(self) -> str:
        return self.name.replace("-", " ")


def tuned_runs(tune: str | Path | None) -> tuple[str, ...]:
    """The run members of a `fathom tune` file (the runs a predict kernel predicts with); the
    frequency prior is left out: `fathom submit` computes it in the kernel."""
    if not tune:
        return ()
    return tuple(e["name"] for e in run_members(read_tuning(tune, need=("experiments",))))


# the options of `fathom kernel build` that `specs` takes, by their argparse names
SPEC_OPTIONS = (
    "kind",
    "owner",
    "dataset",
    "competition",
    "images_dataset",
    "runs",
    "tune",
    "config",
    "folds_file",
    "fold",
    "n_folds",
    "extra_args",
    "cpu",
    "machine_shape",
    "public",
    "torch_build",
)


def specs(
    name: str,
    kind: str = "predict",
    owner: str | None = None,
    dataset: str | None = None,
    competition: str = COMPETITION,
    images_dataset: str | None = None,
    runs: tuple[str, ...] = (),
    tune: str | Path | None = None,
    config: str | None = None,
    folds_file: str | None = None,
    fold: int | None = None,
    n_folds: int | None = None,
    extra_args: tuple[str, ...] = (),
    cpu: bool = False,
    machine_shape: str | None = DEFAULT_MACHINE,
    public: bool = False,
    torch_build: str | None = None,
) -> list[KernelSpec]:
    """The kernels `fathom kernel build` writes: one, or for `train` one per two folds (one
    fold per T4 of Kaggle's T4 x2: K folds make ceil(K/2) kernels).

    The owner defaults to your Kaggle user name, the weights dataset to
    <owner>/fathom-weights, a predict kernel's runs to the experiments of `tune`.
    """
    # the owner of a --dataset OWNER/SLUG is a Kaggle user name too: the kernel's, when no
    # other is known
    owner = owner or default_owner() or (dataset or "").partition("/")[0]
    if not owner:
        raise FathomError(f"--owner needed (your Kaggle user name); or {CREDENTIALS_HINT}")
    common = dict(
        owner=owner,
        kind=kind,
        weights_dataset=dataset or f"{owner}/fathom-weights",
        competition=competition,
        images_dataset=images_dataset,
        runs=tuple(runs) or tuned_runs(tune),
        config=config,
        folds_file=folds_file,
        extra_args=tuple(extra_args),
        gpu=not cpu and kind != "prior",  # the prior needs no accelerator
        machine_shape=None if cpu or kind == "prior" else machine_shape or DEFAULT_MACHINE,
        private=not public,
        torch_build=torch_build,
    )
    if kind == "predict":
        common["predict_args"], common["extra_args"] = split_predict_args(tuple(extra_args))
    if kind != "train":
        return [KernelSpec(name=name, **common)]
    if fold is not None:
        groups = [(fold,)]
    elif n_folds:
        if n_folds < 1:
            raise FathomError(f"--n-folds {n_folds}: want 1 or more")
        step = FOLDS_PER_TRAIN_KERNEL
        groups = [tuple(range(k, min(k + step, n_folds))) for k in range(0, n_folds, step)]
    else:
        raise FathomError("a train kernel needs --fold K or --n-folds N")
    return [KernelSpec(name=train_kernel_name(name, g), folds=g, **common) for g in groups]


def train_kernel_name(name: str, folds: tuple[int, ...]) -> str:
    """NAME-fold3 for one fold, NAME-folds0-1 for two."""
    if len(folds) == 1:
        return f"{name}-fold{folds[0]}"
    return f"{name}-folds{'-'.join(map(str, folds))}"


def split_predict_args(args: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the `fathom predict` options among a predict kernel's --args, the rest for submit):
    `--tiles=3` or `--tiles`, `3`; a value-less `--tta`."""
    predict, rest, i = [], [], 0
    while i < len(args):
        option = args[i].split("=", 1)[0]
        takes_value = PREDICT_OPTIONS.get(option)
        if takes_value is None:
            rest.append(args[i])
        elif takes_value and "=" not in args[i]:
            if i + 1 >= len(args):
                raise FathomError(f"--arg {args[i]}: needs its value (e.g. --arg={option}=3)")
            predict += args[i : i + 2]
            i += 1
        else:
            predict.append(args[i])
        i += 1
    return tuple(predict), tuple(rest)


def metadata(spec: KernelSpec) -> dict:
    sources = [spec.weights_dataset] + ([spec.images_dataset] if spec.images_dataset else [])
    meta = {
        "id": f"{spec.owner}/{spec.name}",
        "title": spec.title,
        "code_file": f"{spec.name}.py",
        "language": "python",
        "kernel_type": "script",
        "is_private": spec.private,
        "enable_gpu": spec.gpu,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": sources,
        "competition_sources": [spec.competition],
        "kernel_sources": [],
        "model_sources": [],
    }
    if spec.gpu:  # always written: a metadata file without one has been given a P100
        meta["machine_shape"] = spec.machine_shape or DEFAULT_MACHINE
    return meta


def settings(spec: KernelSpec) -> dict:
    """The kernel script's SETTINGS: sources to find, fathom commands to run, files to keep.

    Placeholders in commands ({comp}, {runs}, {folds}, {weights}, {tune}, {tmp}, {working})
    are filled by the script's `kaggle_paths()`, the one place paths are resolved.
    """
    base = {
        "competition": spec.competition,
        "weights_dataset": spec.weights_dataset,
        "images_dataset": spec.images_dataset,
        "torch_build": spec.torch_build,
        "startup": [],  # `python -m fathom.kaggle.startup` arguments
    }
    if spec.kind == "prior":
        return base | {
            "image_splits": [],
            "tuning": False,
            "steps": [["prior", "{comp}", "--out", "{tmp}/prior.csv"]],
            "keep": {"submission.csv": "{tmp}/prior.csv"},
        }
    if spec.kind == "predict":
        # the kernel's own scratch folder: a rerun (a local one shares FATHOM_KAGGLE_TMP)
        # replaces what the last run predicted
        todo = [
            ["predict", f"{{runs}}/{run}", "--comp", "{comp}", "--out", f"{{tmp}}/preds/{run}"]
            + ["--overwrite", *spec.predict_args]
            for run in spec.runs
        ]
        todo.append(
            [
                "submit",
                "{tune}",
                "--name",
                "kernel",
                "--comp",
                "{comp}",
                "--predictions",
                "{tmp}/preds",
                "--out-dir",
                "{tmp}/submissions",
                "--overwrite",
                *spec.extra_args,
            ]
        )
        keep = {
            "submission.csv": "{tmp}/submissions/kernel.csv",
            "submission-manifest.json": "{tmp}/submissions/kernel.json",
        }
        return base | {"image_splits": ["eval"], "tuning": True, "steps": todo, "keep": keep}
    exp = Path(spec.config).stem  # `fathom train` names a run after its config file
    config = f"{{weights}}/configs/{spec.config}"
    overrides = ["competition={comp}", f"folds={{folds}}/{spec.folds_file}", *spec.extra_args]
    todo = [
        [
            "kernel",
            "train-folds",
            config,
            *overrides,
            "--folds",
            ",".join(map(str, spec.train_folds)),
            "--name",
            exp,
            "--runs",
            "{tmp}/runs",
        ]
    ]
    keep = {f"runs/{exp}/config.json": f"{{tmp}}/runs/{exp}/config.json"}
    for k in spec.train_folds:
        keep |= {
            f"runs/{exp}/fold{k}/{name}": f"{{tmp}}/runs/{exp}/fold{k}/{name}"
            for name in MODEL_FILES
        }
    base["startup"] = ["--config", config, *overrides]  # compile=true needs sm_70
    return base | {"image_splits": ["train", "eval"], "tuning": False, "steps": todo, "keep": keep}


def script(spec: KernelSpec) -> str:
    """The kernel script: the template with this kernel's SETTINGS."""
    values = settings(spec)
    template = (Path(__file__).parent / "kernel_template.py").read_text(encoding="utf-8")
    body = ""
    for key, value in values.items():
        if key == "steps":  # one command a line: the part a reader checks
            value_text = "[\n" + "".join(f"        {step!r},\n" for step in value) + "    ]"
        elif key == "keep":
            value_text = (
                "{\n" + "".join(f"        {k!r}: {v!r},\n" for k, v in value.items()) + "    }"
            )
        else:
            value_text = repr(value)
        body += f"    {key!r}: {value_text},\n"
    filled = (
        "SETTINGS: dict = {\n" + body + "}  # `fathom kernel build` writes the real settings here"
    )
    text, n = _SETTINGS_LINE.subn(lambda _: filled, template)
    if n != 1:
        raise FathomError("fathom/kernel_template.py: SETTINGS block not found (template edited?)")
    return text


def check_replaceable(folder: Path, overwrite: bool = False) -> None:
    """A kernel folder that holds files (perhaps a script edited by hand) is replaced only
    with `overwrite`; FathomError otherwise, before anything is written."""
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FathomError(
            f"{folder}: exists (its script may be edited by hand); pass --overwrite to replace it"
        )
    if folder.exists() and not folder.is_dir():
        raise FathomError(f"{folder}: exists and is not a folder")


def build(spec: KernelSpec, out_root: Path = Path("kernels"), overwrite: bool = False) -> Path:
    """Write `out_root/<name>/kernel-metadata.json` and `<name>.py`; returns the folder."""
    spec.check()
    folder = out_root / spec.name
    check_replaceable(folder, overwrite)
    fileio.write_json(folder / METADATA, metadata(spec))
    fileio.write_text(folder / f"{spec.name}.py", script(spec))
    return folder


def build_kernels(
    name: str,
    out_root: str | Path = "kernels",
    overwrite: bool = False,
    time_limit: float = 12.0,
    speed_ratio: float = 1.0,
    **options,
) -> list[Path]:
    """`fathom kernel build`: every kernel of `specs(name, **options)`, each folder checked
    before the first is written, each with its run-time estimate against `time_limit` hours."""
    from fathom.kaggle import estimate

    if not (time_limit > 0 and speed_ratio > 0):  # nan too
        raise FathomError("--time-limit and --speed-ratio must be positive")
    out_root = Path(out_root)
    todo = specs(name, **options)
    for spec in todo:
        spec.check()
        check_replaceable(out_root / spec.name, overwrite)
    folders = []
    for spec in todo:
        folders.append(build(spec, out_root, overwrite=overwrite))
        print(
            f"wrote {folders[-1]}/ ({spec.kind} kernel {spec.owner}/{spec.name}; "
            f"datasets: {spec.weights_dataset})"
        )
        guess = estimate.for_kernel(spec, options.get("tune"), speed_ratio)
        print("  run time: " + guess.line(spec.name, time_limit))
    return folders


def kernel_folder(name: str, root: str | Path = "kernels") -> Path:
    """The kernel folder `name` (a path to it, or a name under `root`); FathomError if it has
    no metadata (checked before connecting to Kaggle)."""
    folder = Path(name) if Path(name).is_dir() else Path(root) / name
    read_metadata(folder)
    return folder


def output_folder(kernel: str, out: str | Path | None = None) -> Path:
    """Where a kernel's outputs go: `out`, default kernels/<NAME>/output."""
    return Path(out) if out else Path("kernels") / kernel.split("/")[-1] / "output"


def read_metadata(folder: Path) -> dict:
    import json

    path = folder / METADATA
    if not path.is_file():
        raise FathomError(f"{path}: missing (write it with `fathom kernel build`)")
    return json.loads(path.read_text(encoding="utf-8"))


def push(api: Any, folder: Path, timeout: int | None = None) -> str:
    meta = read_metadata(folder)
    with kaggle_errors(f"push kernel {meta.get('id')}", api):
        result = api.kernels_push(str(folder), timeout=str(timeout) if timeout else None)
    error = getattr(result, "error", None)
    if error:
        raise FathomError(f"push kernel {meta.get('id')}: Kaggle says: {error}")
    url = getattr(result, "url", "") or ""
    version = getattr(result, "version_number", None) or getattr(result, "versionNumber", None)
    print(f"pushed {meta['id']} (version {version}): {url}")
    return url


def status(api: Any, kernel: str) -> str:
    with kaggle_errors(f"status of kernel {kernel}", api):
        response = api.kernels_status(kernel)
    state = getattr(response, "status", response)
    text = getattr(state, "name", str(state)).lower()
    failure = getattr(response, "failure_message", "") or ""
    print(f"{kernel}: {text}" + (f" ({failure})" if failure else ""))
    return text


def output(api: Any, kernel: str, dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    with kaggle_errors(f"output of kernel {kernel}", api):
        files, _ = api.kernels_output(kernel, str(dest), force=True, quiet=False)
    print(f"{kernel}: {len(files)} file(s) in {dest}")
    return list(files)
