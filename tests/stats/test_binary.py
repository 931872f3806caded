"""Youden threshold (pROC golden values), Wilson intervals and threshold metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from liver_mm.stats import binary_metrics, roc_thresholds, wilson_ci, youden_threshold

TOL = 1e-9


@pytest.mark.parametrize("name", ["delong_stepwise_108", "delong_stepwise_1200"])
def test_youden_matches_proc(fixtures_dir, name):
    df = pd.read_csv(fixtures_dir / f"{name}.csv")
    gold = json.loads((fixtures_dir / f"{name}.json").read_text())["single"]
    y = df["malignant"].to_numpy()
    for model, g in gold.items():
        t = youden_threshold(y, df[model])
        b = g["youden_best"]
        assert t.threshold == pytest.approx(b["threshold"], abs=TOL), model
        assert t.sensitivity == pytest.approx(b["sensitivity"], abs=TOL), model
        assert t.specificity == pytest.approx(b["specificity"], abs=TOL), model
        assert t.accuracy == pytest.approx(b["accuracy"], abs=TOL), model
        # the frozen threshold reproduces its own operating point through binary_metrics
        mt = binary_metrics(y, df[model], t.threshold)
        assert (mt["sensitivity"], mt["specificity"], mt["accuracy"]) == pytest.approx(
            (t.sensitivity, t.specificity, t.accuracy), abs=1e-15)


def test_youden_tie_picks_lowest_threshold(fixtures_dir):
    # 1200-case m1 (2-decimal scores) has two thresholds with the same J; pROC reports 0.385, the lower
    df = pd.read_csv(fixtures_dir / "delong_stepwise_1200.csv")
    y, s = df["malignant"].to_numpy(), df["m1"].to_numpy()
    t = youden_threshold(y, s)
    other = binary_metrics(y, s, 0.425)
    assert t.threshold == pytest.approx(0.385)
    assert t.sensitivity + t.specificity == other["sensitivity"] + other["specificity"]
    # a hand-made tie: thresholds 0.25 and 0.65 both give J = 0.5
    y2 = np.array([0, 1, 0, 1])
    s2 = np.array([0.1, 0.4, 0.5, 0.8])
    t2 = youden_threshold(y2, s2)
    assert t2.threshold == 0.25 and (t2.sensitivity, t2.specificity) == (1.0, 0.5)


def test_youden_perfect_and_midpoint():
    y = np.array([0, 0, 1, 1])
    t = youden_threshold(y, np.array([0.1, 0.3, 0.6, 0.9]))
    assert (t.threshold, t.sensitivity, t.specificity, t.accuracy) == ((0.3 + 0.6) / 2, 1.0, 1.0, 1.0)


def test_youden_inverted_score_gives_infinite_threshold():
    y = np.array([0, 0, 1, 1])
    t = youden_threshold(y, np.array([0.9, 0.8, 0.2, 0.1]))  # AUC 0: no cut beats "all malignant"
    assert t.threshold == -np.inf and (t.sensitivity, t.specificity) == (1.0, 0.0)


def test_roc_thresholds_near_ties_and_huge_values():
    a = 0.3
    b = np.nextafter(a, 1.0)
    t = roc_thresholds(np.array([a, b]))
    assert t[0] == -np.inf and t[-1] == np.inf
    assert t[1] == b  # midpoint rounded onto a, moved to b so that prob >= t separates a from b
    big = roc_thresholds(np.array([1e308, 1.5e308]))
    assert np.isfinite(big[1]) and 1e308 < big[1] < 1.5e308


def test_wilson_known_values_and_definition():
    # binom::binom.confint(7, 10, methods = "wilson"): 0.3967781 0.8922087
    low, high = wilson_ci(7, 10)
    assert (low, high) == pytest.approx((0.3967781, 0.8922087), abs=5e-8)
    # the bounds solve (p_hat - p)^2 = z^2 p (1 - p) / n
    z = norm.ppf(0.975)
    for k, n in [(3, 17), (50, 100), (1, 1000)]:
        for p in wilson_ci(k, n):
            assert (k / n - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9, abs=1e-15)
    assert wilson_ci(0, 20)[0] == 0.0 and wilson_ci(20, 20)[1] == 1.0
    assert wilson_ci(5, 10, alpha=0.01)[0] < wilson_ci(5, 10)[0]
    with pytest.raises(ValueError):
        wilson_ci(3, 0)
    with pytest.raises(ValueError):
        wilson_ci(5, 4)


def test_binary_metrics_rule_is_greater_or_equal():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.5, 0.2, 0.5, 0.4, 0.1, 0.6])
    m = binary_metrics(y, p, threshold=0.5)
    # predicted malignant: 0.9, 0.5 (pos), 0.5, 0.6 (neg) -> TP 2/3, TN 2/4, accuracy 4/7
    assert (m["sensitivity_k"], m["sensitivity_n"]) == (2, 3)
    assert (m["specificity_k"], m["specificity_n"]) == (2, 4)
    assert (m["accuracy_k"], m["accuracy_n"]) == (4, 7)
    assert m["accuracy"] == 4 / 7 and m["threshold"] == 0.5
    assert (m["sensitivity_ci_low"], m["sensitivity_ci_high"]) == wilson_ci(2, 3)
    keys = {f"{s}{suf}" for s in ("accuracy", "sensitivity", "specificity")
            for suf in ("", "_k", "_n", "_ci_low", "_ci_high")} | {"threshold"}
    assert set(m) == keys


def test_binary_metrics_one_class_set_gives_nan_sensitivity(caplog):
    m = binary_metrics(np.array(["benign"] * 4), np.array([0.1, 0.2, 0.7, 0.3]), 0.5)
    assert m["specificity"] == 0.75 and m["sensitivity_n"] == 0
    assert np.isnan(m["sensitivity"]) and np.isnan(m["sensitivity_ci_low"])
    assert "sensitivity undefined" in caplog.text
