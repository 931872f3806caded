"""The device-resident path (``loader.device_resident``), run here with the device tensors on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from liver_mm.training import fit
from liver_mm.training.datamodule import CohortDataModule
from liver_mm.training.device_data import (
    DeviceAugmentation,
    DeviceBatches,
    DeviceCohort,
    DeviceCohortDataModule,
)
from tests.training.conftest import HostWaits, compose_train

AUG = {"enabled": True, "hflip": 0.5, "degrees": 10.0, "translate": 0.05, "scale": [0.9, 1.1],
       "brightness": 0.2, "contrast": 0.2, "gamma": [0.8, 1.25]}
NONE = {**AUG, "hflip": 0.0, "degrees": 0.0, "translate": 0.0, "scale": [1.0, 1.0], "brightness": 0.0,
        "contrast": 0.0, "gamma": [1.0, 1.0]}


def _asymmetric(n: int, size: int = 16) -> torch.Tensor:
    """n copies of one image (n, 1, size, size) in [0, 1] with no left-right or top-bottom symmetry."""
    g = torch.arange(size * size, dtype=torch.float32).reshape(size, size) ** 1.3
    return (g / g.max()).expand(n, 1, size, size).clone()


def test_hflip_only_flips_left_right_per_sample():
    torch.manual_seed(0)
    aug = DeviceAugmentation({**NONE, "hflip": 0.5})
    x = _asymmetric(64)
    y = aug(x)
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # each sample: untouched or mirrored left-right, nothing else
    assert not bool((y == x.flip(-2)).flatten(1).all(1).any())  # never upside down
    flipped = aug.last_params["flip"]  # the per-sample draw
    assert torch.equal(mirrored, flipped) and 0 < int(flipped.sum()) < 64


def test_the_fused_affine_mirrors_exactly_and_keeps_an_identity_exact():
    x = _asymmetric(2)
    aug = DeviceAugmentation(AUG)
    one = torch.ones(2)
    theta = aug._theta(torch.tensor([False, True]), 0 * one, torch.zeros(2, 2), one)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    y = torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    assert torch.equal(y[0], x[0]) and torch.equal(y[1], x[1].flip(-1))
    # a quarter turn moves the top-left corner pixel to a neighbouring corner, never off the image
    theta = aug._theta(torch.tensor([False, False]), 90 * one, torch.zeros(2, 2), one)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    y = torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    assert torch.equal(y[0, 0], torch.rot90(x[0, 0], k=1)) or torch.equal(y[0, 0], torch.rot90(x[0, 0], k=-1))


def test_every_sample_draws_its_own_parameters():
    torch.manual_seed(1)
    aug = DeviceAugmentation(AUG)
    y = aug(_asymmetric(8))
    flat = y.flatten(1)
    assert len({tuple(r.tolist()) for r in flat}) == 8  # identical inputs, 8 different outputs
    affine = aug.last_params
    assert affine["angle"].shape == (8,) and len(set(affine["angle"].tolist())) == 8
    assert float(affine["angle"].abs().max()) <= 10.0
    assert float(affine["translations"].abs().max()) <= 0.05 * 16 + 1e-6
    assert float(affine["scale"].min()) >= 0.9 and float(affine["scale"].max()) <= 1.1
    gamma = aug.last_params["gamma"]
    assert gamma.shape == (8,) and len(set(gamma.tolist())) == 8
    assert float(gamma.min()) >= 0.8 and float(gamma.max()) <= 1.25
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_disabled_settings_leave_images_unchanged():
    x = _asymmetric(4)
    assert not DeviceAugmentation(NONE).active
    assert torch.equal(DeviceAugmentation(NONE)(x.clone()), x)


def _cohort(n: int = 10, size: int = 32):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    return images, rng.normal(size=(n, 3)).astype(np.float32), np.arange(n) % 2


def test_batches_reshuffle_each_epoch_reproducibly_and_drop_like_the_cpu_loader():
    images, tab, labels = _cohort()
    data = DeviceCohort(images, tab, labels, "cpu")
    index = np.array([0, 2, 3, 5, 6, 7, 9])
    batches = DeviceBatches(data, index, 3, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    epochs = [torch.cat([b["tabular"][:, 0] for b in batches]) for _ in range(2)]
    rows = [[int(np.flatnonzero(tab[:, 0] == v)[0]) for v in e.tolist()] for e in epochs]
    assert len(batches) == 2 and all(len(r) == 6 and set(r) <= set(index) for r in rows)
    assert rows[0] != rows[1]  # a new order every epoch
    again = DeviceBatches(data, index, 3, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    assert [int(np.flatnonzero(tab[:, 0] == v)[0]) for b in again for v in b["tabular"][:, 0].tolist()] == rows[0]
    batch = next(iter(DeviceBatches(data, index, 4, shuffle=False, drop_last=False)))
    assert batch["image"].shape == (4, 1, 32, 32) and batch["image"].dtype == torch.float32
    assert torch.equal(batch["image"][1, 0], torch.from_numpy(images[2]).float() / 255)
    assert batch["label"].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_a_batch_never_makes_the_host_wait_for_the_device():
    images, tab, labels = _cohort(40)
    data = DeviceCohort(images, tab, labels, "cpu")
    batches = iter(DeviceBatches(data, np.arange(40), 8, shuffle=True, drop_last=True,
                                 augment=DeviceAugmentation(AUG), generator=torch.Generator().manual_seed(0)))
    next(batches)  # the epoch's start sends its order over once
    with HostWaits() as mode:
        rest = list(batches)
    assert len(rest) == 4 and mode.calls == []
    with HostWaits() as mode:  # the recorder does see a host round trip
        torch.tensor([1.0, 2.0]).sum().item()
    assert mode.calls == ["tensor", "item"]


def test_ranks_take_disjoint_equal_shares():
    images, tab, labels = _cohort(12)
    data = DeviceCohort(images, tab, labels, "cpu")
    seen = []
    for rank in (0, 1):
        gen = torch.Generator().manual_seed(3)  # every rank seeds the same permutation
        b = DeviceBatches(data, np.arange(11), 2, shuffle=True, drop_last=True, generator=gen, rank=rank, world=2)
        seen.append([v for x in b for v in x["tabular"][:, 0].tolist()])
    assert len(seen[0]) == len(seen[1]) == 4 and not set(seen[0]) & set(seen[1])


def test_auto_keeps_the_cpu_datamodule_on_cpu(tmp_path: Path, small_overrides):
    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.features.inputs import build_features

    cfg = compose_train(small_overrides, tmp_path)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    assert type(fit.datamodule(cfg, cohort, feats)) is CohortDataModule  # trainer=cpu, auto: unchanged path
    cfg.loader.device_resident = True
    dm = fit.datamodule(cfg, cohort, feats)
    assert isinstance(dm, DeviceCohortDataModule) and dm.augment is not None
    rows = np.flatnonzero(cohort.df["split"].isin(["dev", "test"]).to_numpy())
    labels = torch.cat([b["label"] for b in dm.predict_loader(["dev", "test"])])
    assert labels.tolist() == feats.labels[rows].astype(np.float32).tolist()  # cohort order


@pytest.mark.slow
def test_device_resident_run_trains_end_to_end_on_cpu(tmp_path: Path, small_overrides):
    from liver_mm.training.run import train

    cfg = compose_train([*small_overrides, "modalities=m2", "loader.device_resident=true", "trainer=cpu",
                         "trainer.max_epochs=2"], tmp_path)
    result = train(cfg, out=tmp_path / "run")
    assert result is not None
    pred = result.predictions
    assert list(pred.columns) == ["case_id", "split", "label", "prob"] and len(pred) > 0
    assert pred["prob"].between(0, 1).all() and pred["prob"].nunique() > 1
    test = pred[pred["split"] == "test"]
    assert result.metrics["test_auc"] == pytest.approx(roc_auc_score(test["label"] == "malignant", test["prob"]))
