"""Image encoder (timm, 1-channel stem, local weights, no downloads) and the tabular MLP."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from liver_mm.models import TabularEncoder, create_image_encoder, encoder_out_dim

TINY = "test_efficientnet"  # ~0.1 M parameters; the behaviour tested is model-independent


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to fetch weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download weights")

    import timm.models._builder as builder

    for fn in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file"):
        monkeypatch.setattr(builder, fn, refuse)


def _stem(model: torch.nn.Module) -> torch.nn.Conv2d:
    return model.get_submodule(model.pretrained_cfg["first_conv"])


def test_encoder_shape_and_one_channel_stem():
    enc = create_image_encoder(TINY).eval()
    assert _stem(enc).in_channels == 1
    out = enc(torch.rand(3, 1, 32, 32))
    assert out.shape == (3, enc.num_features) and encoder_out_dim(enc) == enc.num_features


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_loaded_and_stem_summed(tmp_path, suffix):
    torch.manual_seed(0)
    src = timm.create_model(TINY, num_classes=1000)  # a 3-channel ImageNet-style checkpoint
    sd = src.state_dict()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    enc = create_image_encoder(TINY, pretrained_path=path, in_chans=1)
    stem = _stem(enc)
    assert stem.in_channels == 1 and stem.weight.shape[1] == 1
    torch.testing.assert_close(stem.weight, sd["conv_stem.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(enc.bn1.weight, sd["bn1.weight"])
    torch.testing.assert_close(enc.conv_head.weight, sd["conv_head.weight"])
    # a fresh random model differs, so the comparison above is meaningful
    assert not torch.equal(create_image_encoder(TINY).conv_head.weight, sd["conv_head.weight"])


def test_three_channel_encoder_keeps_weights(tmp_path):
    src = timm.create_model(TINY, num_classes=1000)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    enc = create_image_encoder(TINY, pretrained_path=tmp_path / "w.pth", in_chans=3)
    torch.testing.assert_close(enc.conv_stem.weight, src.conv_stem.weight)


def test_pretrained_without_path_refuses_download():
    with pytest.raises(ValueError, match="never downloaded"):
        create_image_encoder(TINY, pretrained=True)


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_image_encoder(TINY, pretrained_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_image_encoder("no_such_net_v9")
    with pytest.raises(ValueError, match="hub"):
        create_image_encoder("hf-hub:timm/mobilenetv2_100.ra_in1k")


def test_weights_of_other_architecture_rejected(tmp_path):
    torch.save(timm.create_model("test_resnet", num_classes=1000).state_dict(), tmp_path / "r.pth")
    with pytest.raises(ValueError, match=r"r\.pth"):
        create_image_encoder(TINY, pretrained_path=tmp_path / "r.pth")
    # unrelated keys only: timm loads non-strictly without the classifier, we must not
    torch.save({"encoder.w": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth.*tensors missing"):
        create_image_encoder(TINY, pretrained_path=tmp_path / "other.pth")


def test_mobilenetv2_default_forward_64px():
    enc = create_image_encoder(drop_rate=0.2).eval()
    assert _stem(enc).in_channels == 1
    with torch.no_grad():
        assert enc(torch.rand(2, 1, 64, 64)).shape == (2, 1280)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_tabular_encoder_shapes(norm):
    enc = TabularEncoder(5, hidden=(16, 8), norm=norm, activation="gelu")
    assert enc.out_dim == 8 and encoder_out_dim(enc) == 8
    assert enc(torch.randn(4, 5)).shape == (4, 8)
    has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in enc.modules())
    has_ln = any(isinstance(m, torch.nn.LayerNorm) for m in enc.modules())
    assert (has_bn, has_ln) == (norm == "batch", norm == "layer")


def test_tabular_encoder_identity_and_errors():
    enc = TabularEncoder(3, hidden=())
    x = torch.randn(2, 3)
    assert enc.out_dim == 3 and torch.equal(enc(x), x)
    with pytest.raises(ValueError, match="norm"):
        TabularEncoder(3, norm="group")
    with pytest.raises(ValueError, match="activation"):
        TabularEncoder(3, activation="swoosh")
    with pytest.raises(ValueError, match="in_dim"):
        TabularEncoder(0)
