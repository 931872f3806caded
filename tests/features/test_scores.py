"""FIB-4 and APRI formulas: hand-computed values, platelet units, missing inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from liver_mm.features.scores import apri, clinical_score, fib4, platelets_10_9_per_l
from liver_mm.io.schema import read_manifest

# age, AST, ALT, platelets (x10^4/uL) -> FIB-4 and APRI (ULN 40) worked by hand:
# 12.5 x10^4/uL = 125 x10^9/L: FIB-4 = 60 * 50 / (125 * sqrt(36)) = 4.0; APRI = 50 / 40 / 125 * 100 = 1.0
LABS = pd.DataFrame({"age": [60, 45], "ast": [50, 20], "alt": [36, 25], "platelets": [12.5, 25.0]})


def test_hand_computed_values():
    np.testing.assert_allclose(fib4(LABS), [4.0, 45 * 20 / (250 * 5)], rtol=1e-15)
    np.testing.assert_allclose(apri(LABS), [1.0, 20 / 40 / 250 * 100], rtol=1e-15)
    np.testing.assert_allclose(apri(LABS, ast_uln=50.0), [0.8, 20 / 50 / 250 * 100], rtol=1e-15)
    assert clinical_score("apri", LABS).name == "apri"


@pytest.mark.parametrize(("unit", "factor"), [("x10^4/uL", 1.0), ("/uL", 1e4), ("x10^9/L", 10.0), ("/mm3", 1e4)])
def test_platelet_units_give_the_same_scores(unit, factor):
    other = LABS.assign(platelets=LABS["platelets"] * factor)
    np.testing.assert_allclose(platelets_10_9_per_l(other, unit), [125.0, 250.0], rtol=1e-12)
    np.testing.assert_allclose(fib4(other, platelet_unit=unit), fib4(LABS), rtol=1e-12)
    np.testing.assert_allclose(apri(other, platelet_unit=unit), apri(LABS), rtol=1e-12)


def test_manifest_formulas_and_declared_per_ul(tiny_cohort, tmp_path):
    """The synthetic manifest (x10^4/uL) and the same manifest in /uL, declared, read into equal scores."""
    raw = pd.read_csv(tiny_cohort)
    expected_fib4 = [a * s / (p * 10 * math.sqrt(t)) for a, s, t, p in zip(raw.age, raw.ast, raw.alt, raw.platelets,
                                                                               strict=True)]
    expected_apri = [s / 40 / (p * 10) * 100 for s, p in zip(raw.ast, raw.platelets, strict=True)]
    df = read_manifest(tiny_cohort)
    np.testing.assert_allclose(fib4(df), expected_fib4, rtol=1e-12)
    np.testing.assert_allclose(apri(df), expected_apri, rtol=1e-12)
    per_ul = tmp_path / "manifest.csv"
    raw.assign(platelets=(raw["platelets"] * 1e4).round().astype(int)).to_csv(per_ul, index=False)
    declared = read_manifest(per_ul, units={"platelets": "/uL"})  # as data.units={platelets: /uL} reads it
    np.testing.assert_allclose(fib4(declared), expected_fib4, rtol=1e-12)
    np.testing.assert_allclose(apri(declared), expected_apri, rtol=1e-12)
    np.testing.assert_allclose(fib4(pd.read_csv(per_ul), platelet_unit="/uL"), expected_fib4, rtol=1e-12)


def test_missing_input_gives_nan_and_bad_settings_raise():
    gap = LABS.assign(alt=[np.nan, 25])
    assert np.isnan(fib4(gap).iloc[0]) and not np.isnan(fib4(gap).iloc[1])
    with pytest.raises(KeyError, match="platelet unit 'mg/dL' is not accepted"):
        fib4(LABS, platelet_unit="mg/dL")
    with pytest.raises(KeyError, match="column 'age' is needed"):
        fib4(LABS.drop(columns="age"))
    with pytest.raises(ValueError, match="upper limit of normal must be > 0"):
        apri(LABS, ast_uln=0)
    with pytest.raises(ValueError, match="unknown clinical score 'meld'"):
        clinical_score("meld", LABS)
