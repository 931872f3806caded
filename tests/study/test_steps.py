"""The study's arms follow a data dictionary's steps (``liver-mm study dictionary=PATH``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import liver_mm.conf  # noqa: F401 - the configs' resolvers
from liver_mm.dictionary import default_path
from liver_mm.study.steps import skipped_scores, study_overrides
from liver_mm.synth.lesions import lesions_dictionary

SNAPSHOT = Path(__file__).with_name("data") / "demo_arm_configs.json"
KEEP = ("modalities", "model", "fusion", "study")


def _arms(overrides: list[str], arms: list[str]) -> dict[str, dict]:
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return {arm: {k: OmegaConf.to_container(c[k], resolve=True) for k in KEEP}
                for arm in arms for c in [compose("study", overrides=[*overrides, f"arm={arm}"])]}


@pytest.mark.parametrize("dictionary", [[], [f"dictionary={default_path()}"]], ids=["default", "liver-file"])
def test_demo_arm_configs_unchanged(dictionary: list[str]) -> None:
    """experiment=demo composes every arm (modalities, model, fusion, study node) exactly as before the steps
    (the snapshot was written from the configs before this change), also with the shipped dictionary named."""
    overrides = ["experiment=demo", *dictionary]
    overrides += study_overrides(overrides)
    before = json.loads(SNAPSHOT.read_text())
    after = _arms(overrides, list(before))
    if dictionary:  # the study node records the option itself; everything else is as before
        for node in after.values():
            assert node["study"]["out_dir"] == before["m1"]["study"]["out_dir"]
    assert after == before


def test_lesion_steps_are_the_arms() -> None:
    path = lesions_dictionary().source
    extra = study_overrides([f"dictionary={path}"])
    assert extra[0] == "study.arms=[image,age,descriptors,null_descriptors,tab_mlp,tab_logreg]"
    arms = _arms([f"dictionary={path}", *extra], ["image", "age", "descriptors", "null_descriptors", "tab_mlp",
                                                   "tab_gbm"])
    feats = {a: (n["modalities"]["image"], n["modalities"]["features"]) for a, n in arms.items()}
    assert feats == {"image": (True, []), "age": (True, ["age"]),
                     "descriptors": (True, ["age", "shape", "margin", "birads"]),
                     "null_descriptors": (True, ["age", "shape", "margin", "birads", "echogenicity", "halo"]),
                     "tab_mlp": (False, ["age", "shape", "margin", "birads", "echogenicity", "halo"]),
                     "tab_gbm": (False, ["age", "shape", "margin", "birads", "echogenicity", "halo"])}
    study = arms["age"]["study"]
    assert (study["arm"], study["reference"]) == ("age", "image")
    assert study["arms"] == ["image", "age", "descriptors", "null_descriptors", "tab_mlp", "tab_logreg"]
    assert study["holm_families"] == [
        {"name": "steps", "arms": ["image", "age", "descriptors", "null_descriptors"]},
        {"name": "controls", "arms": ["image", "age", "descriptors", "null_descriptors", "tab_mlp", "tab_logreg"]}]


def test_score_arms_need_their_inputs(caplog: pytest.LogCaptureFixture) -> None:
    """FIB-4/APRI are dropped (with a warning naming the missing inputs) where the dictionary lacks them."""
    path = lesions_dictionary().source
    with caplog.at_level(logging.WARNING):
        extra = study_overrides([f"dictionary={path}", "study.arms=[image,age,fib4,apri,tab_gbm]"])
    assert extra[0] == "study.arms=[image,age,tab_gbm]"
    assert "arm fib4 skipped" in caplog.text and "ast, alt, platelets" in caplog.text


def test_step_named_like_a_builtin_arm_must_match(tmp_path: Path) -> None:
    text = Path(lesions_dictionary().source).read_text().replace("{name: age, add: [age]}", "{name: m2, add: [age]}")
    p = tmp_path / "d.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=r"step 'm2' is the name of a built-in arm .*\['age', 'sex'\].*\['age'\]"):
        study_overrides([f"dictionary={p}"])


def test_the_report_names_the_score_arms_the_dictionary_cannot_run() -> None:
    """What the study's report says about FIB-4/APRI (study/finish.py puts it in the provenance): the lesion
    dictionary declares age only; the shipped one every input."""
    path = lesions_dictionary().source
    assert skipped_scores(path) == {
        "fib4": f"inputs ast, alt, platelets not declared by the data dictionary {path}",
        "apri": f"inputs ast, platelets not declared by the data dictionary {path}"}
    assert skipped_scores(None) == {} and skipped_scores(default_path()) == {}
