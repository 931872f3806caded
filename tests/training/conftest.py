"""Config composition for training tests (Hydra compose API, as lightning-hydra-template does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict
from torch.overrides import TorchFunctionMode


def compose_train(overrides: list[str], tmp: Path) -> DictConfig:
    """conf/train.yaml with ``overrides``, tracking and caches redirected into ``tmp``."""
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.cache_dir = str(tmp / "cache")
        cfg.logger.tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        cfg.logger.artifact_root = str(tmp / "mlartifacts")
    return cfg


@pytest.fixture
def small_overrides(tiny_cohort: Path) -> list[str]:
    """A fast run on the shared tiny cohort: 32 px crops, one epoch, small batches."""
    return [
        "data=manifest",
        f"data.manifest={tiny_cohort}",
        "image_size=32",
        "trainer.max_epochs=1",
        "loader.batch_size=16",
        "logger.log_model=false",
        "image_encoder=mobilenetv2_050",
    ]


class HostWaits(TorchFunctionMode):
    """Records every call that makes the host wait for (or copy to) a device: a tensor built from host
    values, a read back to the host, a device move."""

    READS = {"tensor", "as_tensor", "from_numpy", "item", "tolist", "numpy", "cpu", "cuda", "__bool__",
             "__int__", "__float__", "nonzero", "pin_memory"}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        moves = name in ("to", "copy_") and any(isinstance(a, (str, torch.device)) for a in (*args, *kwargs.values()))
        if name in self.READS or moves:
            self.calls.append(name)
        return func(*args, **kwargs)
