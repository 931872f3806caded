"""The one registry of the study's names, read once from the shipped configs (``liver_mm.conf``).

The YAML files are what a user edits, so they are the source; code that needs a name asks here instead of
repeating it:

* :func:`arm_names`: the arm configs, ``conf/arm/<name>.yaml``;
* :func:`study_arms`: the stepwise study's arms in report order, ``study.arms`` of ``conf/study.yaml``;
* :func:`modality_features`: each modality set's clinical features, ``conf/modalities/<name>.yaml``;
* :func:`fusion_names`: the fusion options, ``conf/fusion/<name>.yaml`` (the networks behind them are
  :data:`liver_mm.models.fusion.FUSION_CLASSES`; a test keeps the two equal).

A leaf: imports nothing of liver_mm (``liver_mm.conf`` is a data package), so every layer may use it.
Files are read on first use and cached (``functools.cache``); a config group added through a Hydra search
path is not seen here (Hydra's own config loader lists it, see :func:`liver_mm.study.checks.known_arms`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType

from omegaconf import DictConfig, OmegaConf

PACKAGE = "liver_mm.conf"

__all__ = ["arm_names", "fusion_names", "modality_features", "study_arms"]


def _group(name: str) -> dict[str, Traversable]:
    """{option: file} of the config group folder ``conf/<name>/``, sorted by option name."""
    folder = resources.files(PACKAGE) / name
    files = {p.name.removesuffix(".yaml"): p for p in folder.iterdir() if p.name.endswith(".yaml")}
    return dict(sorted(files.items()))


def _load(path: Traversable) -> DictConfig:
    cfg = OmegaConf.create(path.read_text(encoding="utf-8"))
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{PACKAGE}/{path.name}: expected a mapping of options, got a list")
    return cfg


def _named(group: str) -> tuple[str, ...]:
    """Option names of a group whose files carry ``name:``; a ``name`` that differs from the file is an error."""
    out = []
    for option, path in _group(group).items():
        name = _load(path).get("name")
        if name != option:
            raise ValueError(f"conf/{group}/{option}.yaml: name: {name!r} must equal the file name {option!r}")
        out.append(option)
    return tuple(out)


@cache
def arm_names() -> tuple[str, ...]:
    """Every arm config (``conf/arm/*.yaml``), sorted by name."""
    return tuple(_group("arm"))


@cache
def study_arms() -> tuple[str, ...]:
    """The default study's arms in report order (``study.arms`` of ``conf/study.yaml``: m1..m5, then the controls)."""
    arms = tuple(str(a) for a in _load(resources.files(PACKAGE) / "study.yaml").study.arms)
    unknown = [a for a in arms if a not in arm_names()]
    if unknown:
        raise ValueError(f"conf/study.yaml: study.arms names {unknown}, which have no conf/arm/<name>.yaml")
    return arms


@cache
def modality_features() -> MappingProxyType[str, tuple[str, ...]]:
    """Modality set -> its clinical features in input order (``conf/modalities/*.yaml``, sets sorted by name;
    m1 = the image alone: no features)."""
    _named("modalities")
    return MappingProxyType({option: tuple(str(f) for f in _load(path).features)
                             for option, path in _group("modalities").items()})


@cache
def fusion_names() -> tuple[str, ...]:
    """The fusion options (``conf/fusion/*.yaml``), sorted by name."""
    return _named("fusion")
