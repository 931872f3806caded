"""The pretrain node and experiment=pretrain_ablation: who pretrains, and what enters the study key."""

from __future__ import annotations

from types import SimpleNamespace

from hydra import compose, initialize_config_module

from liver_mm.pretrain.study import image_init, pretraining_on
from liver_mm.study.parent import arm_key, study_key

COHORT = SimpleNamespace(manifest_hash="m" * 16, split_hash="s" * 16, content_hash="c" * 16)


def _study(overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=overrides, return_hydra_config=True)


def _train(overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def test_off_by_default_and_on_for_image_arms_only():
    assert _train([]).pretrain.enabled is False and not pretraining_on(_train([]))
    assert image_init(_train([])) == "random (from scratch)"
    assert pretraining_on(_train(["pretrain.enabled=true"]))
    assert not pretraining_on(_train(["pretrain.enabled=true", "modalities=tabular_only"]))
    assert image_init(_train(["modalities=tabular_only", "model=logreg"])) is None
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        assert compose("pretrain").pretrain.method == "simclr"


def test_the_ablation_runs_scratch_and_pretrained_arms_on_the_same_folds():
    arms = {arm: _study(["experiment=pretrain_ablation", f"arm={arm}"]) for arm in ("m1", "m1_ssl", "m5", "m5_ssl")}
    assert list(arms["m1"].study.arms) == ["m1", "m1_ssl", "m5", "m5_ssl"] and arms["m1"].cv.folds == 5
    assert [pretraining_on(c) for c in arms.values()] == [False, True, False, True]
    assert arms["m1_ssl"].modalities.name == "m1" and arms["m5_ssl"].modalities.name == "m5"
    # one study: every arm's job finds the same study key (the pretrained arms differ in their model only)
    assert len({study_key(c, COHORT) for c in arms.values()}) == 1
    assert arm_key(arms["m1"]) != arm_key(arms["m1_ssl"])


def test_the_pretraining_settings_enter_the_keys():
    base = _study(["pretrain.enabled=true"])
    for change in ("pretrain.method=byol", "pretrain.epochs=3", "pretrain.augment.speckle=0.0", "pretrain.pool=frames"):
        other = _study(["pretrain.enabled=true", change])
        # an arm's initialisation is an arm setting: the arm retrains under the same study (parent), whose key
        # holds the cohort, split and folds alone (conf/partition.py)
        assert study_key(other, COHORT) == study_key(base, COHORT), change
        assert arm_key(other) != arm_key(base), change
    assert arm_key(_study([])) != arm_key(base)
