"""The network a modality set needs, as plain data: what is saved with a model and rebuilt from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from liver_mm.models.fusion import effective_fusion


def net_config(net: Mapping[str, Any], use_image: bool, n_tabular: int) -> dict[str, Any]:
    """Constructor arguments (with ``_target_``) of the network for a modality set: the ``model.net``
    config group with the image branch dropped when ``use_image`` is false and ``n_tabular`` =
    the lab preprocessor's output width F. ``fusion`` (when given) is the one actually built: ``concat``
    for a one-branch model (see :func:`~liver_mm.models.fusion.effective_fusion`). JSON-safe (it is saved
    in the model bundle, which rebuilds the same class from it)."""
    cfg = dict(OmegaConf.to_container(net, resolve=True) if OmegaConf.is_config(net) else net)  # type: ignore[arg-type]
    if not use_image:
        cfg["image"] = None
    cfg["n_tabular"] = int(n_tabular)
    if "fusion" in cfg:
        cfg["fusion"] = effective_fusion(cfg["fusion"], cfg.get("image") is not None, int(n_tabular) > 0)
    return cfg


def build_net(spec: Mapping[str, Any]) -> nn.Module:
    """The network of a :func:`net_config` dict."""
    return instantiate(dict(spec), _convert_="all")
