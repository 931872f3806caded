"""What each arm searches (its parts of ``tune.space``), the settings refused before any work, the chosen
settings applied exactly as Hydra composes them, and the study's keys: tuning off keeps them, tuning on changes
each arm's key (only by its own search), never the study's."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from liver_mm.study.parent import arm_key, study_key
from liver_mm.training.tune_space import apply_overrides, search_space, space_parts, tune_problems, tuning_on

COHORT = SimpleNamespace(manifest_hash="m" * 12, split_hash="s" * 12, content_hash="c" * 12)


def _study(overrides: list[str], hydra: bool = True):
    return _composed(tuple(overrides), hydra).copy()


@functools.cache
def _composed(overrides: tuple[str, ...], hydra: bool):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=list(overrides), return_hydra_config=hydra)


def _without_tune(cfg):
    cfg = cfg.copy()
    with open_dict(cfg):
        del cfg["tune"]
    return cfg


@pytest.mark.parametrize(("arm", "parts"), [
    ("m1", ["network", "image"]), ("m5", ["network", "image", "mlp"]), ("tab_mlp", ["network", "mlp"]),
    ("tab_logreg", ["LogisticRegression"]), ("tab_gbm", ["HistGradientBoostingClassifier"]), ("fib4", []),
])
def test_each_arm_searches_its_own_parts(arm, parts):
    cfg = _study([f"arm={arm}", "tune.trials=4"], hydra=False)
    assert space_parts(cfg) == parts
    space = search_space(cfg)
    assert list(space) == [k for p in parts for k in cfg.tune.space[p]]
    assert tuning_on(cfg) is bool(parts)  # a clinical score trains as without tuning
    assert tune_problems(cfg) == []


def test_the_default_space_is_the_recipe_and_the_mlp():
    space = search_space(_study(["arm=m5", "tune.trials=4"], hydra=False))
    assert space == {"model.optimizer.lr": "tag(log, interval(1e-4, 3e-3))",
                     "model.optimizer.weight_decay": "tag(log, interval(1e-5, 1e-1))",
                     "trainer.max_epochs": "int(interval(10, 40))", "model.ema.enabled": "choice(false, true)",
                     "model.net.tta_hflip": "choice(false, true)",
                     "model.net.tabular.hidden": "choice([32,16], [64,32], [128,64])",
                     "model.net.tabular.dropout": "interval(0.0, 0.5)"}


def test_an_entry_set_to_null_is_not_searched_and_a_part_can_be_changed_from_the_command_line():
    cfg = _study(["arm=m1", "tune.trials=4", "tune.space.network={model.ema.enabled: null, "
                  "trainer.max_epochs: 'choice(1, 2)'}"], hydra=False)
    space = search_space(cfg)
    assert "model.ema.enabled" not in space and space["trainer.max_epochs"] == "choice(1, 2)"
    assert space["model.optimizer.lr"] == "tag(log, interval(1e-4, 3e-3))"  # the rest of the part is kept


@pytest.mark.parametrize(("overrides", "message"), [
    (["tune.trials=-1"], "tune.trials=-1: a whole number of trials >= 0"),
    (["tune.trials=2.5"], "tune.trials=2.5: a whole number of trials >= 0"),
    (["tune.trials=true"], "tune.trials=True: a whole number of trials >= 0"),
    (["tune.trials=2", "tune.sampler=grid"], "tune.sampler=grid: one of tpe, random"),
    (["tune.trials=2", "++tune.space.network={model.optimizer.betas: 'interval(0.8, 0.99)'}"],
     "tune.space.network.model.optimizer.betas: this run has no setting model.optimizer.betas (write "
     "++model.optimizer.betas to add one)"),
    (["tune.trials=2", "++tune.space.network={data.n: 'choice(60, 120)'}"], "tune.space.network.data.n: data.n is a cohort setting"),
    (["tune.trials=2", "++tune.space.network={seed: 'choice(0, 1)'}"], "tune.space.network.seed: seed is a cohort setting"),
    (["tune.trials=2", "tune.space.network={model.optimizer.lr: '0.01'}"],
     "tune.space.network.model.optimizer.lr=0.01: a single value searches nothing"),
    (["tune.trials=2", "tune.space.network={model.optimizer.lr: 'interval(0.1'}"],
     "tune.space.network.model.optimizer.lr=interval(0.1: not hydra-optuna-sweeper syntax"),
    (["tune.trials=2", "trainer=ddp_cpu"], "tune.trials=2 with trainer.strategy=ddp_spawn: trials train in the"),
])
def test_wrong_tuning_settings_are_refused_naming_the_option(overrides, message):
    problems = tune_problems(_study(["arm=m1", *overrides], hydra=False))
    assert any(p.startswith(message) for p in problems), problems


def test_tuning_off_checks_no_space():
    cfg = _study(["arm=m1", "tune.space.network={model.optimizer.lr: '0.01'}"], hydra=False)
    assert tune_problems(cfg) == [] and not tuning_on(cfg)


def test_chosen_settings_are_applied_as_hydra_composes_them():
    chosen = ["model.optimizer.lr=0.0006466422717414558", "trainer.max_epochs=17", "model.ema.enabled=True",
              "model.net.tabular.hidden=[32,16]", "model.net.tabular.dropout=0.26444745987645224",
              "++model.estimator.learning_rate=0.05"]
    base = _study(["arm=m5"], hydra=False)
    with open_dict(base):
        base.model.estimator = {}
    applied = OmegaConf.to_container(apply_overrides(base, chosen), resolve=True)
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        composed = compose("study", overrides=["arm=m5", "+model.estimator={}", *chosen])
    assert applied == OmegaConf.to_container(composed, resolve=True)
    assert applied["model"]["net"]["tabular"]["hidden"] == [32, 16] and applied["model"]["ema"]["enabled"] is True
    assert base.model.optimizer.lr == 1e-3  # the job's own config is left as it was


@pytest.mark.parametrize("arm", ["m1", "m5", "tab_logreg", "fib4"])
def test_tuning_off_keeps_the_arm_key_and_the_study_key(arm):
    cfg = _study([f"arm={arm}"])
    assert cfg.tune.trials == 0
    assert arm_key(cfg) == arm_key(_without_tune(cfg))  # as before the tune node existed
    assert study_key(cfg, COHORT) == study_key(_without_tune(cfg), COHORT)


def test_tuning_on_enters_the_keys_by_each_arms_own_search():
    for arm in ("m1", "tab_logreg"):
        off, on = _study([f"arm={arm}"]), _study([f"arm={arm}", "tune.trials=4"])
        # the same study (cohort, split, folds), each arm trained anew
        assert arm_key(on) != arm_key(off) and study_key(on, COHORT) == study_key(off, COHORT)
        assert arm_key(_study([f"arm={arm}", "tune.trials=8"])) != arm_key(on)
        assert arm_key(_study([f"arm={arm}", "tune.trials=4", "tune.seed=1"])) != arm_key(on)
    other = "tune.space.LogisticRegression={model.estimator.C: 'tag(log, interval(1e-2, 1e1))'}"
    assert arm_key(_study(["arm=m1", "tune.trials=4", other])) == arm_key(_study(["arm=m1", "tune.trials=4"]))
    assert arm_key(_study(["arm=tab_logreg", "tune.trials=4", other])) != arm_key(
        _study(["arm=tab_logreg", "tune.trials=4"]))
    # a clinical score searches nothing: its arm key stays the untuned one
    assert arm_key(_study(["arm=fib4", "tune.trials=4"])) == arm_key(_study(["arm=fib4"]))
