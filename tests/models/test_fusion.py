"""FusionClassifier: image-only (m1), fusion (m2..m5), tabular-only; channels_last; factory."""

from __future__ import annotations

import pytest
import torch

from liver_mm.models import (
    IMAGENET_GRAY_MEAN,
    IMAGENET_GRAY_STD,
    FusionClassifier,
    TabularEncoder,
    build_fusion_model,
    create_image_encoder,
)

TINY = "test_efficientnet"


@pytest.fixture()
def image() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(4, 1, 32, 32)


def test_image_only(image):
    model = FusionClassifier(create_image_encoder(TINY), None).eval()
    assert model(image, None).shape == (4,)
    # an empty (N, 0) clinical tensor is accepted and ignored
    torch.testing.assert_close(model(image, torch.zeros(4, 0)), model(image))
    with pytest.raises(ValueError, match="no tabular branch"):
        model(image, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="image"):
        model(None, None)


def test_fusion_concatenates_and_both_branches_learn(image):
    img_enc = create_image_encoder(TINY)
    tab_enc = TabularEncoder(6, hidden=(16,))
    model = FusionClassifier(img_enc, tab_enc, head_hidden=8)
    assert model.embed_dim == img_enc.num_features + 16 and model.n_tabular == 6
    logits = model(image, torch.randn(4, 6))
    assert logits.shape == (4,)
    logits.sum().backward()
    assert img_enc.conv_stem.weight.grad.abs().sum() > 0
    assert tab_enc.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        model(image, torch.randn(4, 5))
    with pytest.raises(ValueError, match="tabular"):
        model(image, None)


def test_tabular_only():
    model = FusionClassifier(None, TabularEncoder(3, hidden=(8,)), head_hidden=None).eval()
    assert model(None, torch.randn(5, 3)).shape == (5,)
    with pytest.raises(ValueError, match="at least|or both"):
        FusionClassifier(None, None)


def test_normalisation_inside_model_and_saved(image):
    model = FusionClassifier(create_image_encoder(TINY), None).eval()
    sd = model.state_dict()
    assert sd["image_mean"].item() == pytest.approx(IMAGENET_GRAY_MEAN)
    assert sd["image_std"].item() == pytest.approx(IMAGENET_GRAY_STD)
    u8 = (image * 255).round().to(torch.uint8)
    torch.testing.assert_close(model(u8), model(u8.float() / 255.0))
    torch.testing.assert_close(model(image[:, 0]), model(image))  # (N, S, S) accepted
    # the encoder really sees the normalised image
    expected = model.head(model.image_encoder((image - IMAGENET_GRAY_MEAN) / IMAGENET_GRAY_STD)).squeeze(-1)
    torch.testing.assert_close(model(image), expected)


def test_channels_last_matches_contiguous(image):
    torch.manual_seed(1)
    model = FusionClassifier(create_image_encoder(TINY), TabularEncoder(2, hidden=(4,))).eval()
    tab = torch.randn(4, 2)
    ref = model(image, tab)
    model = model.to(memory_format=torch.channels_last)
    assert model.image_encoder.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    out = model(image.contiguous(memory_format=torch.channels_last), tab)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_build_fusion_model_variants(image):
    img_cfg = {"name": TINY, "drop_rate": 0.1}
    m1 = build_fusion_model(image=img_cfg, tabular={"hidden": [8]}, n_tabular=0)
    assert m1.tabular_encoder is None and m1.n_tabular == 0
    m3 = build_fusion_model(image=img_cfg, tabular={"hidden": [8, 4], "norm": "layer"}, n_tabular=5)
    assert m3.tabular_encoder.out_dim == 4 and m3.n_tabular == 5
    assert m3.eval()(image, torch.randn(4, 5)).shape == (4,)
    assert build_fusion_model(image=img_cfg, n_tabular=2).tabular_encoder.out_dim == 32  # MLP defaults
    tab_only = build_fusion_model(image=None, tabular={"hidden": [8]}, n_tabular=3, head_hidden=None)
    assert tab_only.image_encoder is None
    assert m3.image_mean.item() == pytest.approx(IMAGENET_GRAY_MEAN)
    with pytest.raises(ValueError, match="no branch"):
        build_fusion_model(image=None, n_tabular=0)
