"""The Hydra configuration: the documented overrides compose, modality sets are the seed's, presets exist."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module

from liver_mm.study.checks import check_study_config
from liver_mm.study.cv.run import uses_cv
from liver_mm.training.checks import check_settings, idle_settings
from liver_mm.training.devices import sweep_size

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


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liver_mm.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"})


def test_cv_is_a_study_setting_a_lone_train_refuses(tmp_path: Path):
    """``cv`` lives in conf/study.yaml: ``liver-mm train cv.folds=5`` (which trained one split silently) is refused
    by Hydra naming the key, and ``+cv.folds=5`` by the training checks before anything is read."""
    res = _cli(["train", "cv.folds=5"], tmp_path)
    assert res.returncode != 0 and "Could not override 'cv.folds'" in res.stderr, res.stderr
    assert "cv" not in _compose("train", []) and _compose("study", []).cv.folds is None
    cfg = _compose("train", ["+cv.folds=5"])
    with pytest.raises(ValueError, match=r"cv.folds=5: cross-validation is a study setting \(liver-mm study "):
        check_settings(cfg)
    # the readers of cv cope with a lone run's config without it
    assert uses_cv(_compose("train", [])) is False and sweep_size(_compose("train", [])) is None


def test_patience_without_early_stopping_is_refused(tmp_path: Path):
    """``early_stopping.patience`` given while early stopping is off does nothing: refused naming both options, by
    ``liver-mm train`` (a real run) and by a study before any arm trains; with early stopping on it is fine."""
    res = _cli(["train", "early_stopping.patience=3", "trainer.max_epochs=1"], tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "early_stopping.patience=3: does nothing while early_stopping.enabled=false" in out
    with pytest.raises(ValueError, match="early_stopping.patience=3: does nothing while early_stopping.enabled"):
        check_study_config(_compose("study", ["early_stopping.patience=3"], hydra=True))
    assert idle_settings(_compose("train", ["early_stopping.enabled=true", "early_stopping.patience=3"], True)) == []
    assert idle_settings(_compose("train", [], hydra=True)) == []  # the default patience in conf/train.yaml is fine


@pytest.mark.parametrize("preset", ["demo", "fusion", "paper"])
def test_presets_set_no_patience_while_early_stopping_is_off(preset):
    raw = yaml.safe_load(CONF.joinpath("experiment", f"{preset}.yaml").read_text())
    assert "patience" not in (raw.get("early_stopping") or {}) or raw["early_stopping"].get("enabled")
