"""Branch encoders: a timm CNN for the grayscale crop, an MLP for the clinical features.

Nothing here downloads weights. Pretrained weights come only from a local timm state-dict
file (``.pth`` / ``.safetensors``) of the usual 3-channel model; timm adapts the stem to
``in_chans`` (for 1 channel it sums the RGB kernels) and drops the ImageNet classifier.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
from timm.models import load_state_dict
from torch import nn

logger = logging.getLogger(__name__)

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
}
_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "timm/")


def _check_weights_match(model: nn.Module, path: Path, name: str) -> None:
    """Fail loudly when a weights file has few of the encoder's tensors (wrong architecture):
    timm loads non-strictly once the classifier is dropped, so it would not complain."""
    file_keys = set(load_state_dict(str(path)).keys())
    wanted = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    missing = [k for k in wanted if k not in file_keys]
    if missing:
        raise ValueError(
            f"pretrained weights {path} do not fit timm model {name!r}: {len(missing)} of {len(wanted)} "
            f"tensors missing (e.g. {missing[:3]}); is it a state dict of the same architecture?"
        )


def create_image_encoder(
    name: str = "mobilenetv2_100",
    pretrained: bool = False,
    pretrained_path: str | Path | None = None,
    in_chans: int = 1,
    drop_rate: float = 0.0,
) -> nn.Module:
    """timm backbone ``name`` without classifier: (N, in_chans, S, S) -> (N, num_features).

    ``pretrained_path`` (a local timm state dict of the 3-channel model) implies
    ``pretrained=True``; ``pretrained=True`` without a path is an error because weights are
    never downloaded. The returned module has timm's ``num_features`` (embedding size).
    """
    if name.startswith(_HUB_PREFIXES):
        raise ValueError(f"image encoder {name!r}: hub model names are not supported (no network access)")
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model name {name!r} (see timm.list_models())")
    kwargs: dict = {"num_classes": 0, "in_chans": in_chans, "drop_rate": drop_rate}
    path: Path | None = None
    if pretrained_path not in (None, ""):
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    elif pretrained:
        raise ValueError(
            f"pretrained=True for {name!r} needs pretrained_path=<local .pth/.safetensors timm state dict>; "
            "weights are never downloaded"
        )
    if path is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        model = timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"cannot load pretrained weights {path} into timm model {name!r}: {exc}") from exc
    _check_weights_match(model, path, name)
    logger.info("image encoder %s: weights from %s (stem adapted to %d channel(s))", name, path, in_chans)
    return model


def encoder_out_dim(encoder: nn.Module) -> int:
    """Embedding size of an encoder: timm's ``num_features`` or our ``out_dim``."""
    for attr in ("out_dim", "num_features"):
        dim = getattr(encoder, attr, None)
        if isinstance(dim, int) and dim > 0:
            return dim
    raise ValueError(f"{type(encoder).__name__} exposes neither out_dim nor num_features")


class TabularEncoder(nn.Module):
    """MLP over clinical features: (N, in_dim) float -> (N, out_dim).

    Each hidden layer is Linear -> norm ("batch" | "layer" | None) -> activation -> dropout.
    ``hidden=()`` is the identity (out_dim = in_dim). BatchNorm needs batches of >= 2 rows
    in training mode.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.1,
        norm: str | None = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"TabularEncoder needs in_dim >= 1, got {in_dim} (use no tabular branch)")
        if norm not in ("batch", "layer", None):
            raise ValueError(f"norm must be 'batch', 'layer' or None, got {norm!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        layers: list[nn.Module] = []
        dim = in_dim
        for width in hidden:
            width = int(width)
            layers.append(nn.Linear(dim, width, bias=norm is None))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            elif norm == "layer":
                layers.append(nn.LayerNorm(width))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = width
        self.net = nn.Sequential(*layers)
        self.in_dim = int(in_dim)
        self.out_dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        return self.net(x)
