"""The saved form of a trained model: safetensors weights + JSON (no pickle).

A bundle folder holds ``weights.safetensors`` (the network's state dict), ``spec.json``
(how to rebuild the network, the modality set, crop settings, the frozen threshold) and
``preprocessing.json`` (the lab preprocessing fitted on the training split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

BUNDLE_VERSION = 1


@dataclass
class Bundle:
    net: nn.Module
    spec: dict[str, Any]
    preprocessing: dict[str, Any]


def save_bundle(folder: str | Path, net: nn.Module, spec: dict[str, Any], preprocessing: dict[str, Any]) -> Path:
    """Write a bundle into ``folder`` (created); returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "weights.safetensors"))
    (folder / "spec.json").write_text(json.dumps({"bundle_version": BUNDLE_VERSION, **spec}, indent=2))
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2))
    return folder


def load_bundle(folder: str | Path) -> Bundle:
    """Rebuild the network from ``spec.json`` and load its safetensors weights (eval mode)."""
    from hydra.utils import instantiate
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    if spec.get("bundle_version") != BUNDLE_VERSION:
        raise ValueError(f"{folder}/spec.json: bundle_version {spec.get('bundle_version')} is not {BUNDLE_VERSION}")
    net_cfg = dict(spec["net"])
    if net_cfg.get("image"):
        net_cfg["image"] = {**net_cfg["image"], "pretrained": False, "pretrained_path": None}
    net = instantiate(net_cfg, _convert_="all")
    net.load_state_dict(load_file(str(folder / "weights.safetensors")))
    net.eval()
    preprocessing = json.loads((folder / "preprocessing.json").read_text())
    return Bundle(net, spec, preprocessing)
