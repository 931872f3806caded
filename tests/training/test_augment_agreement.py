"""The two augmentation paths agree in distribution: torchvision on the host (``CohortDataModule``, per sample)
and the batched device version (``DeviceCohortDataModule``, ``loader.device_resident``; run here on the CPU).

The same fixed crops go through both paths ``N`` times (seeded); a statistic that one transform controls
(flip, orientation of a bar, centroid shift, area, brightness, contrast, gamma) is compared with a two-sample
Kolmogorov-Smirnov test at ``ALPHA`` (the flip rate: a binomial test against ``hflip``). Each transform is
checked alone (the others off: clean statistics), brightness with contrast (their order), then all together as
``conf/train.yaml`` sets them. The seeds fix every draw, so the outcome is deterministic. Each check fails when
the device path's parameter is changed (hflip 0.5 -> 0.4, degrees x1.3, translate, scale, brightness, contrast
or gamma range x2), and the brightness/contrast one with the order fixed (as it was before ColorJitter's
random order was matched).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.stats import binomtest, ks_2samp

from liver_mm.training.datamodule import CohortDataModule
from liver_mm.training.device_data import DeviceCohortDataModule

N = 1000  # draws per path
SIZE = 48
ALPHA = 1e-3
CONF = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "train.yaml").augment)
OFF = {**CONF, "hflip": 0.0, "degrees": 0.0, "translate": 0.0, "scale": [1.0, 1.0], "brightness": 0.0,
       "contrast": 0.0, "gamma": [1.0, 1.0]}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy 2-core machine two threads spin on these tiny ops (about 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _only(*names: str) -> dict:
    """The config's augmentation with every transform but ``names`` off."""
    return {**OFF, **{k: CONF[k] for k in names}}


def _draws(augment: Mapping, crop: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``N`` augmented copies of ``crop`` (S, S) uint8 from each path: (host (N, S, S), device (N, S, S))."""
    images = np.repeat(crop[None], N, axis=0)
    tab, labels, split = np.zeros((N, 1), np.float32), np.zeros(N), np.full(N, "train")
    ids = [f"c{i}" for i in range(N)]
    torch.manual_seed(seed)
    host = CohortDataModule(images, tab, labels, ids, split, batch_size=N, augment=augment)
    host = host.dataset("train", augment=True)
    a = np.stack([host[i]["image"][0].numpy() for i in range(N)])
    torch.manual_seed(seed + 1)
    device = DeviceCohortDataModule(images, tab, labels, ids, split, batch_size=N, augment=augment, device="cpu")
    (batch,) = list(device.train_dataloader())
    return a, batch["image"][:, 0].numpy()


def _bar() -> np.ndarray:
    """A horizontal bar (30 x 6 px) off the centre: orientation, centroid and area are all readable."""
    img = np.zeros((SIZE, SIZE), np.uint8)
    img[19:25, 8:38] = 200
    return img


def _orientation(x: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Orientation in degrees of each image's mask ``x > level`` (second moments)."""
    m = x > level
    yy, xx = np.mgrid[:SIZE, :SIZE]
    n = m.sum((1, 2))
    cx, cy = (m * xx).sum((1, 2)) / n, (m * yy).sum((1, 2)) / n
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    mu20, mu02, mu11 = (m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2))
    return np.degrees(0.5 * np.arctan2(2 * mu11, mu20 - mu02))


def _centroid(x: np.ndarray, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    m = x > level
    yy, xx = np.mgrid[:SIZE, :SIZE]
    n = m.sum((1, 2))
    return (m * xx).sum((1, 2)) / n, (m * yy).sum((1, 2)) / n


def _area(x: np.ndarray) -> np.ndarray:
    return (x > 0.5).sum((1, 2)).astype(float)


def _assert_same(stat: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray, what: str) -> None:
    sa, sb = stat(a), stat(b)
    res = ks_2samp(sa, sb)
    assert res.pvalue > ALPHA, (f"{what}: host and device differ (KS D={res.statistic:.3f}, p={res.pvalue:.2g}; "
                                f"host mean {sa.mean():.4g} sd {sa.std():.4g}, device mean {sb.mean():.4g} sd {sb.std():.4g})")


def _halves(left: int, right: int) -> np.ndarray:
    """Left half ``left``, right half ``right`` (uint8): a left-right asymmetric crop with a known spread."""
    img = np.full((SIZE, SIZE), right, np.uint8)
    img[:, : SIZE // 2] = left
    return img


def _level(value: int) -> float:
    return value / 255.0


def test_hflip_rate_agrees_with_the_config():
    img = _bar()
    img[:, :4] = 90  # a left border: the bar alone is nearly symmetric
    p = float(CONF["hflip"])
    for name, x in zip(("host", "device"), _draws(_only("hflip"), img), strict=True):
        x0 = img / 255.0
        same = np.isclose(x, x0, atol=1e-6).all((1, 2))
        mirrored = np.isclose(x, x0[:, ::-1], atol=1e-6).all((1, 2))
        assert (same ^ mirrored).all(), f"{name}: a sample neither untouched nor mirrored"
        k = int(mirrored.sum())
        assert binomtest(k, N, p).pvalue > ALPHA, f"{name}: {k}/{N} flipped, config hflip={p}"


GEOMETRY = {
    "degrees": {"orientation": _orientation},
    "translate": {"centroid x": lambda x: _centroid(x)[0], "centroid y": lambda x: _centroid(x)[1]},
    "scale": {"area": _area},
}


@pytest.mark.parametrize("transform", list(GEOMETRY))
def test_each_geometric_transform_agrees(transform: str):
    a, b = _draws(_only(transform), _bar())
    for what, stat in GEOMETRY[transform].items():
        _assert_same(stat, a, b, f"{transform}: {what}")


PHOTOMETRIC = {  # transform -> (crop, its parameter read back from an output)
    "brightness": (np.full((SIZE, SIZE), 128, np.uint8), lambda x: x.mean((1, 2)) / _level(128)),
    "contrast": (_halves(77, 179), lambda x: x.std((1, 2)) / (_level(179) - _level(77)) * 2),
    "gamma": (np.full((SIZE, SIZE), 128, np.uint8), lambda x: np.log(x.mean((1, 2))) / np.log(_level(128))),
}


@pytest.mark.parametrize("transform", list(PHOTOMETRIC))
def test_each_photometric_transform_agrees(transform: str):
    crop, stat = PHOTOMETRIC[transform]
    a, b = _draws(_only(transform), crop)
    _assert_same(stat, a, b, transform)
    lo, hi = (1 - CONF[transform], 1 + CONF[transform]) if transform != "gamma" else CONF["gamma"]
    for x in (a, b):  # the parameter read back spans the configured range
        assert stat(x).min() == pytest.approx(lo, abs=0.02) and stat(x).max() == pytest.approx(hi, abs=0.02)


def test_brightness_and_contrast_compose_alike():
    """torchvision's ColorJitter applies brightness and contrast in a random order per call; the order shows
    (each step clips to [0, 1]) in the mean of a black-and-white crop: contrast then a brightness factor > 1
    lifts the black half above 0 while the white half stays at 1."""
    a, b = _draws(_only("brightness", "contrast"), _halves(255, 0))
    _assert_same(lambda x: x.mean((1, 2)), a, b, "brightness+contrast: mean")
    _assert_same(lambda x: x[:, :, 0].mean(1), a, b, "brightness+contrast: white half")


def test_the_configured_augmentation_agrees():
    """Everything on, as conf/train.yaml sets it: the bar's orientation, position, size and brightness."""
    a, b = _draws(CONF, _bar())
    level = 0.25  # the bar (0.78) stays above it through the darkest brightness x contrast x gamma
    stats = {"orientation": lambda x: _orientation(x, level), "centroid x": lambda x: _centroid(x, level)[0],
             "centroid y": lambda x: _centroid(x, level)[1], "area": lambda x: (x > level).sum((1, 2)).astype(float),
             "mean": lambda x: x.mean((1, 2)), "max": lambda x: x.max((1, 2))}
    for what, stat in stats.items():
        _assert_same(stat, a, b, f"all: {what}")


def test_device_brightness_contrast_order_is_drawn_per_sample_as_torchvision_applies_it():
    """Each device sample equals torchvision's adjust_brightness / adjust_contrast at its drawn factors, in its
    drawn order; both orders occur."""
    from torchvision.transforms.v2 import functional as tvf

    from liver_mm.training.device_data import DeviceAugmentation

    torch.manual_seed(0)
    aug = DeviceAugmentation(_only("brightness", "contrast"))
    x = torch.from_numpy(_halves(255, 0)).float().div(255.0).expand(64, 1, SIZE, SIZE).clone()
    y = aug(x)
    p = aug.last_params
    first = p["brightness_first"]
    assert 0 < int(first.sum()) < 64
    for i in range(64):
        b, c = float(p["brightness"][i]), float(p["contrast"][i])
        if first[i]:
            want = tvf.adjust_contrast(tvf.adjust_brightness(x[i], b), c)
        else:
            want = tvf.adjust_brightness(tvf.adjust_contrast(x[i], c), b)
        torch.testing.assert_close(y[i], want, rtol=0, atol=1e-6)
