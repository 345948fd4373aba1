"""Models: any timm backbone by name, plus `fathom_cnn`, a small CNN-from-scratch baseline.

`build_model(cfg, n_classes)` returns a `FathomModel` whose forward maps images to a dict
with `features` (the pooled backbone features before the head) and `logits`. The head is
the backbone's own timm classifier, so timm's parameter groups tell the backbone's stages
apart for two-stage fine-tuning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import group_parameters, register_model
from torch import nn

from fathom.engine import pretrained as pretrained_weights
from fathom.errors import FathomError


class FathomCNN(nn.Module):
    """Four blocks of (conv-BN-ReLU) x2 + max-pool + dropout (32, 64, 128, 256 filters),
    global average pooling, dense 512 and 256 with BN, ReLU and dropout, then the head.

    Follows timm's model interface (forward_features / forward_head / get_classifier /
    group_matcher / pretrained_cfg), so everything that takes a timm model takes this one.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.3,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        dense: tuple[int, ...] = (512, 256),
        **_ignored,  # timm passes drop_path_rate, pretrained_cfg, cache_dir, ...
    ):
        super().__init__()
        self.drop_rate = drop_rate
        blocks, prev = [], in_chans
        for width in widths:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(prev, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                    nn.Dropout(drop_rate / 2),  # lighter in the conv blocks than in the dense ones
                )
            )
            prev = width
        self.blocks = nn.Sequential(*blocks)
        layers = []
        for width in dense:
            layers += [
                nn.Linear(prev, width, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            layers.append(nn.Dropout(drop_rate))
            prev = width
        self.neck = nn.Sequential(*layers)
        self.num_features = prev
        self.num_classes = num_classes
        self.head = nn.Linear(prev, num_classes) if num_classes else nn.Identity()
        self.pretrained_cfg = {
            "input_size": (3, 64, 64),
            "mean": IMAGENET_DEFAULT_MEAN,
            "std": IMAGENET_DEFAULT_STD,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "num_classes": num_classes,
        }
        self.default_cfg = self.pretrained_cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.neck(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        return {
            "stem": r"^blocks\.0\.",
            # timm reads (99999,) as "merge with the previous group": the neck takes the next id
            "blocks": [(r"^blocks\.(\d+)\.", None), (r"^neck\.", (len(self.blocks),))],
        }


@register_model
def fathom_cnn(pretrained: bool = False, **kwargs) -> FathomCNN:
    """The scratch CNN baseline, creatable by name: `timm.create_model("fathom_cnn")`."""
    return FathomCNN(**kwargs)


def feature_width(backbone: nn.Module) -> int:
    """The width of the pooled features the head reads (`forward_head(pre_logits=True)`):
    timm's `head_hidden_size` where a model has a layer after pooling (MobileNetV3's conv_head:
    288 channels pooled, 1024 features), else `num_features`."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class FathomModel(nn.Module):
    """A timm backbone whose forward returns {"features": pooled features, "logits": head output},
    plus "super_logits" when it has the supercategory head (`supercat_of`: the supercategory
    index of each output column, -1 where unknown; `n_super` outputs). The mapping is a buffer,
    so a checkpoint carries it to prediction time (the `supercat_rank` blend needs it)."""

    def __init__(self, backbone: nn.Module, supercat_of=None, n_super: int = 0):
        super().__init__()
        self.backbone = backbone
        self.super_head = None
        if n_super > 0:
            # made after the backbone: the backbone's initial weights do not depend on it
            self.super_head = nn.Linear(feature_width(backbone), n_super)
            self.register_buffer("supercat_of", torch.as_tensor(supercat_of, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        # the heads in float32 whatever the autocast: bf16 keeps 8 bits of mantissa, so low
        # scores collapse to equal values and tie in a top-20 ranking; the heads are a sliver
        # of the compute
        with torch.autocast(features.device.type, enabled=False):
            features = features.float()
            out = {"features": features, "logits": self.backbone.get_classifier()(features)}
            if self.super_head is not None:
                out["super_logits"] = self.super_head(features)
        return out


def warn(message: str) -> None:
    print(f"fathom: warning: {message}", file=sys.stderr)


def create_backbone(
    name: str, n_classes: int, pretrained: bool | str = False, **kwargs
) -> nn.Module:
    """timm.create_model, then pretrained weights if asked for: timm's default weights (True:
    the Hugging Face cache, downloaded into it when online) or a weights file (a path).

    Weights that were asked for and cannot be had are a FathomError (fathom/engine/pretrained.py),
    never a random init: only pretrained=false starts from random weights.
    """
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:5]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise FathomError(f"model {name!r} is not a timm model name{hint}")
    # the model is built without timm's loader and the file loaded by ours: timm's drops the
    # head with strict=False, so a file that fits nothing would load nothing without a word
    model = timm.create_model(name, pretrained=False, num_classes=n_classes, **kwargs)
    if pretrained is False or pretrained == "":
        return model
    path = pretrained_file(name, pretrained)
    pretrained_weights.load_weights_file(model, path, name)
    return model


def pretrained_file(name: str, pretrained: bool | str) -> Path:
    """The weights file `pretrained` names for model `name`: timm's default (True), fetched into
    the Hugging Face cache if need be, or the path given."""
    if pretrained is True:
        return pretrained_weights.fetch(name)
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise FathomError(f"pretrained={pretrained}: no such weights file for {name}")
    return path


def build_model(cfg, n_classes: int, supercat_of=None, n_super: int = 0) -> FathomModel:
    """The model a TrainConfig describes, with `n_classes` outputs (and `n_super` supercategory
    outputs when `cfg.supercat_weight > 0`)."""
    backbone = create_backbone(
        cfg.model,
        n_classes,
        cfg.pretrained,
        drop_rate=cfg.drop_rate,
        drop_path_rate=cfg.drop_path_rate or None,  # None: models without drop path accept it
    )
    if cfg.supercat_weight > 0:
        if supercat_of is None or n_super < 1:
            raise FathomError("supercat_weight > 0 needs the categories' supercategories")
        return FathomModel(backbone, supercat_of, n_super)
    return FathomModel(backbone)


def data_config(model: FathomModel | nn.Module) -> dict:
    """Mean, std and input size from the model's timm data config."""
    backbone = model.backbone if isinstance(model, FathomModel) else model
    return timm.data.resolve_model_data_config(backbone)


def head_parameter_names(model: FathomModel) -> set[str]:
    """The heads' parameters: the classifier's and the supercategory head's (stage 1 trains both)."""
    head = model.backbone.get_classifier()
    names = {id(p) for p in head.parameters()}
    if getattr(model, "super_head", None) is not None:
        names |= {id(p) for p in model.super_head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in names}


def backbone_stages(model: FathomModel) -> list[list[str]]:
    """Parameter names of the backbone's stages, input to output (the head excluded).

    From timm's coarse parameter groups (stem, then each stage); a model without a
    group_matcher counts each top-level child as one stage.
    """
    backbone = model.backbone
    head = head_parameter_names(model)
    if hasattr(backbone, "group_matcher"):
        groups = group_parameters(backbone, backbone.group_matcher(coarse=True))
        ordered = [groups[k] for k in sorted(groups)]
    else:
        by_child: dict[str, list[str]] = {}
        for n, _ in backbone.named_parameters():
            by_child.setdefault(n.split(".")[0], []).append(n)
        ordered = list(by_child.values())
    stages = [[f"backbone.{n}" for n in group if f"backbone.{n}" not in head] for group in ordered]
    return [s for s in stages if s]


def set_trainable(model: FathomModel, stage: int, unfreeze_stages: int = -1) -> int:
    """Stage 1: only the head trains. Stage 2: the head and the last `unfreeze_stages` backbone
    stages (-1: all). Returns the number of trainable parameters."""
    trainable = set(head_parameter_names(model))
    if stage == 2:
        stages = backbone_stages(model)
        chosen = stages if unfreeze_stages < 0 else stages[len(stages) - unfreeze_stages :]
        if unfreeze_stages == 0:
            chosen = []
        trainable |= {n for s in chosen for n in s}
    for n, p in model.named_parameters():
        p.requires_grad_(n in trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze_norm_statistics(model: nn.Module) -> None:
    """Put norm layers whose weights are all frozen into eval mode: a frozen stage should not
    drift its running statistics (what Keras does for frozen BatchNorm). Call after .train()."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def init_super_bias(model: FathomModel, prior: np.ndarray) -> None:
    """The supercategory head's bias at the log-odds of each supercategory's training
    frequency, for the reason init_head_bias gives."""
    p = np.clip(np.asarray(prior, dtype=np.float64), 1e-4, 1 - 1e-4)
    with torch.no_grad():
        model.super_head.bias.copy_(torch.from_numpy(np.log(p / (1 - p))).float())


def init_head_bias(model: FathomModel, prior: np.ndarray, task: str) -> None:
    """Start the head at the class frequencies (the focal-loss paper's prior init): the output
    bias is the log-odds of each category's training frequency (log-frequency for softmax).

    Why: with 290 sigmoid outputs starting at 0.5, the first epochs go into learning that
    nearly every category is absent; a short run spends them on the images instead.
    """
    head = model.backbone.get_classifier()
    if not isinstance(head, nn.Linear) or head.bias is None:
        return
    p = np.clip(np.asarray(prior, dtype=np.float64), 1e-4, 1 - 1e-4)
    bias = np.log(p / (1 - p)) if task == "multilabel" else np.log(p)
    with torch.no_grad():
        head.bias.copy_(torch.from_numpy(bias).to(head.bias.dtype))
