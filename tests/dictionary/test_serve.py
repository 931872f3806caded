"""A served model of a user's dictionary: its signature and metadata list each field's kind and unit or
categories, a request with an unknown category is refused (HTTP 400) naming the field and the allowed ones, and
the request's categories are read as the model was trained (case, spaces, multi values)."""

from __future__ import annotations

import pandas as pd
import pytest

from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.serve.pyfunc import model_metadata, request_signature
from liver_mm.serve.requests import RequestError, parse_request
from tests.features.test_tabular_kinds import FEATURES, dictionary, train  # noqa: F401 (fixtures)


@pytest.fixture()
def variables(dictionary, train):  # noqa: F811
    return TabularPreprocessor.from_dict(TabularPreprocessor(FEATURES, dictionary).fit(train).to_dict()).variables


def test_metadata_and_signature_list_kinds_units_categories(variables) -> None:
    meta = model_metadata(FEATURES, variables)["variables"]
    assert meta["shape"] == {"kind": "categorical", "description": "", "categories": ["oval", "round", "irregular"]}
    assert meta["margin"]["separator"] == "&" and meta["age"]["unit"] == "years"
    assert meta["birads"]["categories"] == ["2", "3", "4a", "4b", "4c", "5"]
    types = {c.name: str(c.type) for c in request_signature(FEATURES, False, variables).inputs.inputs}
    assert types["shape"] == types["birads"] == "DataType.string" and types["age"] == "Any"


def test_unknown_category_is_refused_naming_field_and_categories(variables) -> None:
    req = pd.DataFrame([{"case_id": "a", "age": 50, "shape": "irregullar", "margin": "angular", "birads": "3"},
                        {"case_id": "b", "age": 60, "shape": "oval", "margin": "angular&spiculated", "birads": 4}])
    with pytest.raises(RequestError) as err:
        parse_request(req, FEATURES, False, variables=variables)
    problems = [(p.case_id, p.field, p.message) for p in err.value.problems]
    assert problems == [
        ("a", "shape", "'irregullar' is not one of oval, round, irregular (did you mean 'irregular'?) "
         "(the categories of shape this model knows)"),
        ("b", "margin", "'spiculated' is not one of circumscribed, indistinct, angular (the categories of "
         "margin this model knows)"),
        ("b", "birads", "'4' is not one of 2, 3, 4a, 4b, 4c, 5 (the categories of birads this model knows)"),
    ]


def test_request_categories_read_as_trained(variables) -> None:
    req = pd.DataFrame([{"case_id": "a", "age": 50, "shape": " Irregular ", "margin": "ANGULAR & indistinct",
                         "birads": 5}])
    labs = parse_request(req, FEATURES, False, variables=variables).labs
    assert labs.loc[0, "shape"] == "irregular" and labs.loc[0, "birads"] == "5"
