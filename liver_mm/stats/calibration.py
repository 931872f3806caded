"""Calibration of predicted probabilities: Brier score, calibration intercept and slope, reliability curve.

What is matched (y = 0/1 outcome, p = predicted probability of malignancy, L = logit(p)):

* ``brier``: ``sklearn.metrics.brier_score_loss(y, p)`` = mean((p - y)^2), on the unclipped p.
* ``cal_slope``: the slope b of the logistic recalibration ``logit P(y=1) = a + b * L`` (maximum likelihood;
  the ``Slope`` of R's ``rms::val.prob``, which fits ``lrm(y ~ L)``). 1 is ideal; < 1: predictions too
  extreme (overfitting), > 1: too timid.
* ``cal_intercept``: calibration-in-the-large, the intercept a of ``logit P(y=1) = a + 1 * L`` (L as an
  offset, slope fixed at 1). 0 is ideal; < 0: the model over-predicts malignancy on average, > 0: it
  under-predicts. This is the "calibration intercept" of Van Calster et al. 2016/2019 and of
  ``CalibrationCurves::val.prob.ci.2``; it is NOT ``rms::val.prob``'s ``Intercept``, which is the a of the
  same fit as the slope (a mixture of mean calibration and spread). That one is :func:`recalibration_fit`'s
  first value, for a reader who wants val.prob's pair.

Both fits are statsmodels logistic GLMs (IRLS, Binomial family, canonical logit link). p is clipped to
[1e-15, 1 - 1e-15] before the logit only (the clip sklearn's log_loss long used): a float32 sigmoid returns
exactly 1.0 beyond a logit of ~17 (and 0.0 below ~-89), whose logit is infinite. The clip keeps L finite
(|L| <= 34.5); it moves only p < 1e-15 and p = 1 exactly (float32's largest value below 1 is 1 - 6e-8).
A saturated prediction that is wrong then weighs heavily on the slope, as a confident error should.
Labels 0 = benign, 1 = malignant.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.metrics import brier_score_loss

from liver_mm.stats._inputs import check_binary, check_scores

log = logging.getLogger(__name__)
#: probabilities are clipped to [EPS, 1 - EPS] before the logit (see the module docstring)
EPS = 1e-15
_GLM_TOL = 1e-12
#: R's lowess default span, as rms::val.prob uses it (lowess(p, y, iter=0))
LOESS_FRAC = 2.0 / 3.0


def _inputs(y_true: object, prob: object, require_both: bool) -> tuple[np.ndarray, np.ndarray]:
    y = check_binary(y_true, require_both=require_both).astype(np.float64)
    p = check_scores(prob, y.size, "prob")
    bad = (p < 0) | (p > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"prob: row {i} (0-based) is {p[i]}; probabilities must lie in [0, 1]")
    return y, p


def clipped_logit(prob: np.ndarray) -> np.ndarray:
    """logit(p) of (N,) probabilities clipped to [EPS, 1 - EPS] (finite, |L| <= 34.54)."""
    return logit(np.clip(np.asarray(prob, dtype=np.float64), EPS, 1.0 - EPS))


def _glm(y: np.ndarray, exog: np.ndarray, offset: np.ndarray | None) -> np.ndarray | None:
    """Coefficients of a logistic GLM, or None when the fit does not exist (separation, no convergence)."""
    import statsmodels.api as sm  # lazily: ~0.5 s to import, and liver_mm.stats is imported everywhere
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    with warnings.catch_warnings():
        for kind in (PerfectSeparationWarning, ConvergenceWarning):  # statsmodels warns, does not raise
            warnings.simplefilter("error", kind)
        try:
            res = sm.GLM(y, exog, family=sm.families.Binomial(), offset=offset).fit(tol=_GLM_TOL, maxiter=100)
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError, ValueError) as exc:
            log.warning("calibration GLM has no finite fit (%s): reported as NaN", exc)
            return None
    params = np.asarray(res.params, dtype=np.float64)
    if not (res.converged and np.all(np.isfinite(params))):
        log.warning("calibration GLM did not converge to a finite fit: reported as NaN")
        return None
    return params


def recalibration_fit(y_true: object, prob: object) -> tuple[float, float]:
    """(a, b) of the logistic recalibration ``logit P(y=1) = a + b * logit(p)``: ``rms::val.prob``'s
    ``Intercept`` and ``Slope``. NaN, NaN (with a logged warning) when the fit does not exist."""
    y, p = _inputs(y_true, prob, require_both=True)
    lp = clipped_logit(p)
    params = _glm(y, np.column_stack([np.ones_like(lp), lp]), None)
    return (math.nan, math.nan) if params is None else (float(params[0]), float(params[1]))


def calibration_in_the_large(y_true: object, prob: object) -> float:
    """Intercept a of ``logit P(y=1) = a + logit(p)`` (logit(p) as an offset): 0 when the mean predicted
    risk matches the observed rate. NaN (with a logged warning) when the fit does not exist."""
    y, p = _inputs(y_true, prob, require_both=True)
    params = _glm(y, np.ones((y.size, 1)), clipped_logit(p))
    return math.nan if params is None else float(params[0])


def calibration_metrics(y_true: object, prob: object) -> dict[str, float]:
    """``{"brier", "cal_intercept", "cal_slope"}`` of (N,) labels 0/1 and (N,) probabilities in [0, 1].

    brier: ``sklearn.metrics.brier_score_loss``; cal_intercept: calibration-in-the-large (slope fixed at 1);
    cal_slope: ``rms::val.prob``'s Slope (see the module docstring). With a single class present the
    intercept and slope are NaN (no finite fit) and a warning is logged; the Brier score is still given.
    """
    y, p = _inputs(y_true, prob, require_both=False)
    out = {"brier": float(brier_score_loss(y, p)), "cal_intercept": math.nan, "cal_slope": math.nan}
    if 0 < y.sum() < y.size:
        out["cal_intercept"] = calibration_in_the_large(y, p)
        out["cal_slope"] = recalibration_fit(y, p)[1]
    else:
        log.warning("calibration intercept/slope need both classes (%d cases, all %s): NaN", y.size,
                    "malignant" if y.sum() else "benign")
    return out


def _lowess_on(grid: np.ndarray, y: np.ndarray, p: np.ndarray, frac: float) -> np.ndarray:
    """LOESS of y on p evaluated on ``grid`` (NaN outside p's range): R's ``lowess(p, y, iter=0)`` with its
    other defaults (span ``frac`` 2/3, ``delta`` 1% of the range of p); statsmodels' lowess, which skips points
    within delta a little differently from R's C code (1e-5 apart on tests/fixtures/calibration_r.csv)."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    fit = lowess(y, p, frac=frac, it=0, delta=0.01 * float(np.ptp(p)), return_sorted=True)
    xs, ys = fit[:, 0], fit[:, 1]
    xs, keep = np.unique(xs, return_index=True)  # ties: statsmodels gives equal fitted values
    inside = (grid >= xs[0]) & (grid <= xs[-1])
    return np.where(inside, np.interp(grid, xs, np.clip(ys[keep], 0.0, 1.0)), np.nan)


def reliability_curve(y_true: object, prob: object, n_grid: int = 101, n_boot: int = 200, level: float = 0.95,
                      frac: float = LOESS_FRAC, seed: int = 0) -> pd.DataFrame:
    """Smoothed reliability curve with a bootstrap band: DataFrame(prob, observed, lower, upper), n_grid rows.

    ``observed`` is the LOESS of the outcome on the predicted probability as ``rms::val.prob`` draws it
    (R's ``lowess(p, y, iter=0)``: span 2/3, no robustness iterations), clipped to [0, 1], on ``n_grid``
    equally spaced probabilities between the smallest and largest prediction (never extrapolated).
    ``lower``/``upper``: the percentile band (``level``) of the same LOESS over ``n_boot`` case
    resamples (seeded), each evaluated only inside its own resample's range (NaN where fewer than half
    of the resamples cover a grid point). LOESS rather than bins: no arbitrary bin edges on ~100 cases.
    """
    y, p = _inputs(y_true, prob, require_both=False)
    if np.ptp(p) == 0:
        raise ValueError("reliability_curve: all predictions are equal; there is no curve to draw")
    grid = np.linspace(p.min(), p.max(), int(n_grid))
    observed = _lowess_on(grid, y, p, frac)
    rng = np.random.default_rng(seed)
    boots = np.full((int(n_boot), grid.size), np.nan)
    for b in range(int(n_boot)):
        idx = rng.integers(0, y.size, y.size)
        if np.ptp(p[idx]) > 0:
            boots[b] = _lowess_on(grid, y[idx], p[idx], frac)
    enough = np.sum(~np.isnan(boots), axis=0) >= max(1, int(n_boot) // 2)
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are masked below
        lo = np.nanquantile(boots, alpha, axis=0)
        hi = np.nanquantile(boots, 1.0 - alpha, axis=0)
    return pd.DataFrame({"prob": grid, "observed": observed, "lower": np.where(enough, lo, np.nan),
                         "upper": np.where(enough, hi, np.nan)})


__all__ = ["EPS", "calibration_in_the_large", "calibration_metrics", "clipped_logit", "recalibration_fit",
           "reliability_curve"]
