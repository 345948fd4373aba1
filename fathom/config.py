"""The experiment config: one frozen dataclass, read from a small TOML file plus `key=value` overrides.

An experiment is a file `configs/<exp>.toml` whose file name is the run's name; it lists only
the keys that differ from the defaults below. Overrides on the command line are parsed to the
field's type, and an unknown key is an error (nanoGPT's rule), so a typo never trains silently
with a default. The resolved config is saved beside the run and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fathom.errors import FathomError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

PACKAGED_CONFIGS = Path(__file__).parent / "configs"
TASKS = ("multilabel", "singlelabel")
LOSSES = {
    "multilabel": ("bce", "bce_balanced", "asl", "focal"),
    "singlelabel": ("ce", "ce_balanced", "focal"),
}
OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")
AMP = ("auto", "bf16", "fp16", "off")
AUTO_AUGMENT = ("", "trivial")
# values older configs and checkpoints hold, read as what they meant then (amp was a bool)
LEGACY = {"amp": {True: "auto", False: "off", "true": "auto", "false": "off"}}
# keys that may differ when a run is resumed or continued: they change how it executes, or
# (tta) only how its checkpoints are used to predict, never the weights it trains
RUNTIME_KEYS = frozenset({"num_workers", "cache_dir", "data_on_device", "device", "compile", "tta"})
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
# (low, high, low_closed, high_closed) of each number field: a value torch or timm would only
# reject epochs later (lr=nan, drop_rate=1.5, hflip=5) is refused before anything starts
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "num_workers": (0, 256, True, True),
    "drop_rate": (0, 1, True, False),
    "drop_path_rate": (0, 1, True, False),
    "lr": (0, math.inf, False, False),
    "stage1_lr": (0, math.inf, False, False),
    "min_lr": (0, math.inf, True, False),
    "weight_decay": (0, math.inf, True, False),
    "momentum": (0, 1, True, False),
    "warmup_epochs": (0, math.inf, True, False),
    "plateau_patience": (0, math.inf, True, False),
    "unfreeze_stages": (-1, math.inf, True, False),
    "grad_clip": (0, math.inf, True, False),
    "ema_decay": (0, 1, False, False),
    "patience": (0, math.inf, True, False),
    "focal_gamma": (0, math.inf, True, False),
    "asl_gamma_neg": (0, math.inf, True, False),
    "asl_gamma_pos": (0, math.inf, True, False),
    "asl_clip": (0, 1, True, False),
    "label_smoothing": (0, 1, True, False),
    "hflip": (0, 1, True, True),
    "vflip": (0, 1, True, True),
    "rotate": (0, 180, True, True),
    "shift": (0, 1, True, True),
    "shear": (0, 90, True, False),
    "seed": (0, 2**31, True, False),
    "supercat_weight": (0, math.inf, True, False),
    "supercat_rank": (0, 1, True, True),
    "pseudo_threshold": (0, 1, True, True),
    "pseudo_weight": (0, math.inf, True, False),
    # issue 12: mixing, colour, layer-wise lr decay
    "mixup": (0, math.inf, True, False),
    "cutmix": (0, math.inf, True, False),
    "mix_prob": (0, 1, True, True),
    "hue": (0, 0.5, True, True),
    "saturation": (0, 1, True, True),
    "contrast": (0, 1, True, True),
    "layer_decay": (0, 1, True, True),
}
# --- issue 12: box crops and tiled prediction (their ranges; the tile keys, like tta, only
# change how a run's checkpoints predict, never the weights it trains)
RANGES |= {
    "crop_rate": (0, 1, True, False),
    "crop_margin": (0, 10, True, True),
    "tiles": (0, 8, True, True),
    "tile_overlap": (0, 1, True, False),
    "tile_blend": (0, 1, True, True),
}
RUNTIME_KEYS |= frozenset({"tiles", "tile_overlap", "tile_blend"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Defaults train a small CNN on the synthetic competition."""

    name: str = "default"  # the run's name: runs/<name>/ (the config file's stem)
    # --- data
    competition: str = "data/synth"  # competition folder (Kaggle layout)
    folds: str = "folds/mlskf5.csv"  # `id,fold` file (`fathom folds` writes it)
    n_folds: int = 5  # folds that `fathom train` without --fold trains in turn
    task: str = "multilabel"  # multilabel (sigmoid head) | singlelabel (softmax head)
    holdout_categories: tuple[int, ...] = ()  # dropped from every fold's TRAINING rows
    cache_dir: str = "cache"  # resized uint8 copies of the images (`fathom cache`)
    cache_size: int = 0  # side of the cached images; 0 = img_size
    data_on_device: str = "auto"  # auto | yes | no: hold the whole cache on the GPU
    num_workers: int = 4  # DataLoader workers when the cache is not held on the device
    # --- model
    model: str = "fathom_cnn"  # any timm name, or fathom_cnn (the scratch baseline)
    pretrained: bool | str = (
        False  # true: timm's default weights (HF hub, cached); or a weights file
    )
    img_size: int = 32  # training and prediction side; 0 = the model's own (timm data config)
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0
    prior_bias: bool = True  # start the head's bias at the training frequencies' log-odds
    # --- optimisation
    batch_size: int = 16  # per process (with torchrun the global batch is this x world size)
    epochs: int = 4  # total, both stages
    optimizer: str = "adamw"  # adamw | sgd (timm's create_optimizer_v2)
    lr: float = 3e-3  # stage 2 (or the only stage)
    weight_decay: float = 0.02
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine (with warmup) | plateau | none (timm's create_scheduler_v2)
    warmup_epochs: int = 1
    min_lr: float = 1e-5
    plateau_patience: int = 2  # plateau: epochs without a better val MAP@20 before lr x 0.1
    stage1_epochs: int = 0  # > 0: train only the head for these epochs first (backbone frozen)
    stage1_lr: float = 1e-3
    unfreeze_stages: int = -1  # stage 2 trains the last N backbone stages; -1 = all
    accumulate: int = 1  # gradient accumulation steps
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    ema: bool = False  # keep an EMA of the weights (timm ModelEmaV3); validate and predict with it
    ema_decay: float = 0.998
    patience: int = 0  # early stopping: epochs without a better val MAP@20; 0 = off
    # --- loss
    loss: str = (
        "bce"  # multilabel: bce | bce_balanced | asl | focal; singlelabel: ce | ce_balanced | focal
    )
    focal_gamma: float = 2.0
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    label_smoothing: float = 0.0  # singlelabel ce only
    # --- augmentation (batched on the device: fathom/augment.py)
    hflip: float = 0.5  # probability
    vflip: float = 0.0
    rotate: float = 30.0  # degrees, uniform in [-rotate, rotate]
    shift: float = 0.2  # fraction of the side, uniform in [-shift, shift]
    zoom: tuple[float, float] = (0.8, 1.2)
    shear: float = 10.0  # degrees
    brightness: tuple[float, float] = (0.8, 1.2)
    # --- issue 12: supercategory head and pseudo-labels
    supercat_weight: float = (
        0.0  # > 0: an auxiliary head predicts the supercategories (BCE x this); 0 = off
    )
    supercat_rank: float = (
        0.0  # a in [0, 1]: category score p * (1 - a + a * p_supercat) when predicting
    )
    pseudo_from: str = (
        ""  # a finished run folder: fold k's eval.npz pseudo-labels eval images for fold k
    )
    pseudo_threshold: float = (
        0.5  # eval images whose top probability reaches this join as soft targets
    )
    pseudo_weight: float = 1.0  # loss weight of a pseudo-labelled row (a labelled row weighs 1)
    # --- issue 12: box crops and tiled prediction (fathom/data/crops.py)
    crop_rate: float = 0.0  # share of each epoch's samples that are box crops; 0 = off
    crop_margin: float = 0.25  # context around a crop's box, a fraction of its larger side
    tiles: int = 0  # predict also on an n x n grid of overlapping full-resolution tiles; 0 = off
    tile_overlap: float = 0.25  # fraction of a tile's side shared with its neighbour
    tile_blend: float = 0.5  # probs = (1 - blend) * whole frame + blend * max over the tiles
    # --- issue 12: mixing, colour and layer-wise lr decay (mixing and colour: data/augment.py)
    mixup: float = 0.0  # Mixup: Beta(alpha, alpha) alpha of the blend weight; 0 = off
    cutmix: float = 0.0  # CutMix: Beta(alpha, alpha) alpha of the kept area share; 0 = off
    mix_prob: float = 1.0  # share of batches mixed; with mixup and cutmix on, each picks one 50/50
    hue: float = 0.0  # max hue shift, fraction of the hue circle: uniform in [-hue, hue]
    saturation: float = 0.0  # max relative change: factor uniform in [1 - s, 1 + s]; 0 = off
    contrast: float = 0.0  # max relative change: factor uniform in [1 - c, 1 + c]; 0 = off
    auto_augment: str = ""  # "" | trivial: one random colour op, random magnitude, per image
    layer_decay: float = 0.0  # stage 2 lr x layer_decay ** (layers below the head) (timm); 0 = off
    # --- runtime
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on GPUs >= 8.0, fp16 + GradScaler on older; float32 on CPU) | bf16 | fp16 | off
    channels_last: bool = True  # on GPU
    compile: bool = False  # torch.compile the model
    tta: bool = False  # average with the horizontal flip when predicting (`fathom predict --tta`)

    def check(self) -> None:
        """Raise FathomError on values that are out of range or cannot work together."""
        from fathom.fileio import plain_name

        problems = []
        try:
            plain_name(self.name, "run name")
        except FathomError as exc:
            problems.append(str(exc))
        for key in ("competition", "folds", "cache_dir", "model"):
            if not str(getattr(self, key)).strip():
                problems.append(f"{key} is empty")
        if isinstance(self.pretrained, str) and not self.pretrained.strip():
            # `pretrained=` reads as "no weights file": training from random weights without a
            # word when weights were asked for is what DESIGN.md rules out
            problems.append(
                "pretrained is empty: set true (timm's weights), false (random init) or the "
                "path of a weights file"
            )
        problems += self._range_problems()
        if not DEVICE.fullmatch(self.device):
            problems.append(f"device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if self.task not in TASKS:
            problems.append(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        elif self.loss not in LOSSES[self.task]:
            problems.append(
                f"loss {self.loss!r} is not for {self.task}; choose {', '.join(LOSSES[self.task])}"
            )
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            problems.append(f"scheduler must be one of {', '.join(SCHEDULERS)}")
        if self.auto_augment not in AUTO_AUGMENT:
            problems.append(f'auto_augment must be "" or trivial, not {self.auto_augment!r}')
        if self.amp not in AMP:
            problems.append(f"amp must be one of {', '.join(AMP)}")
        if self.data_on_device not in ("auto", "yes", "no"):
            problems.append("data_on_device must be auto, yes or no")
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate < 1:
            problems.append("epochs, batch_size and accumulate must be at least 1")
        if not 0 <= self.stage1_epochs < self.epochs:
            problems.append("stage1_epochs must be in [0, epochs)")
        if self.n_folds < 1:
            problems.append("n_folds must be at least 1")
        if self.img_size < 0 or self.cache_size < 0:
            problems.append("img_size and cache_size must be >= 0")
        if (
            self.zoom[0] <= 0
            or self.zoom[0] > self.zoom[1]
            or self.brightness[0] > self.brightness[1]
        ):
            problems.append("zoom and brightness are (low, high) ranges with 0 < low <= high")
        if self.brightness[0] < 0:
            problems.append("brightness is a (low, high) range of factors >= 0")
        if (self.supercat_weight > 0 or self.pseudo_from) and self.task != "multilabel":
            problems.append("supercat_weight and pseudo_from are for the multilabel task")
        if self.supercat_rank > 0 and self.supercat_weight == 0:
            problems.append("supercat_rank needs the supercategory head (supercat_weight > 0)")
        if self.crop_rate > 0 and self.pseudo_from:  # both extend the epoch's sample index
            problems.append("crop_rate and pseudo_from do not combine yet; set one of them")
        if self.task == "singlelabel" and (self.crop_rate > 0 or self.tiles > 0):
            # a crop or a tile of a single-label image need not hold its one class
            problems.append("crop_rate and tiles are for multilabel frames; set them to 0")
        if problems:
            raise FathomError(f"config {self.name}: " + "; ".join(problems))

    def _range_problems(self) -> list[str]:
        problems = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                problems.append(f"{f.name} = {value!r} is not a finite number")
                continue
            if f.name not in RANGES:
                continue
            low, high, low_closed, high_closed = RANGES[f.name]
            inside = (value > low or (low_closed and value == low)) and (
                value < high or (high_closed and value == high)
            )
            if not inside:
                if high == math.inf:
                    span = f"{'>=' if low_closed else '>'} {low:g}"
                else:
                    span = (
                        f"in {'[' if low_closed else '('}{low:g}, {high:.0f}"
                        if high > 1e6
                        else (f"in {'[' if low_closed else '('}{low:g}, {high:g}")
                    )
                    span += "]" if high_closed else ")"
                problems.append(f"{f.name} = {value!r} must be {span}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _legacy(key: str, value: Any) -> Any:
    """An old spelling of a value (`amp = true`) as today's (`amp = "auto"`)."""
    old = LEGACY.get(key)
    if old is None or not isinstance(value, bool | str):
        return value
    return old.get(value.lower() if isinstance(value, str) else value, value)


def _coerce(key: str, value: Any, kind: Any, where: str) -> Any:
    """`value` (from TOML, JSON or a command-line string) as the field's type, or FathomError."""
    value = _legacy(key, value)
    text = isinstance(value, str)
    bad = FathomError(f"{where}: {key} = {value!r} is not {_describe(kind)}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise bad
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text:
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if kind is str:
        if text:
            return value
        raise bad
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:  # bool | str
        if isinstance(value, bool):
            return value
        if text and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if text:
            return value
        raise bad
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if text:
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise bad
        item_kind = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(key, v, item_kind, where) for v in value)
        if len(value) != len(args):
            raise bad
        return tuple(_coerce(key, v, k, where) for v, k in zip(value, args, strict=True))
    raise bad  # pragma: no cover - a field type this parser does not know


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {args[0].__name__} (e.g. 1,2,3)"
        return f"{len(args)} numbers separated by a comma (e.g. 0.8,1.2)"
    if isinstance(kind, types.UnionType):
        return "true, false or a file path"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]


def _line_of(text: str, key: str) -> int:
    for n, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return n
    return 0


def from_dict(
    values: dict[str, Any], where: str = "config", base: TrainConfig | None = None
) -> TrainConfig:
    """A checked TrainConfig from plain values; unknown keys are an error."""
    kinds = field_types()
    changes = {}
    for key, value in values.items():
        if key not in kinds:
            raise FathomError(f"{where}: unknown key {key!r}{_suggest(key)}")
        changes[key] = _coerce(key, value, kinds[key], where)
    cfg = (base or TrainConfig()).replace(**changes)
    cfg.check()
    return cfg


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(field_types()), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_config_path(name_or_path: str) -> Path:
    """A TOML path as given, else configs/<name>.toml, else fathom's packaged configs/<name>.toml
    (a name ending in .toml is looked up in those folders as it is, not with another .toml)."""
    if not str(name_or_path).strip():
        packaged = ", ".join(name for name, _, _ in list_configs(local=False))
        raise FathomError(f"no experiment config given: a .toml path or a name ({packaged})")
    path = Path(name_or_path)
    file_name = path.name if path.suffix == ".toml" else f"{path.name}.toml"
    candidates = [path] if path.suffix == ".toml" or len(path.parts) > 1 else []
    if len(path.parts) == 1:  # a bare name: the project's configs/, then fathom's own
        candidates += [Path("configs") / file_name, PACKAGED_CONFIGS / file_name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    packaged = ", ".join(name for name, _, _ in list_configs(local=False))
    raise FathomError(
        f"{name_or_path}: no such experiment config (tried {', '.join(map(str, candidates))}; "
        f"packaged: {packaged}; `fathom train --list`)"
    )


def list_configs(local: bool = True) -> list[tuple[str, Path, str]]:
    """(name, path, first comment line) of every config `fathom train NAME` finds by name: the
    project's configs/*.toml (when `local`), then fathom's packaged ones that they do not hide."""
    found: dict[str, tuple[str, Path, str]] = {}
    folders = ([Path("configs")] if local else []) + [PACKAGED_CONFIGS]
    for folder in folders:
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if path.stem in found:
                continue
            first = next(
                (line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                 if line.startswith("#")),
                "",
            )  # fmt: skip
            found[path.stem] = (path.stem, path, first)
    return list(found.values())


def load_config(
    name_or_path: str, overrides: list[str] = (), name: str | None = None
) -> TrainConfig:
    """Read an experiment TOML, apply `key=value` overrides; the run name is the file's stem."""
    path = resolve_config_path(name_or_path)
    if tomllib is None:  # pragma: no cover
        raise FathomError("reading TOML configs needs Python 3.11+ (tomllib)")
    text = path.read_text(encoding="utf-8")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FathomError(f"{path}: not valid TOML ({exc})") from None
    kinds = field_types()
    for key, value in values.items():
        if key not in kinds:
            line = _line_of(text, key)
            where = f"{path}, line {line}" if line else str(path)
            raise FathomError(f"{where}: unknown key {key!r}{_suggest(key)}")
        if isinstance(value, dict):
            raise FathomError(f"{path}: [{key}] tables are not used; write keys at the top level")
    values["name"] = name or values.get("name") or path.stem
    cfg = from_dict(values, where=str(path))
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """`key=value` strings applied on top of `cfg`, each parsed to its field's type."""
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FathomError(f"override {item!r}: expected key=value (e.g. lr=1e-3)")
        changes[key.strip()] = value.strip()
    return from_dict(changes, where="command line", base=cfg) if changes else cfg


def config_differences(a: dict[str, Any], b: dict[str, Any], ignore=RUNTIME_KEYS) -> list[str]:
    """Keys whose values differ between two config dicts (runtime-only keys ignored). A key
    one dict lacks counts as its default: a run saved before the key existed trained with
    the default, so it resumes under a fathom that knows the key."""
    defaults = asdict(TrainConfig())
    keys = sorted((set(a) | set(b)) - set(ignore))

    def value(d, k):
        return _plain(_legacy(k, d.get(k, defaults.get(k))))

    return [k for k in keys if value(a, k) != value(b, k)]


__all__ = [
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "from_dict",
    "config_differences",
    "resolve_config_path",
    "list_configs",
]
