"""Grad-CAM: maps of the crop's size in [0, 1], the model-randomisation sanity check, the network untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from liver_mm.explain.gradcam import gradcam_maps, last_conv
from liver_mm.models import FusionClassifier
from liver_mm.serve.inference import fast_image_encoder
from tests.explain.conftest import fusion_net


def test_maps_have_the_crop_size_and_range(crops):
    net = fusion_net(n_tabular=3)
    tab = np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
    maps = gradcam_maps(net, crops, tab)
    assert maps.shape == (12, 64, 64) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and np.allclose(maps.reshape(12, -1).max(axis=1), 1.0)
    as_float = gradcam_maps(net, crops[:, None].astype(np.float32) / 255.0, tab)  # (N, 1, S, S) float in [0, 1]
    np.testing.assert_allclose(as_float, maps, atol=1e-5)
    assert [n for n, m in net.named_modules() if m is last_conv(net)] == ["image_encoder.conv_head"]


def test_sign_explains_the_other_class_and_net_is_untouched(crops):
    net = fusion_net(n_tabular=0, tta_hflip=True)
    before = copy.deepcopy(net.state_dict())
    up = gradcam_maps(net, crops[:4])
    down = gradcam_maps(net, crops[:4], sign=-1.0)
    mixed = gradcam_maps(net, crops[:4], sign=np.array([1.0, -1.0, 1.0, -1.0]))
    np.testing.assert_array_equal(mixed[[0, 2]], up[[0, 2]])
    np.testing.assert_array_equal(mixed[[1, 3]], down[[1, 3]])
    assert not np.allclose(up, down)
    assert net.tta_hflip and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert any(getattr(m, "inplace", False) for m in net.modules())  # in-place flags restored on the original


def test_loaded_bundle_gives_the_same_maps(crops):
    """predict folds the batch norms (its ReLU6 then runs in place on the conv output) and runs channels-last:
    the same maps, bit for bit."""
    net = fusion_net(n_tabular=0)
    loaded = copy.deepcopy(net)
    assert fast_image_encoder(loaded, 64)
    loaded.to(memory_format=torch.channels_last)
    np.testing.assert_array_equal(gradcam_maps(loaded, crops), gradcam_maps(net, crops))


def test_refuses_a_network_without_an_image_branch():
    with pytest.raises(ValueError, match="image branch"):
        gradcam_maps(fusion_net(n_tabular=3, image=False), np.zeros((1, 64, 64), np.uint8), np.zeros((1, 3)))


class _TinyCNN(nn.Module):
    """Two 3x3 convolutions and a 2x2 max pool: a 16x16 Grad-CAM grid on 32 px crops (MobileNetV2's last conv
    would be 1x1 there), so the maps have structure to compare."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def _squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(n, 32, 32) float crops, label 1 (every other case) = a bright 6x6 square at a random place."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 0.05, (n, 32, 32))
    y = np.arange(n) % 2
    where = [tuple(int(v) for v in rng.integers(2, 24, 2)) for _ in range(n)]
    for i, (r, c) in enumerate(where):
        x[i, r:r + 6, c:c + 6] += 0.5 * y[i]
    return np.clip(x, 0, 1).astype(np.float32), y, where


def test_model_randomisation_sanity_check():
    """Adebayo et al. 2018: a saliency method whose maps survive re-initialising the weights does not explain
    the model. A tiny CNN learns "malignant = a bright square" (40 full-batch Adam steps, deterministic); its
    maps of held-out malignant cases sit on the square; re-initialised, the maps must change. Spearman's rank
    correlation over the pixels is ~0.1 here (a random CNN still reacts a little to a bright square); 0.5 is
    half way to the 1.0 of a map that ignored the weights (a copy of the trained model gives exactly 1.0)."""
    torch.manual_seed(0)
    net = FusionClassifier(_TinyCNN(), None, head_hidden=None, dropout=0.0, image_mean=0.0, image_std=1.0)
    x, y, _ = _squares(64, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(40):
        loss = nn.functional.binary_cross_entropy_with_logits(net(torch.from_numpy(x)[:, None]),
                                                              torch.from_numpy(y).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    xt, yt, where = _squares(16, seed=1)
    with torch.no_grad():
        prob = torch.sigmoid(net(torch.from_numpy(xt)[:, None])).numpy()
    assert ((prob >= 0.5) == yt).all()  # it learnt the pattern
    pos = np.flatnonzero(yt == 1)
    trained = gradcam_maps(net, xt[pos])
    for m, (r, c) in zip(trained, [where[i] for i in pos], strict=True):
        inside = np.zeros(m.shape, bool)
        inside[r:r + 6, c:c + 6] = True
        assert m[inside].mean() > 10 * m[~inside].mean()  # the map points at the square
    randomised = copy.deepcopy(net)
    torch.manual_seed(1)
    for module in randomised.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    again = gradcam_maps(copy.deepcopy(net), xt[pos])
    rho_same = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(trained, again, strict=True)]
    assert np.allclose(rho_same, 1.0)
    rho = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(trained, gradcam_maps(randomised, xt[pos]), strict=True)]
    assert np.mean(rho) < 0.5 and max(rho) < 0.7
