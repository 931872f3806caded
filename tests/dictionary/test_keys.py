"""The dictionary's content hash enters the study key and the arm key: a changed dictionary is another study;
the shipped one (named or not) keeps the keys of studies made before the dictionary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra import compose, initialize_config_module

from liver_mm.dictionary import default_path, dictionary_hash
from liver_mm.study.parent import arm_key, study_key
from tests.features.test_tabular_kinds import DICTIONARY

COHORT = SimpleNamespace(manifest_hash="m" * 12, split_hash="s" * 12, content_hash="c" * 16)
# the keys of the default study with no dictionary option (as the study key's code gives them): the shipped
# dictionary adds nothing to them
STUDY_KEY_BEFORE = "ef6b918b8068deac"
ARM_KEY_BEFORE = "867456361c820cba"


def _compose(overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=[*overrides, "arm=m2"])


def test_dictionary_option_changes_both_keys(tmp_path: Path) -> None:
    base = _compose([])
    assert base.dictionary is None
    mine = tmp_path / "mine.yaml"
    mine.write_text(DICTIONARY, encoding="utf-8")
    other = _compose([f"dictionary={mine}"])
    assert dictionary_hash(other) != dictionary_hash(base)
    assert study_key(other, COHORT) != study_key(base, COHORT)
    assert arm_key(other) != arm_key(base)
    # the same content under another name is the same study
    copy = tmp_path / "copy.yaml"
    copy.write_text("# a copy\n" + DICTIONARY, encoding="utf-8")
    assert study_key(_compose([f"dictionary={copy}"]), COHORT) == study_key(other, COHORT)
    assert arm_key(_compose([f"dictionary={copy}"])) == arm_key(other)


def test_shipped_dictionary_keeps_the_keys() -> None:
    base = _compose([])
    named = _compose([f"dictionary={default_path()}"])
    assert (study_key(named, COHORT), arm_key(named)) == (study_key(base, COHORT), arm_key(base))
    assert (study_key(base, COHORT), arm_key(base)) == (STUDY_KEY_BEFORE, ARM_KEY_BEFORE)
