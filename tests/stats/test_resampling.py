"""The Nadeau-Bengio corrected resampled t-test against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from liver_mm.stats import CorrectedTTest, compare_fold_aucs, corrected_resampled_ttest, size_ratio

VECTORS = [
    np.array([0.02, -0.01, 0.03, 0.05, 0.00]),
    np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.13, 0.07, 0.10, 0.12, 0.08]),
    np.array([-0.031, 0.004, -0.022, -0.017, 0.009, -0.040, -0.005, -0.012, 0.001, -0.026, -0.019, 0.013,
              -0.008, -0.033, 0.006]),
    np.array([0.5, -0.5]),
]


def _by_hand(d: np.ndarray, ratio: float) -> tuple[float, float]:
    """Bouckaert & Frank (2004) eq.: t = mean / sqrt((1/J + n2/n1) * s^2), df = J - 1, two-sided p."""
    j = len(d)
    mean = sum(d) / j
    s2 = sum((x - mean) ** 2 for x in d) / (j - 1)
    t = mean / math.sqrt((1 / j + ratio) * s2)
    return t, 2 * stats.t.cdf(-abs(t), j - 1)


@pytest.mark.parametrize("d", VECTORS)
@pytest.mark.parametrize("ratio", [0.25, 1 / 9, 0.5])
def test_matches_closed_form(d, ratio):
    r = corrected_resampled_ttest(d, ratio)
    t, p = _by_hand(d, ratio)
    assert r.t == pytest.approx(t, rel=1e-12, abs=1e-12)
    assert r.p_value == pytest.approx(p, rel=1e-12, abs=1e-12)
    assert (r.df, r.n_folds, r.ratio) == (len(d) - 1, len(d), ratio)
    assert r.mean_diff == pytest.approx(d.mean(), abs=1e-15)
    assert r.sd_diff == pytest.approx(d.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("d", VECTORS)
def test_ratio_zero_is_the_one_sample_t_test(d):
    r = corrected_resampled_ttest(d, 0.0)
    ref = stats.ttest_1samp(d, 0.0)
    assert r.t == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-12)


def test_hand_checked_example():
    # d = (0.02, 0.04, 0.00, 0.06, 0.03), K = 5 folds: n_test/n_train = 1/4.
    # mean 0.03; s^2 = (1e-4 + 1e-4 + 9e-4 + 9e-4 + 0) / 4 = 5e-4; (1/5 + 1/4) * 5e-4 = 2.25e-4 = 0.015^2;
    # t = 0.03 / 0.015 = 2 on 4 df. Student t, 4 df: P(T <= 2) = 1/2 + (5/16) sqrt(2), so p = 1 - 5 sqrt(2) / 8.
    r = corrected_resampled_ttest([0.02, 0.04, 0.00, 0.06, 0.03], 0.25)
    assert r.t == pytest.approx(2.0, rel=1e-12)
    assert r.df == 4
    assert r.p_value == pytest.approx(1 - 5 * math.sqrt(2) / 8, rel=1e-12)  # 0.11611652...
    assert r.sd_diff == pytest.approx(math.sqrt(5e-4), rel=1e-12)
    # the uncorrected test would claim t = 0.03 / sqrt(5e-4 / 5) = 3
    assert corrected_resampled_ttest([0.02, 0.04, 0.00, 0.06, 0.03], 0.0).t == pytest.approx(3.0, rel=1e-12)


def test_zero_variance():
    same = corrected_resampled_ttest([0.0, 0.0, 0.0], 0.25)
    assert (same.t, same.p_value, same.sd_diff) == (0.0, 1.0, 0.0)
    up = corrected_resampled_ttest([0.5, 0.5, 0.5, 0.5], 0.25)
    assert (up.t, up.p_value, up.mean_diff) == (math.inf, 0.0, 0.5)
    down = corrected_resampled_ttest([-0.25, -0.25], 0.25)
    assert (down.t, down.p_value) == (-math.inf, 0.0)


@pytest.mark.parametrize(("d", "ratio", "match"), [
    ([0.1], 0.25, "at least 2 folds, got 1"),
    ([], 0.25, "at least 2 folds, got 0"),
    ([0.1, np.nan, 0.2], 0.25, r"fold\(s\) \[1\]"),
    ([[0.1, 0.2]], 0.25, "1-D"),
    ([0.1, 0.2], -0.1, "ratio"),
    ([0.1, 0.2], np.inf, "ratio"),
])
def test_bad_input(d, ratio, match):
    with pytest.raises(ValueError, match=match):
        corrected_resampled_ttest(d, ratio)


def test_compare_fold_aucs_uses_mean_fold_sizes():
    a = np.array([0.81, 0.84, 0.79, 0.86, 0.83, 0.80])
    b = np.array([0.78, 0.80, 0.80, 0.81, 0.79, 0.77])
    n_test = np.array([20, 20, 21, 20, 20, 21])
    n_train = np.array([81, 81, 80, 81, 81, 80])
    r = compare_fold_aucs(a, b, n_test, n_train)
    assert isinstance(r, CorrectedTTest)
    assert r.ratio == pytest.approx(122 / 484, rel=1e-15)  # mean 122/6 over mean 484/6
    t, p = _by_hand(a - b, 122 / 484)
    assert (r.t, r.p_value) == (pytest.approx(t, rel=1e-12), pytest.approx(p, rel=1e-12))
    assert r.mean_diff == pytest.approx(0.03, abs=1e-12)
    # swapping the arms flips t and keeps p
    s = compare_fold_aucs(b, a, n_test, n_train)
    assert (s.t, s.p_value) == (pytest.approx(-r.t, rel=1e-12), pytest.approx(r.p_value, rel=1e-12))


def test_compare_fold_aucs_bad_input():
    with pytest.raises(ValueError, match=r"auc_b: fold\(s\) \[2\]"):
        compare_fold_aucs([0.8, 0.7, 0.9], [0.7, 0.6, 1.2], [10, 10, 10], [40, 40, 40])
    with pytest.raises(ValueError, match="same length"):
        compare_fold_aucs([0.8, 0.7, 0.9], [0.7, 0.6], [10, 10, 10], [40, 40, 40])
    with pytest.raises(ValueError, match="positive"):
        size_ratio([10, 0], [40, 40])
    with pytest.raises(ValueError, match=r"fold sizes have shape \(3,\), the AUCs \(2,\)"):
        compare_fold_aucs([0.8, 0.7], [0.7, 0.6], [10, 10, 10], [40, 40, 40])
