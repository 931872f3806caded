"""DeLong AUC variance, CI and paired test against R's pROC 1.18 golden values, and edge cases."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from liver_mm.stats import (
    auc_ci,
    compare_models,
    comparison_pairs,
    delong_covariance,
    delong_report,
    delong_test,
    holm_adjust,
    placements,
)

TOL = 1e-9
ORACLES = ["delong_stepwise_108", "delong_stepwise_1200"]


def _load(fixtures_dir, name):
    df = pd.read_csv(fixtures_dir / f"{name}.csv")
    gold = json.loads((fixtures_dir / f"{name}.json").read_text())
    return df["malignant"].to_numpy(), df, gold


@pytest.mark.parametrize("name", ORACLES)
def test_single_auc_matches_proc(fixtures_dir, name):
    y, df, gold = _load(fixtures_dir, name)
    assert int(y.sum()) == gold["n_pos"] and int((1 - y).sum()) == gold["n_neg"]
    for model, g in gold["single"].items():
        r = auc_ci(y, df[model])
        assert abs(r.auc - g["auc"]) <= 1e-15, model  # pROC's auc(), bit-identical on x86-64
        assert r.var == pytest.approx(g["var_delong"], abs=TOL, rel=1e-9)
        assert r.ci_low == pytest.approx(g["ci_delong_95"][0], abs=TOL)
        assert r.ci_high == pytest.approx(g["ci_delong_95"][1], abs=TOL)
        assert (r.n_pos, r.n_neg) == (gold["n_pos"], gold["n_neg"])


@pytest.mark.parametrize("name", ORACLES)
def test_paired_delong_matches_proc(fixtures_dir, name):
    y, df, gold = _load(fixtures_dir, name)
    for key, g in gold["paired_delong"].items():
        a, b = key.split("_vs_")
        t = delong_test(y, df[a], df[b])
        assert t.z == pytest.approx(g["Z"], abs=TOL), key
        assert t.p_value == pytest.approx(g["p_value"], abs=TOL, rel=1e-9), key
        assert t.diff_ci_low == pytest.approx(g["diff_ci_95"][0], abs=TOL), key
        assert t.diff_ci_high == pytest.approx(g["diff_ci_95"][1], abs=TOL), key
        assert t.cov == pytest.approx(g["cov_delong"], abs=TOL, rel=1e-9), key
        assert t.diff == t.auc_a - t.auc_b
        assert t.auc_a == gold["single"][a]["auc"] or abs(t.auc_a - gold["single"][a]["auc"]) <= 1e-15


@pytest.mark.parametrize("name", ORACLES)
def test_covariance_matrix_matches_proc(fixtures_dir, name):
    y, df, gold = _load(fixtures_dir, name)
    models = list(gold["single"])
    aucs, cov = delong_covariance(y, df[models].to_numpy().T)
    assert cov.shape == (5, 5) and np.allclose(cov, cov.T, rtol=0, atol=1e-18)
    for i, m in enumerate(models):
        assert abs(aucs[i] - gold["single"][m]["auc"]) <= 1e-15
        assert cov[i, i] == pytest.approx(gold["single"][m]["var_delong"], abs=TOL)
    for key, g in gold["paired_delong"].items():
        a, b = (models.index(x) for x in key.split("_vs_"))
        assert cov[a, b] == pytest.approx(g["cov_delong"], abs=TOL)


def test_comparison_pairs_are_the_oracle_pairs(fixtures_dir):
    _, _, gold = _load(fixtures_dir, ORACLES[0])
    pairs = comparison_pairs(["m1", "m2", "m3", "m4", "m5"])
    assert [f"{a}_vs_{b}" for a, b in pairs] == list(gold["paired_delong"])
    # another reference: no pair twice, adjacent pairs already covered are skipped
    assert comparison_pairs(["m1", "m2", "m3", "m4"], reference="m3") == [
        ("m3", "m1"), ("m3", "m2"), ("m3", "m4"), ("m1", "m2")]
    with pytest.raises(ValueError, match="reference"):
        comparison_pairs(["a", "b"], reference="c")


def test_compare_models_holm(fixtures_dir):
    y, df, gold = _load(fixtures_dir, ORACLES[0])
    rows = compare_models(y, {m: df[m] for m in ["m1", "m2", "m3", "m4", "m5"]})
    p = np.array([gold["paired_delong"][f"{r.a}_vs_{r.b}"]["p_value"] for r in rows])
    assert np.allclose([r.p_value for r in rows], p, rtol=1e-9, atol=0)
    # Holm by hand: sorted p times (m - rank), running max, capped at 1
    order = np.argsort(p)
    expect = np.empty(7)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (7 - rank) * p[i]))
        expect[i] = running
    assert np.allclose([r.p_holm for r in rows], expect, rtol=1e-9, atol=0)
    assert all(r.p_holm >= r.p_value for r in rows)


def test_holm_known_values():
    # R: p.adjust(c(0.04, 0.01, 0.03), "holm") == c(0.06, 0.03, 0.06)
    assert np.allclose(holm_adjust([0.04, 0.01, 0.03]), [0.06, 0.03, 0.06])
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm") == c(0.05, 0.08, 0.09, 0.09, 0.09)
    assert np.allclose(holm_adjust([0.01, 0.02, 0.03, 0.04, 0.05]), [0.05, 0.08, 0.09, 0.09, 0.09])
    assert np.allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])
    with pytest.raises(ValueError):
        holm_adjust([0.1, np.nan])


def test_placements_equal_sun_xu_rankdata_form():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=(3, 400)) + y, 1)  # many ties
    aucs, v10, v01 = placements(y, s)
    pos = y == 1
    m, n = pos.sum(), (~pos).sum()
    tz, tx, ty = rankdata(s, axis=1), rankdata(s[:, pos], axis=1), rankdata(s[:, ~pos], axis=1)
    assert np.array_equal(v10, (tz[:, pos] - tx) / n)
    # Sun & Xu write 1 - (Tz - Ty)/m, which rounds twice; here (m - (Tz - Ty))/m, rounded once
    assert np.array_equal(v01, (m - (tz[:, ~pos] - ty)) / m)
    assert np.allclose(v01, 1 - (tz[:, ~pos] - ty) / m, rtol=0, atol=1e-15)
    for i in range(3):
        assert abs(aucs[i] - roc_auc_score(y, s[i])) <= 1e-15
        assert abs(aucs[i] - v10[i].mean()) <= 1e-15


# --- edge cases -----------------------------------------------------------------------------

Y = np.array([0, 0, 0, 1, 1, 1])


def test_perfect_separation_both_models():
    a = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    b = np.array([0.0, 0.1, 0.4, 0.5, 0.6, 1.0])
    r = auc_ci(Y, a)
    assert (r.auc, r.var, r.ci_low, r.ci_high) == (1.0, 0.0, 1.0, 1.0)
    t = delong_test(Y, a, b)
    assert (t.diff, t.z, t.p_value, t.diff_ci_low, t.diff_ci_high) == (0.0, 0.0, 1.0, 0.0, 0.0)


def test_identical_scores_give_z0_p1():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30), np.ones(30)]
    s = rng.normal(size=60) + y
    t = delong_test(y, s, s.copy())
    assert (t.diff, t.z, t.p_value) == (0.0, 0.0, 1.0)
    assert t.cov == pytest.approx(auc_ci(y, s).var, rel=1e-12)


def test_zero_variance_with_a_difference_is_infinite_z():
    a = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # AUC 1
    t = delong_test(Y, a, -a)  # AUC 0, placements differ by a constant
    assert t.diff == 1.0 and t.z == np.inf and t.p_value == 0.0
    assert (t.diff_ci_low, t.diff_ci_high) == (1.0, 1.0)
    rep = delong_report(Y, {"a": a, "b": -a})
    assert rep["comparisons"][0]["z"] is None and rep["comparisons"][0]["p_value"] == 0.0


def test_constant_score_is_chance_with_zero_variance():
    const = np.full(6, 0.5)
    r = auc_ci(Y, const)
    assert (r.auc, r.var, r.ci_low, r.ci_high) == (0.5, 0.0, 0.5, 0.5)
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(40), np.ones(40)]
    s = rng.normal(size=80) + 2 * y
    t = delong_test(y, s, np.zeros(80))
    assert t.auc_b == 0.5 and np.isfinite(t.z) and 0 <= t.p_value < 0.05
    assert t.cov == 0.0  # a constant score has constant placements


def test_ties_count_half():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.5, 0.5, 0.2, 0.9])
    # pairs (neg, pos): (0.5,0.5)=1/2, (0.5,0.9)=1, (0.2,0.5)=1, (0.2,0.9)=1 -> 3.5/4
    assert auc_ci(y, s).auc == 0.875


def test_single_positive_is_finite_and_warns(caplog):
    y = np.array([0, 0, 0, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.6])
    with caplog.at_level(logging.WARNING, logger="liver_mm.stats.delong"):
        r = auc_ci(y, s)
        t = delong_test(y, s, np.array([0.2, 0.1, 0.3, 0.4, 0.9]))
    assert r.auc == 0.75
    # variance from the negatives only: placements 1, 1, 1, 0 -> sample var 0.25, over n = 4
    assert r.var == pytest.approx(0.0625, rel=1e-12)
    assert all(np.isfinite([r.var, r.ci_low, r.ci_high, t.z, t.p_value, t.cov]))
    assert "contributes 0" in caplog.text


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        (np.ones(5), np.arange(5.0), "one class"),
        (np.zeros(5), np.arange(5.0), "one class"),
        (np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.2, 0.3]), "non-finite"),
        (np.array([0, 1, 2, 1]), np.arange(4.0), "labels must be 0"),
        (np.array([0, 1, 0]), np.arange(4.0), "shape"),
        (np.array(["benign", "malignant", "other"]), np.arange(3.0), "expected 0/1"),
    ],
)
def test_bad_input_is_a_clear_error(y, s, match):
    with pytest.raises(ValueError, match=match):
        auc_ci(y, s)


def test_text_labels_accepted():
    y = np.array(["benign", "Malignant", "benign", "malignant "])
    s = np.array([0.1, 0.9, 0.2, 0.8])
    assert auc_ci(y, s).auc == 1.0


def test_report_structure(fixtures_dir):
    y, df, gold = _load(fixtures_dir, ORACLES[0])
    rep = delong_report(y, {m: df[m] for m in ["m1", "m2", "m3"]}, reference="m2")
    assert set(rep) == {"n_pos", "n_neg", "models", "comparisons"}
    assert set(rep["models"]["m1"]) == {"auc", "ci_low", "ci_high", "var"}
    assert rep["models"]["m1"]["auc"] == gold["single"]["m1"]["auc"]
    assert [(c["a"], c["b"]) for c in rep["comparisons"]] == [("m2", "m1"), ("m2", "m3")]
    keys = {"a", "b", "auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z", "p_value", "p_holm", "family"}
    assert all(set(c) == keys for c in rep["comparisons"])
    # m2 vs m1 is the oracle's m1 vs m2 with the sign flipped
    assert rep["comparisons"][0]["z"] == pytest.approx(-gold["paired_delong"]["m1_vs_m2"]["Z"], abs=TOL)
    json.dumps(rep, allow_nan=False)
