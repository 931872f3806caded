"""Self-supervised pretraining: a tiny run (32 px synthetic crops, 1 epoch) per method, its file, its cache."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

from liver_mm.models.encoders import create_image_encoder
from liver_mm.pretrain.augment import SpeckleNoise, two_views, ultrasound_views
from liver_mm.pretrain.cache import cached_pretrain, pretrain_key
from liver_mm.pretrain.ssl import PretrainSettings, pretrain_encoder

ENCODER = "mobilenetv2_050"


def _crops(n: int = 8, seed: int = 0) -> np.ndarray:
    """Synthetic 32 px crops: a bright disc of random size on speckled background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    out = []
    for _ in range(n):
        r = rng.uniform(4, 12)
        disc = ((yy - 16) ** 2 + (xx - 16) ** 2 < r * r) * rng.uniform(80, 160)
        out.append(np.clip(disc + rng.gamma(2.0, 20.0, (32, 32)), 0, 255).astype(np.uint8))
    return np.stack(out)


def _settings(method: str = "simclr", **kw) -> PretrainSettings:
    return PretrainSettings(encoder=ENCODER, image_size=32, method=method, epochs=1, batch_size=4, **kw)


@pytest.mark.parametrize("method", ["simclr", pytest.param("byol", marks=pytest.mark.slow),
                                    pytest.param("dino", marks=pytest.mark.slow)])
def test_tiny_run_logs_a_loss_and_its_file_loads_into_the_encoder(method, tmp_path):
    logged: list[tuple[int, float]] = []
    enc = cached_pretrain(_crops(), _settings(method), tmp_path, progress=False,
                          on_epoch=lambda e, loss: logged.append((e, loss)))
    assert enc.trained and len(enc.losses) == 1 and logged == [(0, enc.losses[0])]
    assert np.isfinite(enc.losses[0])
    assert enc.path == tmp_path / "pretrain" / f"{enc.key}.safetensors"
    assert enc.path.stat().st_mode & 0o077 == 0  # the owner's only
    saved = load_file(enc.path)
    model = create_image_encoder(ENCODER, pretrained_path=enc.path)  # what model.net.image.pretrained_path does
    loaded = model.state_dict()
    assert set(saved) == set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    torch.manual_seed(0)  # the random start pretraining began from (settings.seed = 0)
    init = timm.create_model(ENCODER, num_classes=0, in_chans=1).state_dict()
    assert not torch.equal(saved["conv_stem.weight"], init["conv_stem.weight"])
    assert not torch.equal(saved["conv_head.weight"], init["conv_head.weight"])


@pytest.mark.slow  # two pretraining runs
def test_the_cache_reuses_by_content_and_a_retrain_writes_the_same_bytes(tmp_path):
    crops, settings = _crops(), _settings()
    first = cached_pretrain(crops, settings, tmp_path, progress=False)
    data = first.path.read_bytes()
    again = cached_pretrain(crops.copy(), settings, tmp_path, progress=False)
    assert not again.trained and again.path == first.path and again.losses == first.losses
    first.path.unlink()
    retrained = cached_pretrain(crops, settings, tmp_path, progress=False)
    assert retrained.trained and retrained.path.read_bytes() == data
    changed = crops.copy()
    changed[3, 5, 5] ^= 1  # one pixel of one crop
    assert pretrain_key(changed, settings) != first.key
    assert pretrain_key(crops, _settings(lr=2e-3)) != first.key


@pytest.mark.slow  # a pretraining run
def test_pretraining_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pretrain_encoder(_crops(), _settings(), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_views_are_two_different_grayscale_crops_in_range():
    torch.manual_seed(0)
    batch = torch.from_numpy(_crops(4)).unsqueeze(1).float() / 255
    a, b = two_views(batch, ultrasound_views(_settings().augment, 24))
    assert a.shape == b.shape == (4, 1, 24, 24)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.equal(a, b)


def test_speckle_is_multiplicative():
    torch.manual_seed(0)
    x = torch.zeros(1, 8, 8)
    x[0, :4] = 0.5
    y = SpeckleNoise(0.3)(x)
    assert torch.equal(y[0, 4:], torch.zeros(4, 8))  # black stays black: noise scales the echo
    assert not torch.equal(y[0, :4], x[0, :4])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="pretrain.method must be one of simclr, byol, dino"):
        _settings("moco")
    with pytest.raises(ValueError, match="needs >= 2 crops"):
        pretrain_encoder(_crops(1), _settings(), progress=False)
