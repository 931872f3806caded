"""Calibration: Brier = scikit-learn, intercept and slope = a logistic GLM written here, closed forms."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit
from sklearn.metrics import brier_score_loss

from liver_mm.stats.calibration import (
    calibration_in_the_large,
    calibration_metrics,
    recalibration_fit,
    reliability_curve,
)

TOL = 1e-6


def _miscalibrated(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Predictions too extreme and too high: true logit = -0.4 + 0.6 * the model's logit."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(0.3, 1.8, n)
    y = (rng.uniform(size=n) < expit(-0.4 + 0.6 * lp)).astype(int)
    return y, expit(lp)


def _glm_reference(y: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(calibration-in-the-large, val.prob intercept, val.prob slope) by statsmodels' GLM, from scratch."""
    lp = np.log(p / (1 - p))
    binomial = sm.families.Binomial()
    citl = sm.GLM(y, np.ones_like(lp), family=binomial, offset=lp).fit(tol=1e-14).params[0]
    a, b = sm.GLM(y, np.column_stack([np.ones_like(lp), lp]), family=binomial).fit(tol=1e-14).params
    return float(citl), float(a), float(b)


def test_brier_is_sklearn_exactly():
    y, p = _miscalibrated()
    assert calibration_metrics(y, p)["brier"] == brier_score_loss(y, p)
    assert calibration_metrics(y.astype(str), p)["brier"] == brier_score_loss(y, p)  # "0"/"1" labels too


@pytest.mark.parametrize("seed", [3, 11])
def test_intercept_and_slope_equal_statsmodels_glm(seed):
    y, p = _miscalibrated(seed=seed)
    citl, a, b = _glm_reference(y, p)
    m = calibration_metrics(y, p)
    assert m["cal_intercept"] == pytest.approx(citl, abs=TOL)
    assert m["cal_slope"] == pytest.approx(b, abs=TOL)
    assert recalibration_fit(y, p) == pytest.approx((a, b), abs=TOL)
    # the data were made with slope 0.6: the estimate is near it and far from 1 (not a vacuous match)
    assert 0.4 < m["cal_slope"] < 0.8 and abs(m["cal_intercept"] - a) > 0.01


def test_closed_form_two_valued_predictions():
    """Two distinct predictions: the recalibration fit is saturated (fitted rate = observed rate per
    group), so slope = (logit r1 - logit r2) / (logit p1 - logit p2), with no optimiser in the check."""
    p = np.repeat([0.2, 0.7], [50, 50])
    y = np.r_[np.repeat([1, 0], [15, 35]), np.repeat([1, 0], [30, 20])]  # rates 0.3, 0.6
    lg = lambda v: math.log(v / (1 - v))  # noqa: E731
    slope = (lg(0.6) - lg(0.3)) / (lg(0.7) - lg(0.2))
    a, b = recalibration_fit(y, p)
    assert b == pytest.approx(slope, abs=1e-9)
    assert a == pytest.approx(lg(0.3) - slope * lg(0.2), abs=1e-9)


def test_closed_form_constant_prediction_in_the_large():
    """One prediction c for everyone: calibration-in-the-large = logit(observed rate) - logit(c)."""
    y = np.repeat([1, 0], [30, 70])
    assert calibration_in_the_large(y, np.full(100, 0.5)) == pytest.approx(math.log(0.3 / 0.7), abs=1e-9)


def test_probabilities_of_exactly_0_and_1_are_clipped_not_infinite():
    """A float32 sigmoid saturates to 0.0 / 1.0: the logit is taken of p clipped to [1e-15, 1 - 1e-15]."""
    y, p = _miscalibrated(n=200)
    p = p.copy()
    p[[0, 1]] = 0.0, 1.0
    m = calibration_metrics(y, p)
    ref = _glm_reference(y, np.clip(p, 1e-15, 1 - 1e-15))
    assert m["cal_intercept"] == pytest.approx(ref[0], abs=TOL) and m["cal_slope"] == pytest.approx(ref[2], abs=TOL)
    assert m["brier"] == brier_score_loss(y, p)  # the Brier score uses p unclipped


def test_single_class_gives_nan_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        m = calibration_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3, abs=1e-15)
    assert math.isnan(m["cal_intercept"]) and math.isnan(m["cal_slope"])
    assert "both classes" in caplog.text


def test_perfect_separation_gives_nan_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        a, b = recalibration_fit([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    assert math.isnan(a) and math.isnan(b) and "no finite fit" in caplog.text


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match=r"row 1 .* \[0, 1\]"):
        calibration_metrics([0, 1], [0.2, 1.2])


def test_reliability_curve_is_r_lowess_with_a_band():
    """The curve is statsmodels' lowess with R's lowess(p, y, iter = 0) settings (span 2/3, delta 1% of the
    range, no robustness iterations) on the grid; the band holds it."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    y, p = _miscalibrated(n=300)
    curve = reliability_curve(y, p, n_grid=51, n_boot=100, seed=0)
    assert list(curve.columns) == ["prob", "observed", "lower", "upper"] and len(curve) == 51
    assert curve["prob"].iloc[0] == p.min() and curve["prob"].iloc[-1] == p.max()
    fit = lowess(y, p, frac=2 / 3, it=0, delta=0.01 * (p.max() - p.min()))
    expected = np.clip(np.interp(curve["prob"], fit[:, 0], fit[:, 1]), 0, 1)  # the fit, between its points
    np.testing.assert_allclose(curve["observed"], expected, rtol=0, atol=1e-12)
    assert curve["observed"].iloc[0] == pytest.approx(fit[0, 1], abs=1e-12)
    mid = curve.iloc[10:41]
    assert (mid["lower"] <= mid["observed"] + 1e-12).all() and (mid["observed"] <= mid["upper"] + 1e-12).all()
    assert (mid["upper"] - mid["lower"]).min() > 0
    again = reliability_curve(y, p, n_grid=51, n_boot=100, seed=0)
    assert again.equals(curve)  # seeded


def test_matches_base_r_glm_and_lowess(fixtures_dir):
    """R 4.2's glm(y ~ logit) / glm(y ~ offset(logit)) and lowess(p, y, iter = 0) on the same 200 cases
    (tests/fixtures/calibration_r.R; rows 1-2 are saturated predictions p = 0 and 1)."""
    import json

    import pandas as pd

    d = pd.read_csv(fixtures_dir / "calibration_r.csv")
    gold = json.loads((fixtures_dir / "calibration_r.json").read_text())
    m = calibration_metrics(d["y"].to_numpy(), d["p"].to_numpy())
    assert m["brier"] == pytest.approx(gold["brier"], abs=1e-15)
    assert m["cal_intercept"] == pytest.approx(gold["cal_intercept"], abs=TOL)
    assert m["cal_slope"] == pytest.approx(gold["cal_slope"], abs=TOL)
    assert recalibration_fit(d["y"], d["p"]) == pytest.approx((gold["recal_intercept"], gold["cal_slope"]), abs=TOL)
    curve = reliability_curve(d["y"], d["p"], n_grid=201, n_boot=10)
    expected = np.clip(np.interp(curve["prob"], gold["lowess_x"], gold["lowess_y"]), 0, 1)  # 200 distinct p
    # statsmodels skips points within delta (1% of the range) slightly differently from R's clowess: 1e-5 here
    np.testing.assert_allclose(curve["observed"], expected, rtol=0, atol=5e-5)
