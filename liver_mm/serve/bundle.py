"""The saved form of a trained model: safetensors weights + JSON (no pickle).

A bundle folder holds ``weights.safetensors`` (the network's state dict), ``spec.json``
(how to rebuild the network, the modality set, crop settings, the frozen threshold) and
``preprocessing.json`` (the lab preprocessing fitted on the training split) and ``units.json`` (the
unit of each lab the model takes, :func:`liver_mm.serve.units.units_document`).

``spec.json`` names the network to rebuild by ``_target_``; whoever writes the file would choose
what runs, so every ``_target_`` in it must be one of this package's networks
(:data:`NETWORK_TARGETS`) before anything is instantiated, and no string in it may hold an OmegaConf
interpolation (``${...}``: Hydra would resolve ``${oc.env:...}`` and its kin while instantiating).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from liver_mm.serve.units import units_document

BUNDLE_VERSION = 1


def _network_targets() -> frozenset[str]:
    """The dotted names a bundle may instantiate: liver_mm.models' network builders and classes, by
    their public name (``liver_mm.models.X``) and their defining module's."""
    import liver_mm.models as models

    objs = [models.build_fusion_model, models.FusionClassifier, models.FiLMFusionClassifier,
            models.GatedFusionClassifier, models.LateFusionClassifier]
    return frozenset([*(f"liver_mm.models.{o.__name__}" for o in objs),
                      *(f"{o.__module__}.{o.__qualname__}" for o in objs)])


NETWORK_TARGETS = _network_targets()


def _targets(node: object, where: str = "net") -> list[tuple[str, object]]:
    """Every ``_target_`` in a config tree as (its key path, its value)."""
    if isinstance(node, dict):
        found = [(where, node["_target_"])] if "_target_" in node else []
        return found + [t for k, v in node.items() for t in _targets(v, f"{where}.{k}")]
    if isinstance(node, list):
        return [t for i, v in enumerate(node) for t in _targets(v, f"{where}[{i}]")]
    return []


def check_targets(net_cfg: object, source: str) -> None:
    """Refuse a network config whose ``_target_`` (any, at any depth) is not in :data:`NETWORK_TARGETS`,
    or that has none at its top: ``ValueError`` naming ``source`` and the target."""
    if not isinstance(net_cfg, dict) or "_target_" not in net_cfg:
        raise ValueError(f"{source}: 'net' has no _target_: not a liver-mm network")
    for where, target in _targets(net_cfg):
        if target not in NETWORK_TARGETS:
            raise ValueError(f"{source}: {where}._target_ = {target!r} is not a liver-mm network; a bundle may "
                             f"only build {', '.join(sorted(t for t in NETWORK_TARGETS if t.count('.') == 2))}")


def _interpolations(node: object, where: str) -> list[str]:
    """Key paths of every string (key or value, at any depth) holding ``${``."""
    if isinstance(node, dict):
        return [p for k, v in node.items()
                for p in ([f"{where}.{k}"] if "${" in str(k) else []) + _interpolations(v, f"{where}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _interpolations(v, f"{where}[{i}]")]
    return [where] if isinstance(node, str) and "${" in node else []


def check_no_interpolation(spec: object, source: str) -> None:
    """Refuse a spec with an OmegaConf interpolation (``${``) in any string: ``ValueError`` naming ``source`` and
    the key. A saved spec holds plain values only; Hydra would resolve ``${oc.env:...}`` and the like."""
    found = _interpolations(spec, "spec")
    if found:
        raise ValueError(f"{source}: {found[0].removeprefix('spec.')} holds an interpolation ('${{'): a saved "
                         "model spec holds plain values only; refusing to load it")


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
    (folder / "units.json").write_text(json.dumps(units_document(list(spec.get("features") or [])), indent=2))
    return folder


def load_bundle(folder: str | Path) -> Bundle:
    """Rebuild the network from ``spec.json`` (checked first: no interpolation, :func:`check_no_interpolation`;
    only liver-mm's networks, :func:`check_targets`) and
    load its safetensors weights (eval mode)."""
    from hydra.utils import instantiate
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    if spec.get("bundle_version") != BUNDLE_VERSION:
        raise ValueError(f"{folder}/spec.json: bundle_version {spec.get('bundle_version')} is not {BUNDLE_VERSION}")
    check_no_interpolation(spec, f"{folder}/spec.json")
    check_targets(spec.get("net"), f"{folder}/spec.json")
    net_cfg = dict(spec["net"])
    if net_cfg.get("image"):
        net_cfg["image"] = {**net_cfg["image"], "pretrained": False, "pretrained_path": None}
    net = instantiate(net_cfg, _convert_="all")
    net.load_state_dict(load_file(str(folder / "weights.safetensors")))
    net.eval()
    preprocessing = json.loads((folder / "preprocessing.json").read_text())
    return Bundle(net, spec, preprocessing)
