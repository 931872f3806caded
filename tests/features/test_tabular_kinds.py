"""Encodings by the data dictionary's kinds: one-hot with a reference level, ordinal codes, multi-hot,
missing tokens and indicators, train-fitted mode imputation, unknown categories, and the saved state
carrying its variables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liver_mm.dictionary import load_dictionary
from liver_mm.explain.importance import feature_groups
from liver_mm.features.tabular import TabularPreprocessor

DICTIONARY = """\
missing: ["not available"]
variables:
  age: {kind: continuous, unit: years, plausible: [0, 120]}
  shape: {kind: categorical, categories: [oval, round, irregular]}
  margin: {kind: multi, separator: "&", categories: [circumscribed, indistinct, angular]}
  birads: {kind: ordinal, categories: ["2", "3", 4a, 4b, 4c, "5"]}
steps:
  - {name: image, add: []}
  - {name: all, add: [age, shape, margin, birads]}
"""
FEATURES = ["age", "shape", "margin", "birads"]


@pytest.fixture()
def dictionary(tmp_path: Path):
    p = tmp_path / "d.yaml"
    p.write_text(DICTIONARY, encoding="utf-8")
    return load_dictionary(p)


@pytest.fixture()
def train() -> pd.DataFrame:
    return pd.DataFrame({
        "case_id": [f"t{i}" for i in range(6)],
        "age": ["50", "not available", "70", "40", "60", "80"],
        "shape": ["oval", " Round ", "irregular", "irregular", None, "irregular"],
        "margin": ["circumscribed", "indistinct&angular", "angular", "ANGULAR & indistinct", "not available",
                   "angular"],
        "birads": ["2", "4a", "5", "4c", "3", 5],  # a number cell reads as its text
    })


def test_each_kind_encoded_with_named_columns(dictionary, train):
    pre = TabularPreprocessor(FEATURES, dictionary)
    train = train.assign(birads=["2", "4a", "5", "4c", "3", "4b"])
    x = pre.fit_transform(train)
    assert pre.feature_names_out == [
        "age", "shape=round", "shape=irregular",  # oval is the reference level
        "margin=circumscribed", "margin=indistinct", "margin=angular", "birads",
        "age_missing", "shape_missing", "margin_missing"]
    np.testing.assert_array_equal(x[:, 1:3], [[0, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]])  # row 4: the mode
    np.testing.assert_array_equal(x[:, 3:6], [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1], [0, 0, 1]])
    # (row 4: each value's majority in train: angular 4 of 5, indistinct 2 of 5)
    codes = np.array([0, 2, 5, 4, 1, 3.0])
    np.testing.assert_allclose(x[:, 6], (codes - codes.mean()) / codes.std(), rtol=1e-6)
    ages = np.array([50, 60, 70, 40, 60, 80.0])  # "not available" imputed with the train median 60
    np.testing.assert_allclose(x[:, 0], (ages - ages.mean()) / ages.std(), rtol=1e-6)
    np.testing.assert_array_equal(x[:, 7:], [[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert pre.groups() == {"age": [0, 7], "shape": [1, 2, 8], "margin": [3, 4, 5, 9], "birads": [6]}
    assert feature_groups(pre.feature_names_out) == pre.groups()


def test_mode_is_fitted_on_train_rows_only(dictionary, train):
    train = train.assign(birads="3")
    pre = TabularPreprocessor(["shape"], dictionary).fit(train.iloc[:4])  # oval 1, round 1, irregular 2
    test = pd.DataFrame({"shape": [None, "oval"]})
    np.testing.assert_array_equal(pre.transform(test), [[0, 1], [0, 0]])
    pre2 = TabularPreprocessor(["shape"], dictionary).fit(train.iloc[[0, 0, 2]])  # oval twice
    np.testing.assert_array_equal(pre2.transform(test), [[0, 0], [0, 0]])


@pytest.mark.parametrize(("column", "value", "message"), [
    ("shape", "irregullar", r"column 'shape', row 2 \(case_id=t2\): 'irregullar' is not a declared category "
     r"of shape \(oval, round, irregular\) \(did you mean 'irregular'\?\)"),
    ("margin", "angular&spiculated", r"'spiculated' is not a declared category of margin"),
    ("birads", "6", r"'6' is not a declared category of birads \(2, 3, 4a, 4b, 4c, 5\)"),
])
def test_unknown_category_is_an_error_naming_row_value_and_categories(dictionary, train, column, value, message):
    bad = train.copy()
    bad.loc[2, column] = value
    with pytest.raises(ValueError, match=message):
        TabularPreprocessor([column], dictionary).fit(bad)


def test_saved_state_carries_its_variables(dictionary, train):
    """A model of a user's dictionary is rebuilt from its JSON state alone (no dictionary at hand)."""
    pre = TabularPreprocessor(FEATURES, dictionary).fit(train)
    state = json.loads(json.dumps(pre.to_dict()))
    assert state["variables"]["shape"]["categories"] == ["oval", "round", "irregular"]
    back = TabularPreprocessor.from_dict(state)
    assert back.feature_names_out == pre.feature_names_out
    np.testing.assert_array_equal(back.transform(train), pre.transform(train))


def test_categories_never_seen_in_training_are_named(dictionary, train):
    """A declared category absent from the training rows: the model learned nothing of it; ``unseen`` names
    it (what ``evaluate`` refuses an external cohort for), also after a JSON round trip."""
    pre = TabularPreprocessor(FEATURES, dictionary).fit(train.iloc[[0, 2, 3]])  # oval, irregular; no round
    back = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    external = train.assign(birads=["2", "4b", "5", "4c", "3", "4b"])
    expected = {"shape": ["round"], "birads": ["3", "4b"]}  # margin: all three values seen
    assert pre.unseen(external) == expected
    assert back.unseen(external) == expected
    assert pre.unseen(train.iloc[[0, 2, 3]]) == {}
