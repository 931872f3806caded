"""Image encoder (timm, 1-channel stem, local weights or timm's hub cache) and the tabular MLP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from hydra import compose, initialize_config_module
from safetensors.torch import save_file

from liver_mm.models import TabularEncoder, build_fusion_model, create_image_encoder, encoder_out_dim
from liver_mm.models.spec import build_net, net_config

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


def _fake_hub(monkeypatch, result):
    """timm's hub loader returns ``result`` (a state dict) or raises it (an exception); records the hub ids."""
    import timm.models._builder as builder

    asked: list[str] = []

    def load(model_id, *args, **kwargs):
        asked.append(model_id)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(builder, "load_state_dict_from_hf", load)
    return asked


def test_pretrained_true_uses_timm_hub_weights(monkeypatch):
    torch.manual_seed(1)
    sd = timm.create_model(TINY, num_classes=1000).state_dict()
    asked = _fake_hub(monkeypatch, sd)
    enc = create_image_encoder(TINY, pretrained=True)
    assert asked == [enc.pretrained_cfg["hf_hub_id"]] and asked[0].startswith("timm/")
    assert torch.equal(_stem(enc).weight, sd["conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(enc.conv_head.weight, sd["conv_head.weight"])


def test_pretrained_true_offline_names_the_ways_out(monkeypatch):
    _fake_hub(monkeypatch, LocalEntryNotFoundError("cannot find the requested files in the local cache"))
    with pytest.raises(ValueError, match=rf"no network to download '{TINY}'.*pretrained_path=FILE") as err:
        create_image_encoder(TINY, pretrained=True)
    assert "~/.cache/huggingface" in str(err.value)
    assert isinstance(err.value.__cause__, LocalEntryNotFoundError)


def test_pretrained_true_offline_for_real(tmp_path):
    """HF_HUB_OFFLINE=1 and an empty HF_HOME: timm's real loader fails, our message names the cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    code = ("from liver_mm.models import create_image_encoder\n"
            "create_image_encoder('mobilenetv2_100', pretrained=True)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: no network to download 'mobilenetv2_100'")
    assert str(tmp_path / "hf" / "hub") in last and "model.net.image.pretrained_path=FILE" in last
    assert "LocalEntryNotFoundError" in proc.stderr  # the hub's own error is chained


def _patterned_mobilenet(path) -> torch.Tensor:
    """Write a 3-channel mobilenetv2_100 state dict whose stem is 0, 1, 2, ... / 1000; return that stem."""
    sd = timm.create_model("mobilenetv2_100", num_classes=0).state_dict()
    w = sd["conv_stem.weight"]
    sd["conv_stem.weight"] = torch.arange(w.numel(), dtype=torch.float32).reshape(w.shape) / 1000
    torch.save(sd, path)
    return sd["conv_stem.weight"]


def test_local_file_stem_is_the_summed_rgb_kernel(tmp_path):
    w = _patterned_mobilenet(tmp_path / "mnv2.pth")
    assert w.shape == (32, 3, 3, 3)
    enc = create_image_encoder("mobilenetv2_100", pretrained_path=tmp_path / "mnv2.pth")
    expected = w.sum(dim=1, keepdim=True)
    assert enc.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.equal(enc.conv_stem.weight, expected)
    assert enc.conv_stem.weight[0, 0, 0, 0].item() == pytest.approx((0 + 9 + 18) / 1000)


def test_fusion_net_from_the_train_config_loads_the_file(tmp_path):
    """The path `liver-mm train model.net.image.pretrained_path=FILE` takes (training/fit.py builds the net
    with build_net(net_config(cfg.model.net, ...)))."""
    expected = _patterned_mobilenet(tmp_path / "mnv2.pth").sum(dim=1, keepdim=True)
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        cfg = compose("train", overrides=["modalities=m1", "model.net.image.pretrained=true",
                                          f"model.net.image.pretrained_path={tmp_path / 'mnv2.pth'}"])
    net = build_net(net_config(cfg.model.net, use_image=True, n_tabular=0))
    assert torch.equal(net.image_encoder.conv_stem.weight, expected)
    direct = build_fusion_model(image={"name": "mobilenetv2_100", "pretrained_path": str(tmp_path / "mnv2.pth")})
    assert torch.equal(direct.image_encoder.conv_stem.weight, expected)
    assert not torch.equal(build_fusion_model(image={"name": "mobilenetv2_100"}).image_encoder.conv_stem.weight,
                           expected)


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_image_encoder(TINY, pretrained_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_image_encoder("no_such_net_v9")
    for hub_name in ("hf-hub:timm/mobilenetv2_100.ra_in1k", "timm/mobilenetv2_100.ra_in1k"):
        with pytest.raises(ValueError, match=r"hub model names.*image_encoder=mobilenetv2_100\.ra_in1k"):
            create_image_encoder(hub_name, pretrained=True)


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
    for bad in ("swoosh", "", None):
        with pytest.raises(ValueError, match="timm activation name"):
            TabularEncoder(3, activation=bad)
    with pytest.raises(ValueError, match="in_dim"):
        TabularEncoder(0)


F = torch.nn.functional


@pytest.mark.parametrize("name, fn", [("relu", F.relu), ("gelu", F.gelu), ("silu", F.silu), ("elu", F.elu),
                                      ("leaky_relu", F.leaky_relu), ("tanh", torch.tanh), ("mish", F.mish)])
def test_tabular_activations_come_from_timm(name, fn):
    enc = TabularEncoder(4, hidden=(6,), norm=None, activation=name)
    acts = [m for m in enc.net if not isinstance(m, (torch.nn.Linear, torch.nn.Dropout))]
    assert len(acts) == 1 and type(acts[0]) is timm.layers.get_act_layer(name)
    x = torch.linspace(-2, 2, 24).reshape(4, 6)
    torch.testing.assert_close(acts[0](x), fn(x))
    assert enc(torch.randn(3, 4)).shape == (3, 6)
