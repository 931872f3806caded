"""Shared pieces of the training benches (not a pytest file): a random cohort in the shapes ``fit`` takes,
and the plain PyTorch loop every pipeline figure is compared with."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

#: the augmentation of conf/train.yaml
AUG = {"enabled": True, "hflip": 0.5, "degrees": 10.0, "translate": 0.05, "scale": [0.9, 1.1],
       "brightness": 0.2, "contrast": 0.2, "gamma": [0.8, 1.25]}
#: clinical inputs (after preprocessing) of the seed arms m1..m5
ARM_TABULAR = {"m1": 0, "m2": 2, "m3": 4, "m4": 5, "m5": 6}
REPO = Path(__file__).resolve().parents[2]


def random_cohort(n: int, size: int, n_tab: int, seed: int = 0, fractions=(0.8, 0.1, 0.1)):
    """(PreparedCohort, Features) of ``n`` random crops (size x size uint8) and labs, split train/dev/test.
    Speed does not depend on pixel content; this skips generating and cropping PNG frames."""
    from liver_mm.cohort.prepare import PreparedCohort
    from liver_mm.features.inputs import Features

    rng = np.random.default_rng(seed)
    n_train, n_dev = int(fractions[0] * n), int(fractions[1] * n)
    split = np.array(["train"] * n_train + ["dev"] * n_dev + ["test"] * (n - n_train - n_dev))
    labels = np.tile([0, 1], n // 2 + 1)[:n]
    df = pd.DataFrame({"case_id": [f"C{i:05d}" for i in range(n)], "split": split,
                       "label": np.where(labels == 1, "malignant", "benign")})
    cohort = PreparedCohort(df, Path("random"), Path("random"), "random", "random", True)
    feats = Features(rng.integers(0, 256, size=(n, size, size), dtype=np.uint8),
                     rng.normal(size=(n, n_tab)).astype(np.float32), labels,
                     SimpleNamespace(n_features_out=n_tab), None)  # type: ignore[arg-type]
    return cohort, feats


def net(n_tab: int, name: str = "mobilenetv2_100") -> torch.nn.Module:
    from liver_mm.models import build_fusion_model

    torch.manual_seed(0)
    return build_fusion_model(image={"name": name}, tabular={"hidden": [64, 32]}, n_tabular=n_tab)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(images: np.ndarray, tabular: np.ndarray, labels: np.ndarray, epochs: int, bs: int,
               device: str = "cpu", bf16: bool = False, name: str = "mobilenetv2_100") -> float:
    """Images/s of a bare training loop with the data already on ``device``: gather, /255, channels_last,
    forward, BCE, backward, AdamW (bf16 autocast when ``bf16``); no augmentation, no dev pass."""
    dev = torch.device(device)
    model = net(tabular.shape[1], name).to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_all, t_all = torch.from_numpy(images).to(dev), torch.from_numpy(tabular).to(dev)
    y_all = torch.from_numpy(np.asarray(labels)).float().to(dev)
    n = len(images) // bs * bs
    sync(dev)
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        perm = torch.randperm(len(images), device=dev)[:n]
        for i in range(0, n, bs):
            idx = perm[i: i + bs]
            x = x_all[idx].unsqueeze(1).float().div_(255).contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(x, t_all[idx]).float(), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    sync(dev)
    return seen / (time.perf_counter() - start)


def compose(overrides: list[str], tmp: Path):
    """conf/train.yaml with ``overrides`` (Hydra compose), caches in ``tmp``, no model logging."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from omegaconf import open_dict

    try:  # installed (pip install -e . maps conf/ to liver_mm.conf)
        import liver_mm.conf  # noqa: F401

        init = initialize_config_module("liver_mm.conf", version_base="1.3")
    except ImportError:  # a bare checkout on PYTHONPATH: the conf/ folder itself
        init = initialize_config_dir(str(REPO / "conf"), version_base="1.3")
    with init:
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.cache_dir = str(tmp / "cache")
        cfg.trainer.enable_progress_bar = False
    return cfg


def fit_timed(cfg, cohort, feats) -> tuple[float, tuple[float, ...]]:
    """(wall seconds, per-epoch seconds) of ``fit.fit_lightning``: what a training run does between its
    features and its files (epochs with augmentation and the dev pass, best checkpoint, predictions)."""
    from liver_mm.training import fit

    start = time.perf_counter()
    result = fit.fit_lightning(cfg, cohort, feats)
    assert result is not None
    return time.perf_counter() - start, result.epoch_seconds
