"""The Hydra configuration: the documented overrides compose, modality sets are the seed's, presets exist."""

from __future__ import annotations

from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module

CONF = files("liver_mm.conf")  # conf/ of the checkout, shipped as the package liver_mm.conf

SEED_FEATURES = {
    "m1": [],
    "m2": ["age", "sex"],
    "m3": ["age", "sex", "ast", "alt"],
    "m4": ["age", "sex", "ast", "alt", "platelets"],
    "m5": ["age", "sex", "ast", "alt", "platelets", "albumin"],
}


def _compose(name: str, overrides: list[str], hydra: bool = False):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra)


def test_issue_overrides_compose():
    cfg = _compose("train", ["data=synthetic", "data.n=300", "data.seed=0", "modalities=m3", "trainer=cpu",
                             "trainer.max_epochs=2", "image_size=64"])
    assert (cfg.data.n, cfg.modalities.name, cfg.trainer.max_epochs, cfg.image_size) == (300, "m3", 2, 64)
    cfg = _compose("train", ["data=manifest", "data.manifest=/x/manifest.csv", "modalities=m1"])
    assert cfg.data.kind == "manifest" and cfg.modalities.features == []


@pytest.mark.parametrize("name", sorted(SEED_FEATURES))
def test_modality_sets_are_the_seeds(name):
    mod = _compose("train", [f"modalities={name}"]).modalities
    assert mod.name == name and list(mod.features) == SEED_FEATURES[name] and mod.image
    tab = _compose("train", ["modalities=tabular_only"]).modalities
    assert not tab.image and list(tab.features) == SEED_FEATURES["m5"]


def test_modality_sets_have_one_name_and_a_description():
    names = sorted(p.name for p in CONF.joinpath("modalities").iterdir() if p.name.endswith(".yaml"))
    assert names == [f"{n}.yaml" for n in [*sorted(SEED_FEATURES), "tabular_only"]]
    assert _compose("train", ["modalities=m3"]).modalities.description == "image + age, sex, AST, ALT"
    assert _compose("train", []).modalities.name == "m1"  # conf/train.yaml's default


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
    slurm = CONF.joinpath("hydra", "launcher", "slurm.yaml").read_text()
    assert "submitit_slurm" in slurm and "partition" in slurm
