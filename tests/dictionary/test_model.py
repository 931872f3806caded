"""The data dictionary: loading, the checks of each key (file and key named), steps, the content hash."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from liver_mm import catalog
from liver_mm.dictionary import DictionaryError, default_dictionary, load_dictionary

LESIONS = """\
missing: ["not available", "not applicable"]
variables:
  age: {kind: continuous, unit: years, plausible: [0, 120], typical: [18, 95], conversions: {months: 0.0833}}
  shape: {kind: categorical, categories: [oval, round, irregular]}
  margin: {kind: multi, separator: "&", categories: [circumscribed, "not circumscribed - indistinct", angular]}
  birads: {kind: ordinal, categories: ["2", "3", 4a, 4b, 4c, 5]}
  halo: {kind: binary, categories: [no, yes]}
steps:
  - {name: image, image: true, add: []}
  - {name: age, add: [age]}
  - {name: descriptors, add: [shape, margin, birads]}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "dictionary.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_lesion_dictionary_kinds_steps_and_text_categories(tmp_path: Path) -> None:
    d = load_dictionary(write(tmp_path, LESIONS))
    assert d.missing == ("not available", "not applicable")
    assert d["birads"].categories == ("2", "3", "4a", "4b", "4c", "5")  # numbers read as text
    assert d["halo"].categories == ("no", "yes")  # YAML 1.1 would have made these booleans
    assert d["margin"].separator == "&"
    assert d.features("image") == ()
    assert d.features("descriptors") == ("age", "shape", "margin", "birads")
    assert d.steps_needing("age") == ("age", "descriptors")
    assert d.last_features() == ("age", "shape", "margin", "birads")
    assert d["margin"].split(" Circumscribed & angular") == ["circumscribed", "angular"]
    assert d["shape"].category(" OVAL ") == "oval"
    assert d["age"].factor("month") == pytest.approx(0.0833)


@pytest.mark.parametrize(("text", "message"), [
    (LESIONS.replace("kind: categorical", "kind: categorial"),
     "variables.shape.kind: 'categorial' is not a kind; use one of continuous, binary, categorical, ordinal, "
     "multi (did you mean 'categorical'?)"),
    (LESIONS.replace('separator: "&", ', ""), "variables.margin.separator: a multi variable needs"),
    (LESIONS.replace("add: [age]}", "add: [agee]}"), "steps[1].add: 'agee' is not a declared variable "
     "(did you mean 'age'?)"),
    (LESIONS.replace("plausible: [0, 120]", "plausible: [120, 0]"), "variables.age.plausible: low 120 is "
     "above high 0"),
    (LESIONS.replace("unit: years,", "units: years,"), "variables.age.units: not a key of a continuous "
     "variable"),
    (LESIONS.replace("categories: [no, yes]", "categories: [no, yes, maybe]"),
     "variables.halo.categories: a binary variable needs exactly two categories"),
    (LESIONS.replace("[oval, round, irregular]", "[oval, Oval, irregular]"),
     "variables.shape.categories: 'Oval' is listed twice"),
    (LESIONS.replace("add: [shape, margin, birads]", "add: [shape, age]"),
     "steps[2].add: 'age' was already added by step 'age'"),
    (LESIONS + "stepz: []\n", "stepz: not a key of a data dictionary"),
])
def test_bad_dictionary_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DictionaryError) as err:
        load_dictionary(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_default_dictionary_reproduces_the_paper_tables() -> None:
    """The shipped dictionary holds the facts the code held by hand: units, ranges, conversions, codes."""
    d = default_dictionary()
    assert d.continuous == ("age", "platelets", "ast", "alt", "albumin", "wbc", "hemoglobin", "ggt", "alp")
    assert d["sex"].kind == "binary" and d["sex"].categories == ("F", "M")
    assert d["sex"].category("female") == "F" and d["sex"].category(" m ") == "M"
    assert [v for v in d.variables if d[v].transform == "log1p"] == ["ast", "alt", "ggt", "alp"]
    assert d["age"].factor("months") == 1 / 12
    assert d["platelets"].factor("10^9/L") == 0.1 and d["platelets"].factor("/mm3") == 1e-4
    assert d["hemoglobin"].factor("mmol/L") == 1.611 and d["ast"].factor("ukat/L") == 60.0
    assert d["albumin"].plausible == (0.5, 7.0) and d["platelets"].typical == (2, 45)
    assert d["sex"].plausible == (-math.inf, math.inf)
    # the steps are the modality sets m1..m5 of the configs
    assert d.step_names == ("m1", "m2", "m3", "m4", "m5")
    for step in d.step_names:
        assert d.features(step) == catalog.modality_features()[step]


def test_content_hash_is_the_content(tmp_path: Path) -> None:
    a = load_dictionary(write(tmp_path, LESIONS))
    # comments, spacing and key order do not change it; the file's name does not either
    reordered = "# a comment\n" + LESIONS.replace("unit: years, plausible: [0, 120]", "plausible: [0,  120], unit: years")
    other = tmp_path / "other.yaml"
    other.write_text(reordered, encoding="utf-8")
    assert load_dictionary(other).content_hash() == a.content_hash()
    other.write_text(LESIONS.replace("irregular]", "irregular, lobular]"), encoding="utf-8")
    changed = load_dictionary(other)
    assert changed.content_hash() != a.content_hash()
    assert default_dictionary().content_hash() == (
        "90560a730aaa755f8f1eeed1c7c35b2185453bd771573384d2f5a502953c763a")  # + age patient_drift, top_code


def test_label_coding_is_written_once() -> None:
    """benign/malignant -> 0/1 has one home (liver_mm.stats): the manifest's LABELS and the label parser's
    NAMES are that coding, not copies that a reordering would set apart."""
    from liver_mm.cohort import labels
    from liver_mm.io import schema
    from liver_mm.stats import _inputs

    assert schema.LABELS is _inputs.CLASSES
    assert labels.NAMES == {"benign": 0, "malignant": 1}
    assert all(_inputs.LABEL_CODES[n] == labels.NAMES[n] for n in schema.LABELS)
