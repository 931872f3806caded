"""The study's data dictionary as ``liver-mm evaluate`` reads it back from the arms' saved preprocessing states."""

from __future__ import annotations

import pandas as pd
import pytest

from liver_mm.dictionary import active, default_dictionary
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.io.schema import read_manifest
from liver_mm.study.external.dictionary import learned_missing, logged_dictionary, reading_with
from liver_mm.study.external.source import StudySourceError
from liver_mm.synth.lesions import lesions_dictionary

FEATURES = ["age", "shape", "birads"]


def _state(features=FEATURES) -> dict:
    d = lesions_dictionary()
    train = pd.DataFrame({"age": [40.0, 55.0, float("nan"), 61.0], "shape": ["oval", "irregular", "oval", "oval"],
                          "birads": ["3", "4a", "4c", "2"]})
    return TabularPreprocessor(features, d).fit(train[features]).to_dict()


def test_the_logged_dictionary_is_the_one_the_models_saved_not_the_installed_default() -> None:
    d = logged_dictionary({"tab_logreg": _state()}, {}, "lesions", "lesions.yaml")
    assert list(d.variables) == FEATURES
    assert d.missing == ("not available",)
    assert d["shape"].categories == ("oval", "round", "irregular")
    assert d["birads"].aliases == ("BI-RADS",)
    assert d["age"] == lesions_dictionary()["age"]
    assert "lesions.yaml" in d.source and "study lesions" in d.source


def test_a_table_is_read_with_it_inside_the_block_and_the_default_comes_back(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("case_id,age,shape,BI-RADS\nA,not available,Oval,4a\nB,50,irregular,2\n")
    d = logged_dictionary({"tab_logreg": _state()}, {}, "lesions", "lesions.yaml")
    with reading_with(d):
        df = read_manifest(path)
        assert active() is d
    assert df["age"].isna().tolist() == [True, False] and "birads" in df.columns
    assert active() is default_dictionary()


def test_arms_disagreeing_or_a_study_without_a_trained_arm_are_named() -> None:
    other = _state()
    other["missing_tokens"] = ["NA"]
    with pytest.raises(StudySourceError, match=r"study s: arms a and b saved different missing tokens"):
        logged_dictionary({"a": _state(), "b": other}, {}, "s", "x.yaml")
    with pytest.raises(StudySourceError, match=r"study s ran with dictionary=x.yaml but none of its arms \(fib4\)"):
        logged_dictionary({}, {"fib4": ["ast", "alt", "platelets"]}, "s", "x.yaml")


def test_score_inputs_take_the_formula_entries_and_a_pre_dictionary_state_the_shipped_ones() -> None:
    old = {"features": ["age", "ast"], "stats": {}}  # a state saved before the data dictionary
    d = logged_dictionary({"m5": old}, {"fib4": ["age", "ast", "alt", "platelets"]}, "liver", None)
    shipped = default_dictionary()
    assert list(d.variables) == ["age", "ast", "alt", "platelets"]
    assert d["alt"] == shipped["alt"] and d.missing == shipped.missing


def test_only_inputs_every_reading_model_had_missing_in_training_may_be_empty() -> None:
    complete = _state(["age", "shape"])
    complete["stats"]["age"]["indicator"] = False
    assert _state()["stats"]["age"]["indicator"] is True  # one training age was missing
    assert learned_missing({"a": _state()}, {}) == {"age"}
    assert learned_missing({"a": _state(), "b": complete}, {}) == set()
    assert learned_missing({"a": _state()}, {"fib4": ["age"]}) == set()
