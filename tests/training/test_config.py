"""The Hydra configuration: the documented overrides compose, modality sets are the seed's, presets exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[2] / "conf"

SEED_FEATURES = {
    "m1": [],
    "m2": ["age", "sex"],
    "m3": ["age", "sex", "ast", "alt"],
    "m4": ["age", "sex", "ast", "alt", "platelets"],
    "m5": ["age", "sex", "ast", "alt", "platelets", "albumin"],
}


def _compose(name: str, overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra)


def test_issue_overrides_compose():
    cfg = _compose("train", ["data=synthetic", "data.n=300", "data.seed=0", "modalities=m3", "trainer=cpu",
                             "trainer.max_epochs=2", "image_size=64"])
    assert (cfg.data.n, cfg.modalities.name, cfg.trainer.max_epochs, cfg.image_size) == (300, "m3", 2, 64)
    cfg = _compose("train", ["data=manifest", "data.manifest=/x/manifest.csv", "modalities=m1"])
    assert cfg.data.kind == "manifest" and cfg.modalities.features == []


@pytest.mark.parametrize("short,long", [("m1", "m1_image"), ("m2", "m2_background"), ("m3", "m3_inflammation"),
                                        ("m4", "m4_fibrosis"), ("m5", "m5_albumin")])
def test_modality_sets_are_the_seeds(short, long):
    a, b = _compose("train", [f"modalities={short}"]), _compose("train", [f"modalities={long}"])
    assert a.modalities == b.modalities
    assert list(a.modalities.features) == SEED_FEATURES[short] and a.modalities.image
    tab = _compose("train", ["modalities=tabular_only"]).modalities
    assert not tab.image and list(tab.features) == SEED_FEATURES["m5"]


def test_trainer_presets():
    gpu = _compose("train", ["trainer=gpu"]).trainer
    assert gpu.precision == "bf16-mixed" and gpu.channels_last
    ddp = _compose("train", ["trainer=ddp"]).trainer
    assert ddp.strategy == "ddp" and ddp.devices == -1
    ddp_cpu = _compose("train", ["trainer=ddp_cpu"]).trainer
    assert ddp_cpu.devices == 2 and ddp_cpu.accelerator == "cpu"


def test_study_arms_and_launchers():
    cfg = _compose("study", ["experiment=demo", "arm=tab_logreg"], hydra=True)
    assert cfg.study.name == "stepwise-synthetic" and cfg.model.kind == "sklearn"
    assert cfg.modalities.name == "tabular_only"
    assert cfg.hydra.sweeper.params.arm.split(",") == list(cfg.study.arms)
    assert "BasicLauncher" in cfg.hydra.launcher._target_
    par = _compose("study", ["hydra/launcher=joblib_local"], hydra=True)
    assert "JoblibLauncher" in par.hydra.launcher._target_ and par.hydra.launcher.n_jobs == 2
    slurm = (CONF / "hydra" / "launcher" / "slurm.yaml").read_text()
    assert "submitit_slurm" in slurm and "partition" in slurm
