"""Lab-value checks: ranges, unit sniffing, sex codes, patient consistency, and the real ILPD labs."""

from __future__ import annotations

import pandas as pd
import pytest

from liver_mm.cohort.validate import validate_labs
from liver_mm.dictionary import default_dictionary
from liver_mm.io.schema import read_manifest
from tests.cohort.test_validate import base_rows, check, findings, write_manifest

CLINICAL = default_dictionary().variables

ILPD_COLUMNS = {"Age": "age", "Gender": "sex", "Sgot": "ast", "Sgpt": "alt", "Alkphos": "alp", "ALB": "albumin"}
# a normal-ish value of each continuous column in its canonical unit
NORMAL = {"age": 55, "ast": 35, "alt": 30, "platelets": 18, "albumin": 3.9, "wbc": 6, "hemoglobin": 13.5,
          "ggt": 50, "alp": 250}


@pytest.fixture
def rows(tmp_path):
    return base_rows(tmp_path)


@pytest.fixture(scope="module")
def ilpd(fixtures_dir) -> pd.DataFrame:
    return pd.read_csv(fixtures_dir / "ilpd.csv").rename(columns=ILPD_COLUMNS)


def codes_of(found, severity):
    return {f.code for f in found if f.severity == severity}


def test_ast_zero(tmp_path, rows):
    rows[2]["ast"] = 0
    report = check(tmp_path, rows)
    assert findings(report, "value_out_of_range") == [(4, "c2", "ast")] and not report.ok


def test_negative_age(tmp_path, rows):
    rows[5]["age"] = -4
    assert findings(check(tmp_path, rows), "value_out_of_range") == [(7, "c5", "age")]


def test_non_numeric_lab(tmp_path, rows):
    rows[1]["alt"] = "12 U/L"
    report = check(tmp_path, rows)
    assert findings(report, "value_not_numeric") == [(3, "c1", "alt")]


def test_albumin_in_g_per_l_caught_then_declared(tmp_path, rows):
    for r in rows:
        r["albumin"] = round(float(r["albumin"]) * 10)
    report = check(tmp_path, rows)
    assert findings(report, "unit_suspect") == [(None, None, "albumin")]
    msg = report.errors[0].message
    assert "g/L" in msg and "--unit albumin=g/L" in msg
    assert findings(report, "value_out_of_range") == []  # one unit finding, not one per row
    assert check(tmp_path, rows, units={"albumin": "g/L"}).findings == []
    df = read_manifest(tmp_path / "manifest.csv", units={"albumin": "g/L"})
    assert df["albumin"].between(3.5, 4.2).all()


@pytest.mark.parametrize(("factor", "unit"), [(1e4, "/uL"), (10, "x10^9/L")])
def test_platelets_in_other_units(tmp_path, rows, factor, unit):
    for r in rows:
        r["platelets"] = float(r["platelets"]) * factor
    report = check(tmp_path, rows)
    assert findings(report, "unit_suspect") == [(None, None, "platelets")]
    assert f"--unit platelets={unit}" in report.errors[0].message
    assert check(tmp_path, rows, units={"platelets": unit}).ok


@pytest.mark.parametrize(("col", "unit"), [(c, u) for c, s in CLINICAL.items() for u, f in s.conversions.items()
                                           if not 0.5 <= f <= 2])
def test_every_declared_unit_is_sniffed(col, unit):
    factor = CLINICAL[col].factor(unit)
    df = pd.DataFrame({col: [NORMAL[col] * k / factor for k in (0.8, 0.9, 1.0, 1.1, 1.2)]})
    found = validate_labs(df)
    suspect = [f for f in found if f.code == "unit_suspect"]
    assert len(suspect) == 1 and suspect[0].column == col and unit in suspect[0].message
    assert not [f for f in validate_labs(df, units={col: unit}) if f.severity == "error"]


def test_unknown_declared_unit_is_an_error(tmp_path, rows):
    report = check(tmp_path, rows, units={"albumin": "mg/mL"})
    assert findings(report, "unit_unknown") == [(None, None, "albumin")]
    assert "g/dL, g/L" in report.errors[0].message


def test_unknown_sex_code(tmp_path, rows):
    rows[3]["sex"] = "X"
    rows[1]["sex"] = " female "  # mapped, not an error
    report = check(tmp_path, rows)
    assert findings(report, "sex_unknown") == [(5, "c3", "sex")]


def test_patient_with_conflicting_sex(tmp_path, rows):
    rows[2].update(patient_id="p0", sex="M", age=50)
    assert findings(check(tmp_path, rows), "patient_conflict_sex") == [(4, "c2", "sex")]


def test_patient_age_conflict_beyond_tolerance_only(tmp_path, rows):
    for r in rows:
        del r["split"]
    rows[2].update(patient_id="p0", sex="F", age=52)  # a later exam: tolerated
    assert check(tmp_path, rows).findings == []
    rows[2]["age"] = 57
    assert findings(check(tmp_path, rows), "patient_conflict_age") == [(4, "c2", "age")]


def test_missing_optional_labs_are_counted(tmp_path, rows):
    rows[1]["ast"] = rows[4]["ast"] = ""
    report = check(tmp_path, rows)
    assert report.ok and findings(report, "missing_values") == [(None, None, "ast")]
    assert "2 of 6" in report.warnings[0].message and "lines 3, 6" in report.warnings[0].message


def test_ilpd_labs_pass_with_documented_oddities_as_warnings(ilpd):
    found = validate_labs(ilpd, source="ilpd.csv")
    assert codes_of(found, "error") == set()
    dup = [f for f in found if f.code == "duplicate_row"]
    assert len(dup) == 13 and all(f.row is not None for f in dup)
    assert (dup[0].row, dup[0].message.split(" in ")[0]) == (21, "lab values identical to line 20")
    cap = [f for f in found if f.code == "age_capped"]
    assert len(cap) == 1 and cap[0].column == "age"
    missing = [f for f in found if f.code == "missing_values"]
    assert [(f.column, f.message.split(" rows")[0]) for f in missing] == [("A/G", "4 of 583")]
    high = {f.column for f in found if f.code == "value_atypical" and "above" in f.message}
    assert {"ast", "alt"} <= high
    assert all(f.severity == "warning" for f in found)


def test_ilpd_albumin_times_ten_is_caught_as_g_per_l(ilpd):
    bad = ilpd.assign(albumin=ilpd["albumin"] * 10)
    errors = [f for f in validate_labs(bad, source="ilpd.csv") if f.severity == "error"]
    assert [(f.code, f.column) for f in errors] == [("unit_suspect", "albumin")]
    assert "g/L" in errors[0].message
    assert codes_of(validate_labs(bad, units={"albumin": "g/L"}), "error") == set()


def test_lab_table_without_attrs_names_csv_lines(tmp_path):
    df = pd.DataFrame({"case_id": ["a", "b", "c"], "age": [40, 50, 130]})
    write_manifest(tmp_path, df.to_dict("records"), "labs.csv")
    found = validate_labs(pd.read_csv(tmp_path / "labs.csv"), source="labs.csv")
    assert [(f.code, f.row, f.case_id, f.column) for f in found if f.severity == "error"] == [
        ("value_out_of_range", 4, "c", "age")]


def test_per_patient_and_code_checks_follow_the_dictionary(tmp_path):
    """A cohort of other variables: the binary ``side`` (L/R, constant per patient) gets the code check and the
    --map remedy, ``height`` (patient_drift 3 cm, top_code 200) the drift and top-code checks; its ``age`` is
    marked neither, so a patient's ages 20 years apart are no conflict, and ``sex`` is not a variable here."""
    from liver_mm.dictionary import load_dictionary

    path = tmp_path / "d.yaml"
    path.write_text("variables:\n"
                    "  age: {kind: continuous, unit: years, plausible: [0, 120]}\n"
                    "  side: {kind: binary, categories: [L, R], constant_per_patient: true}\n"
                    "  height: {kind: continuous, unit: cm, plausible: [40, 250], patient_drift: 3, top_code: 200}\n")
    d = load_dictionary(path)
    df = pd.DataFrame({"case_id": ["a", "b", "c", "d", "e"], "patient_id": ["p", "p", "q", "q", "r"],
                       "age": [30, 50, 40, 41, 60], "side": ["L", "R", "L", "2", "r"],
                       "height": [170, 171, 160, 166, 200], "sex": ["F", "F", "M", "X", "M"]})
    found = validate_labs(df, source="t.csv", dictionary=d)
    got = {(f.code, f.row, f.column) for f in found}
    assert got == {("side_unknown", 5, "side"), ("patient_conflict_side", 3, "side"), ("patient_conflict_side", 5, "side"),
                   ("patient_conflict_height", 5, "height"), ("height_capped", None, "height")}
    side = next(f for f in found if f.code == "side_unknown").message
    assert side.startswith("side code '2' is not L/R (numeric codes are ambiguous)") and "--map side=2:L" in side
    drift = next(f for f in found if f.code == "patient_conflict_height").message
    assert drift == "patient q has height 160-166 on lines 4, 5 (> 3 cm apart): fix the height or the patient_id"
