"""Branch encoders: a timm CNN for the grayscale crop, an MLP for the clinical features.

Pretrained image weights, the timm way (``model.net.image.pretrained`` / ``.pretrained_path``):

- ``pretrained_path=FILE``: a local timm state dict (``.pth`` / ``.safetensors``) of the usual 3-channel
  model; no network. Checked to fit the architecture.
- ``pretrained=True`` without a path: timm's own download into the Hugging Face hub cache
  (``$HF_HOME/hub``, by default ``~/.cache/huggingface/hub``), reused from there afterwards; ``HF_HUB_OFFLINE=1``
  uses the cache only. A pretrained tag picks the weights (``mobilenetv2_100.ra_in1k``). Offline without a
  cached copy is a ValueError saying how to get the weights.

Either way timm adapts the stem to ``in_chans`` (for 1 channel it sums the RGB kernels) and drops the
ImageNet classifier. Hub *model names* (``hf-hub:...``) stay refused: a saved liver-mm model is rebuilt
from its encoder name, and a hub name would make every later ``predict`` / serve need the hub. Activations
of the tabular MLP are timm names (:func:`timm.layers.get_act_layer`: relu, gelu, silu, elu, leaky_relu,
tanh, mish, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.error import HTTPError, URLError

import timm
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled
from timm.layers import get_act_layer
from timm.models import load_state_dict
from torch import nn

logger = logging.getLogger(__name__)

_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "timm/", "local-dir:")
#: What the hub / torch.hub raise when there is no network and no cached copy.
_OFFLINE_ERRORS = (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError, URLError)


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


def _check_name(name: str) -> None:
    if name.startswith(_HUB_PREFIXES):
        arch = name.split(":", 1)[-1].rsplit("/", 1)[-1]
        raise ValueError(
            f"image encoder {name!r}: hub model names are not supported (a saved model is rebuilt from its "
            f"encoder name, which must not need the hub); use the timm name, e.g. image_encoder={arch}, "
            "with model.net.image.pretrained=true to get its weights"
        )
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model name {name!r} (see timm.list_models())")


def _download_pretrained(name: str, kwargs: dict) -> nn.Module:
    """``timm.create_model(name, pretrained=True)``: weights from the hub cache, downloaded when missing."""
    try:
        model = timm.create_model(name, pretrained=True, **kwargs)
    except (HTTPError, HfHubHTTPError) as exc:  # reached the server, which refused (unknown tag, gated...)
        raise ValueError(f"cannot download pretrained weights of timm model {name!r}: {exc}") from exc
    except _OFFLINE_ERRORS as exc:
        raise ValueError(
            f"no network to download {name!r}'s pretrained weights (and no copy in the cache "
            f"{hf_constants.HF_HUB_CACHE}): download them on a connected machine (timm caches them in "
            "~/.cache/huggingface; copy that folder or set HF_HOME) or pass "
            "model.net.image.pretrained_path=FILE (a timm state dict .pth / .safetensors)"
        ) from exc
    except RuntimeError as exc:  # timm: "No pretrained weights exist for ..." / "Invalid pretrained config"
        raise ValueError(f"timm model {name!r} has no downloadable pretrained weights ({exc}); "
                         "pass model.net.image.pretrained_path=FILE or pretrained=false") from exc
    logger.info("image encoder %s: timm pretrained weights (%s), stem adapted to %d channel(s)",
                name, model.pretrained_cfg.get("hf_hub_id") or model.pretrained_cfg.get("url"),
                kwargs["in_chans"])
    return model


def create_image_encoder(
    name: str = "mobilenetv2_100",
    pretrained: bool = False,
    pretrained_path: str | Path | None = None,
    in_chans: int = 1,
    drop_rate: float = 0.0,
) -> nn.Module:
    """timm backbone ``name`` without classifier: (N, in_chans, S, S) -> (N, num_features).

    ``pretrained_path`` (a local timm state dict of the 3-channel model) implies ``pretrained=True`` and
    never touches the network; ``pretrained=True`` alone downloads timm's weights into (or reads them from)
    the Hugging Face cache, and raises ``ValueError`` when offline without a cached copy. The returned
    module has timm's ``num_features`` (embedding size).
    """
    _check_name(name)
    kwargs: dict = {"num_classes": 0, "in_chans": in_chans, "drop_rate": drop_rate}
    if pretrained_path in (None, ""):
        return _download_pretrained(name, kwargs) if pretrained else timm.create_model(name, **kwargs)
    path = Path(pretrained_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise ValueError(f"cannot load pretrained weights {path} into timm model {name!r}: {exc}") from exc
    _check_weights_match(model, path, name)
    logger.info("image encoder %s: weights from %s (stem adapted to %d channel(s))", name, path, in_chans)
    return model


def activation_layer(name: str) -> type[nn.Module]:
    """The activation class of a timm activation name (``relu``, ``gelu``, ``silu``, ``leaky_relu``, ...)."""
    try:
        layer = get_act_layer(name) if isinstance(name, str) and name else None
    except KeyError:
        layer = None
    if layer is None:
        raise ValueError(f"activation must be a timm activation name (relu, gelu, silu, elu, leaky_relu, tanh, "
                         f"mish, ...: see timm.layers.get_act_layer), got {name!r}")
    return layer


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
        act_layer = activation_layer(activation)
        layers: list[nn.Module] = []
        dim = in_dim
        for width in hidden:
            width = int(width)
            layers.append(nn.Linear(dim, width, bias=norm is None))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            elif norm == "layer":
                layers.append(nn.LayerNorm(width))
            layers.append(act_layer())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = width
        self.net = nn.Sequential(*layers)
        self.in_dim = int(in_dim)
        self.out_dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        return self.net(x)
