"""Every option of every config group composes (as ``pkg://liver_mm.conf``, what a wheel ships) and what is
instantiable without training is instantiated: the Trainer, the network, the optimizer, the sklearn estimator."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from liver_mm.study.checks import holm_families
from liver_mm.training.fit import trainer_kwargs

CONF = files("liver_mm.conf")
FILLED = {"data=manifest": ["data.manifest=/x/manifest.csv"], "data=folder": ["data.root=/x/images"]}
SEED_FEATURES = {
    "m1": [], "m2": ["age", "sex"], "m3": ["age", "sex", "ast", "alt"], "m4": ["age", "sex", "ast", "alt", "platelets"],
    "m5": ["age", "sex", "ast", "alt", "platelets", "albumin"],
}
# arm -> (modality set, model kind)
STEPWISE_ARMS = {**{m: (m, "lightning") for m in SEED_FEATURES}, "tab_mlp": ("tabular_only", "lightning"),
                 "tab_logreg": ("tabular_only", "sklearn")}
ARMS = {**STEPWISE_ARMS, **{f"m5_{f}": ("m5", "lightning") for f in ("late", "film", "gated")},
        "fib4": ("tabular_only", "score"), "apri": ("tabular_only", "score"), "tab_gbm": ("tabular_only", "sklearn"),
        "m1_ssl": ("m1", "lightning"), "m5_ssl": ("m5", "lightning")}
ESTIMATORS = {"logreg": "LogisticRegression", "gbm": "HistGradientBoostingClassifier"}
# the presets as composed before they inherited from cpu, and what inheriting added (Lightning's own defaults:
# precision 32-true; deterministic false = torch's default, as cpu and gpu already state)
_BASE = {"_target_": "pytorch_lightning.Trainer", "enable_model_summary": False, "channels_last": True,
         "num_threads": None, "compile": False}
TRAINERS = {
    "cpu": {**_BASE, "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_epochs": 20,
            "log_every_n_steps": 5, "deterministic": False},
    "gpu": {**_BASE, "accelerator": "gpu", "devices": 1, "precision": "bf16-mixed", "max_epochs": 30,
            "log_every_n_steps": 10, "deterministic": False, "benchmark": True},
    "ddp": {**_BASE, "accelerator": "gpu", "devices": -1, "strategy": "ddp", "sync_batchnorm": True,
            "precision": "bf16-mixed", "max_epochs": 30, "log_every_n_steps": 10},
    "ddp_cpu": {**_BASE, "accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn", "max_epochs": 20,
                "log_every_n_steps": 5},
}
ADDED_BY_INHERITANCE = {"ddp": {"deterministic": False, "benchmark": True}, "ddp_cpu": {"precision": "32-true", "deterministic": False}}


def options(group: str) -> list[str]:
    """The options of a config group, from the shipped package (a new file is tested without editing this)."""
    return sorted(p.name.removesuffix(".yaml") for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def compose_cfg(name: str, overrides: list[str], hydra: bool = False) -> DictConfig:
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra)


def _check_complete(cfg: DictConfig) -> None:
    """No ``???`` left and every interpolation outside ``hydra`` resolves."""
    body = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # (hydra's own ??? fill in a job)
    assert OmegaConf.missing_keys(body) == set()
    OmegaConf.to_container(body, resolve=True, throw_on_missing=True)


def _build_net(cfg: DictConfig) -> torch.nn.Module:
    """``model.net`` for the modality set: no image branch without the image, F = number of features."""
    n_tab = len(cfg.modalities.features)
    image = {} if cfg.modalities.image else {"image": None}
    return instantiate(cfg.model.net, n_tabular=n_tab, **image, _convert_="all")


def _check_model(cfg: DictConfig) -> None:
    if cfg.model.kind == "sklearn":
        est = instantiate(cfg.model.estimator)
        assert type(est).__name__ in ESTIMATORS.values()
        if type(est).__name__ == "LogisticRegression":
            assert est.get_params()["max_iter"] == 2000
        else:
            assert est.get_params()["random_state"] == cfg.seed
        return
    if cfg.model.kind == "score":
        assert cfg.model.score in ("fib4", "apri") and len(cfg.model.cutoffs) == 2
        return
    net = _build_net(cfg).eval()
    n_tab = len(cfg.modalities.features)
    assert (net.image_encoder is not None) == bool(cfg.modalities.image) and net.n_tabular == n_tab
    image = torch.zeros(2, 1, 32, 32) if cfg.modalities.image else None
    with torch.no_grad():
        assert net(image, torch.zeros(2, n_tab)).shape == (2,)
    opt = instantiate(cfg.model.optimizer)(net.parameters())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == pytest.approx(1e-3)
    if cfg.model.get("scheduler"):
        sched = instantiate(cfg.model.scheduler)(opt, total_steps=10, steps_per_epoch=5)
        assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)


def test_groups_hold_the_documented_options():
    assert options("data") == ["folder", "manifest", "synthetic"]
    assert options("modalities") == ["m1", "m2", "m3", "m4", "m5", "tabular_only"]  # one name per set
    assert options("model") == ["apri", "fib4", "fusion", "fusion_ssl", "gbm", "logreg"]
    assert options("fusion") == ["concat", "film", "gated", "late"]
    assert options("trainer") == ["cpu", "ddp", "ddp_cpu", "gpu"]
    assert options("logger") == ["mlflow"]
    assert options("experiment") == ["demo", "fusion", "paper", "pretrain_ablation"]
    assert options("arm") == sorted(ARMS)
    assert options("hydra/launcher") == ["joblib_local", "slurm", "slurm_local"]


@pytest.mark.parametrize("group", ["data", "modalities", "model", "fusion", "trainer", "logger", "experiment"])
def test_every_train_option_composes(group):
    for option in options(group):
        override = f"{group}={option}"
        extra = ["modalities=m5"] if group in ("model", "fusion") else []
        cfg = compose_cfg("train", [override, *extra, *FILLED.get(override, [])])
        _check_complete(cfg)
        assert cfg.data.kind in ("synthetic", "manifest", "folder")


def test_data_options_without_their_required_value_are_incomplete():
    cfg = compose_cfg("train", ["data=manifest"])
    assert OmegaConf.missing_keys(cfg) == {"data.manifest"}
    assert OmegaConf.missing_keys(compose_cfg("train", ["data=folder"])) == {"data.root"}


@pytest.mark.parametrize("name", sorted(SEED_FEATURES) + ["tabular_only"])
def test_modality_sets_build_their_network(name):
    cfg = compose_cfg("train", [f"modalities={name}"])
    assert cfg.modalities.name == name and isinstance(cfg.modalities.description, str)
    if name == "tabular_only":
        assert not cfg.modalities.image and list(cfg.modalities.features) == SEED_FEATURES["m5"]
        assert cfg.modalities.description == "clinical (m5 features)"
    else:
        assert cfg.modalities.image and list(cfg.modalities.features) == SEED_FEATURES[name]
    _check_model(cfg)


@pytest.mark.parametrize("preset", sorted(TRAINERS))
def test_trainer_presets_equal_the_flat_ones_and_instantiate(preset, tmp_path: Path):
    cfg = compose_cfg("train", [f"trainer={preset}"])
    assert OmegaConf.to_container(cfg.trainer) == {**TRAINERS[preset], **ADDED_BY_INHERITANCE.get(preset, {})}
    kwargs, channels_last = trainer_kwargs(cfg)
    assert channels_last and "num_threads" not in kwargs
    if kwargs["accelerator"] == "gpu":  # a CPU machine builds the same Trainer on the CPU
        kwargs.update(accelerator="cpu", devices=1)
    assert get_class(kwargs["_target_"]).__name__ == "Trainer"
    trainer = instantiate(kwargs, logger=False, default_root_dir=str(tmp_path))
    assert trainer.max_epochs == TRAINERS[preset]["max_epochs"]
    assert trainer.precision == TRAINERS[preset].get("precision", "32-true")


@pytest.mark.parametrize("preset", ["gpu", "ddp", "ddp_cpu"])
def test_trainer_presets_state_only_what_differs(preset):
    raw = yaml.safe_load(CONF.joinpath("trainer", f"{preset}.yaml").read_text())
    parent = raw.pop("defaults")[0]
    inherited = OmegaConf.to_container(compose_cfg("train", [f"trainer={parent}"]).trainer)
    assert raw and all(inherited.get(k, object()) != v for k, v in raw.items()), (preset, raw)


@pytest.mark.parametrize("experiment", ["demo", "paper"])
def test_experiments_compose_into_the_study(experiment):
    cfg = compose_cfg("study", [f"experiment={experiment}"], hydra=True)
    _check_complete(cfg)
    assert cfg.study.name == {"demo": "stepwise-synthetic", "paper": "stepwise-paper"}[experiment]
    assert cfg.image_size == {"demo": 96, "paper": 224}[experiment]
    assert cfg.trainer.accelerator == {"demo": "cpu", "paper": "gpu"}[experiment]


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_every_arm_composes_and_builds(arm):
    cfg = compose_cfg("study", [f"arm={arm}", "experiment=demo"], hydra=True)
    _check_complete(cfg)
    assert cfg.study.arm == arm and (cfg.modalities.name, cfg.model.kind) == ARMS[arm]
    assert "modalities" not in cfg.study and "model" not in cfg.study  # the arm file only chooses
    _check_model(cfg)


def test_arm_files_only_choose_modalities_and_model():
    for arm in ARMS:
        raw = yaml.safe_load(CONF.joinpath("arm", f"{arm}.yaml").read_text())
        assert set(raw) == {"defaults", "study"} and raw["study"] == {"arm": arm}
        overrides = {next(iter(d)) for d in raw["defaults"]}
        fusion = {"override /fusion"} if arm.startswith("m5_") and not arm.endswith("_ssl") else set()
        assert overrides == {"override /modalities", "override /model", *fusion}


def test_fusion_reaches_the_network_and_the_fusion_study_composes():
    cfg = compose_cfg("train", ["fusion=film", "modalities=m5"])
    assert cfg.fusion.name == "film" and cfg.model.net.fusion == "film"
    assert compose_cfg("train", []).model.net.fusion == "concat"
    study = compose_cfg("study", ["experiment=fusion", "arm=m5_gated"], hydra=True)
    _check_complete(study)
    assert study.study.name == "fusion-synthetic" and study.study.reference == "m5"
    assert study.hydra.sweeper.params.arm.split(",") == ["m5", "m5_late", "m5_film", "m5_gated", "fib4", "apri",
                                                         "tab_logreg", "tab_gbm"]
    assert study.fusion.name == "gated" and study.model.net.fusion == "gated"
    # the experiment's list replaces the stepwise study's whole: no family of it left behind, emptied or not
    assert holm_families(study) == {
        "fusion": ["m5", "m5_late", "m5_film", "m5_gated"], "scores": ["m5", "fib4", "apri", "tab_logreg", "tab_gbm"]}


def test_launchers_compose():
    cfg = compose_cfg("study", [], hydra=True)
    assert cfg.hydra.launcher._target_.endswith("BasicLauncher")
    par = compose_cfg("study", ["hydra/launcher=joblib_local"], hydra=True)
    assert get_class(par.hydra.launcher._target_).__name__ == "JoblibLauncher" and par.hydra.launcher.n_jobs == 2
    assert cfg.hydra.callbacks.study._target_ == "liver_mm.study.sweep.StudyCallback"
    get_class(cfg.hydra.callbacks.study._target_)
    slurm = yaml.safe_load(CONF.joinpath("hydra", "launcher", "slurm.yaml").read_text())  # plugin is optional
    assert slurm["defaults"] == ["submitit_slurm"] and "partition" in slurm


def test_the_sweep_runs_study_arms():
    default = compose_cfg("study", [], hydra=True)
    assert default.hydra.sweeper.params.arm.split(",") == list(default.study.arms) == list(STEPWISE_ARMS)
    assert compose_cfg("study", ["study.arms=[m1,m5]"], hydra=True).hydra.sweeper.params.arm == "m1,m5"
    with pytest.raises(Exception, match="non-empty list of arm names"):
        _ = compose_cfg("study", ["study.arms=[]"], hydra=True).hydra.sweeper.params.arm


def test_a_study_run_trains_exactly_study_arms(tmp_path: Path, monkeypatch):
    """A real multirun (Hydra's BasicSweeper; the joblib launcher receives the same job list) with a task that
    only records what each job got; the study callback (cohort, MLflow, report) is taken out."""
    from liver_mm.cli.hydra_cmds import run_hydra_app

    seen: list[tuple[str, str, str]] = []
    monkeypatch.chdir(tmp_path)
    run_hydra_app("study", lambda cfg: seen.append((cfg.study.arm, cfg.modalities.name, cfg.model.kind)),
                  ["study.arms=[m5,tab_logreg]", "~hydra.callbacks.study", f"hydra.sweep.dir={tmp_path / 'multirun'}"])
    assert seen == [("m5", "m5", "lightning"), ("tab_logreg", "tabular_only", "sklearn")]
