"""Fusion variants (late, film, gated): both inputs matter, output shape (N,), state-dict round trip, the factory."""

from __future__ import annotations

import logging

import pytest
import torch

from liver_mm.models import (
    FiLMFusionClassifier,
    FusionClassifier,
    GatedFusionClassifier,
    LateFusionClassifier,
    build_fusion_model,
    effective_fusion,
)
from liver_mm.models.spec import build_net, net_config

TINY = {"name": "mobilenetv2_050"}
CLASSES = {"concat": FusionClassifier, "late": LateFusionClassifier, "film": FiLMFusionClassifier,
           "gated": GatedFusionClassifier}


def _model(fusion: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_fusion_model(image=TINY, tabular={"hidden": [8]}, n_tabular=3, head_hidden=16, fusion=fusion).eval()


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4, 1, 48, 48, generator=g), torch.randn(4, 3, generator=g)


@pytest.mark.parametrize("fusion", ["concat", "late", "film", "gated"])
def test_output_depends_on_image_and_on_labs(fusion):
    model = _model(fusion)
    assert type(model) is CLASSES[fusion]
    image, tab = _inputs(1)
    other_image, other_tab = _inputs(2)
    with torch.no_grad():
        out = model(image, tab)
        image_changed = model(other_image, tab)
        labs_changed = model(image, other_tab)
    assert out.shape == (4,) and out.dtype == torch.float32
    # every case's logit moves when only its image, or only its labs, change
    assert ((out - image_changed).abs() > 1e-6).all(), (out, image_changed)
    assert ((out - labs_changed).abs() > 1e-6).all(), (out, labs_changed)


@pytest.mark.parametrize("fusion", ["late", "film", "gated"])
def test_state_dict_round_trip_and_bundle_spec(fusion):
    model = _model(fusion, seed=0)
    spec = net_config({"_target_": "liver_mm.models.build_fusion_model", "image": TINY, "tabular": {"hidden": [8]},
                       "head_hidden": 16, "fusion": fusion}, use_image=True, n_tabular=3)
    assert spec["fusion"] == fusion
    rebuilt = build_net(spec).eval()  # what liver_mm.serve.bundle.load_bundle does with spec.json's "net"
    assert type(rebuilt) is CLASSES[fusion]
    image, tab = _inputs(3)
    with torch.no_grad():
        assert not torch.allclose(rebuilt(image, tab), model(image, tab))  # other random weights
        rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
        torch.testing.assert_close(rebuilt(image, tab), model(image, tab), rtol=0, atol=0)


def test_concat_keeps_its_state_dict_keys():
    keys = list(_model("concat").state_dict())
    assert keys[-2:] == ["head.4.weight", "head.4.bias"] and "image_mean" in keys and "image_std" in keys
    assert {k.split(".")[0] for k in keys} == {"image_encoder", "tabular_encoder", "image_mean", "image_std", "head"}


def test_variant_parts():
    late = _model("late")
    assert late.image_weight == pytest.approx(0.5)  # sigmoid(0): both heads weigh the same at the start
    film = _model("film")
    assert film.film.out_features == 2 * 1280 and film.channels == 1280
    gated = _model("gated")
    assert gated.gate.in_features == gated.gate.out_features == 1280 + 8


@pytest.mark.parametrize("fusion", ["late", "film", "gated"])
def test_one_branch_models_are_concat_with_a_note(fusion, caplog):
    with caplog.at_level(logging.WARNING, logger="liver_mm.models.fusion"):
        m1 = build_fusion_model(image=TINY, n_tabular=0, fusion=fusion)
        tab_only = build_fusion_model(image=None, tabular={"hidden": [8]}, n_tabular=3, fusion=fusion)
    assert type(m1) is FusionClassifier and type(tab_only) is FusionClassifier
    assert f"fusion={fusion} needs both an image and clinical features" in caplog.text
    spec = net_config({"_target_": "liver_mm.models.build_fusion_model", "image": TINY, "fusion": fusion},
                      use_image=True, n_tabular=0)
    assert spec["fusion"] == "concat"  # the bundle records the network actually built


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="fusion='sum' is not one of concat, late, film, gated"):
        build_fusion_model(image=TINY, n_tabular=2, fusion="sum")
    assert effective_fusion(None, True, True) == "concat"
