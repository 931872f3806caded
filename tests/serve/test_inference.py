"""The shared per-case inference: batch-norm folding is exact or refused, crops match training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from liver_mm.features.crops import crop_resize
from liver_mm.serve.inference import Predictor, fast_image_encoder, fold_batchnorm


def _randomise_bn(module: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


class _Net(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.image_encoder = encoder


class _BnFirst(nn.Module):
    """A conv registered before a batch norm that does not consume it: must not be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def test_fold_batchnorm_is_exact_and_keeps_the_activation():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), BatchNormAct2d(4, act_layer=nn.ReLU6),
                        nn.Sequential(nn.Conv2d(4, 4, 3, groups=4, bias=False), nn.BatchNorm2d(4)))
    _randomise_bn(enc)
    enc.eval()
    x = torch.randn(3, 1, 12, 12)
    ref = enc(x)
    net = _Net(enc)
    assert fast_image_encoder(net, 12)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.image_encoder.modules())
    assert any(isinstance(m, nn.ReLU6) for m in net.image_encoder.modules())
    torch.testing.assert_close(net.image_encoder(x), ref, rtol=1e-5, atol=1e-5)


def test_folding_is_refused_when_it_changes_the_output():
    torch.manual_seed(0)
    enc = _BnFirst()
    _randomise_bn(enc)
    assert fold_batchnorm(_BnFirst()) == 1  # the naive fold happens...
    net = _Net(enc.eval())
    assert not fast_image_encoder(net, 8)  # ...but is caught and not used
    assert net.image_encoder is enc


def test_crop_is_training_crop(tabular_bundle):
    from liver_mm.serve.bundle import load_bundle

    bundle = load_bundle(tabular_bundle)
    bundle.spec.update(image_size=16, margin=0.1)
    predictor = Predictor.from_dir(tabular_bundle)
    predictor.bundle = bundle
    frame = np.arange(40 * 50, dtype=np.uint8).reshape(40, 50)
    box = (5, 6, 25, 30)
    np.testing.assert_array_equal(predictor.crop(frame, box), crop_resize(frame, box, 16, 0.1))
    np.testing.assert_array_equal(predictor.crop(frame, None), crop_resize(frame, (0, 0, 50, 40), 16, 0.1))
    with pytest.raises(ValueError, match="outside"):
        predictor.crop(frame, (60, 0, 70, 10))
