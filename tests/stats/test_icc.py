"""ICC: the six Shrout-Fleiss forms against psych 2.2.9 golden values, and edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from liver_mm.stats import ICC_FORMS, icc

TOL = 1e-9


def test_icc_matches_psych(fixtures_dir):
    df = pd.read_csv(fixtures_dir / "icc_two_raters_20.csv")
    gold = json.loads((fixtures_dir / "icc_two_raters_20.json").read_text())["icc"]
    res = icc(df[["rater_a", "rater_b"]].to_numpy())
    assert tuple(res) == ICC_FORMS == tuple(gold)
    for form, g in gold.items():
        r = res[form]
        assert r.icc == pytest.approx(g["ICC"], abs=TOL), form
        f_stat = r.F
        assert f_stat == pytest.approx(g["F"], abs=TOL, rel=1e-12), form
        assert (r.df1, r.df2) == (g["df1"], g["df2"]), form
        assert r.p == pytest.approx(g["p"], abs=TOL, rel=1e-9), form
        assert r.ci_low == pytest.approx(g["lower_95"], abs=TOL), form
        assert r.ci_high == pytest.approx(g["upper_95"], abs=TOL), form


def test_icc_rater_order_and_missing_rows(fixtures_dir, caplog):
    df = pd.read_csv(fixtures_dir / "icc_two_raters_20.csv")
    x = df[["rater_a", "rater_b"]].to_numpy(dtype=float)
    base = icc(x)
    swapped = icc(x[:, ::-1])
    for form in ICC_FORMS:
        assert swapped[form].icc == pytest.approx(base[form].icc, abs=1e-12)
    with_nan = np.vstack([x, [np.nan, 100.0]])
    dropped = icc(with_nan)
    assert dropped["ICC2"] == base["ICC2"]
    assert "dropping 1 subject" in caplog.text


def test_icc_three_raters_consistency_vs_agreement():
    rng = np.random.default_rng(0)
    truth = rng.normal(100, 20, size=30)
    x = truth[:, None] + rng.normal(0, 5, size=(30, 3)) + np.array([0.0, 10.0, 20.0])  # rater bias
    res = icc(x)
    # a constant rater offset lowers absolute agreement (ICC2) but not consistency (ICC3)
    assert res["ICC3"].icc > res["ICC2"].icc
    assert res["ICC1"].df2 == 30 * 2 and res["ICC3"].df2 == 29 * 2
    for r in res.values():
        assert r.ci_low < r.icc < r.ci_high
    # average-measure forms follow Spearman-Brown from the single forms
    for one, avg in (("ICC1", "ICC1k"), ("ICC3", "ICC3k")):
        s = res[one].icc
        assert res[avg].icc == pytest.approx(3 * s / (1 + 2 * s), rel=1e-12)


@pytest.mark.parametrize("bad", [np.ones(5), np.ones((5, 1)), np.array([[1.0, 2.0]])])
def test_icc_bad_shapes(bad):
    with pytest.raises(ValueError):
        icc(bad)
