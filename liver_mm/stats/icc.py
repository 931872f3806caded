"""Intraclass correlations, the six Shrout & Fleiss (1979) forms as R's ``psych::ICC(lmer=FALSE)``.

ICC1/ICC1k: one-way random effects; ICC2/ICC2k: two-way random, absolute agreement;
ICC3/ICC3k: two-way mixed, consistency. The ``k`` forms are for the mean of the k raters.
CIs: Shrout & Fleiss F-based bounds for forms 1 and 3; McGraw & Wong (1996) bounds with
Satterthwaite degrees of freedom for form 2 (psych's formulas).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist

log = logging.getLogger(__name__)

FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")


@dataclass(frozen=True)
class IccResult:
    """One ICC form: estimate, its F test against ICC = 0 (F, df1, df2, one-sided p) and CI."""

    icc: float
    F: float
    df1: float
    df2: float
    p: float
    ci_low: float
    ci_high: float


def _mean_squares(x: np.ndarray) -> tuple[float, float, float, float]:
    """Two-way ANOVA without replication on x (n subjects, k raters): MSB, MSJ, MSE, MSW."""
    n, k = x.shape
    grand = x.mean()
    row = x.mean(axis=1, keepdims=True)
    col = x.mean(axis=0, keepdims=True)
    ss_b = k * float(((row - grand) ** 2).sum())
    ss_j = n * float(((col - grand) ** 2).sum())
    ss_e = float(((x - row - col + grand) ** 2).sum())
    msb = ss_b / (n - 1)
    msj = ss_j / (k - 1)
    mse = ss_e / ((n - 1) * (k - 1))
    msw = (ss_j + ss_e) / (n * (k - 1))  # within subjects: raters + residual
    return msb, msj, mse, msw


def icc(ratings: object, alpha: float = 0.05) -> dict[str, IccResult]:
    """All six ICC forms for ratings (n_subjects, k_raters), keyed ``ICC1 ... ICC3k``.

    Matches psych 2.2.9 ``ICC(x, lmer=FALSE)``; subjects with a missing rating are dropped (as
    psych's default ``missing=TRUE``) with a warning. Needs n >= 2 complete subjects and k >= 2.
    Ratings identical across raters give a residual mean square of 0 and an F of inf (p = 0).
    """
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"ratings must be (n_subjects, k_raters) with k >= 2, got shape {x.shape}")
    complete = np.isfinite(x).all(axis=1)
    if not complete.all():
        log.warning("ICC: dropping %d subject(s) with a missing rating", int((~complete).sum()))
        x = x[complete]
    n, k = x.shape
    if n < 2:
        raise ValueError(f"ICC needs at least 2 subjects with complete ratings, got {n}")
    msb, msj, mse, msw = _mean_squares(x)

    with np.errstate(divide="ignore", invalid="ignore"):
        icc1 = (msb - msw) / (msb + (k - 1) * msw)
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        icc1k = (msb - msw) / msb
        icc2k = (msb - mse) / (msb + (msj - mse) / n)
        icc3k = (msb - mse) / msb

        f1, df1n, df1d = msb / msw, n - 1, n * (k - 1)
        f3, df3n, df3d = msb / mse, n - 1, (n - 1) * (k - 1)
        p1, p3 = float(f_dist.sf(f1, df1n, df1d)), float(f_dist.sf(f3, df3n, df3d))
        q = 1 - alpha / 2
        f1l, f1u = f1 / f_dist.ppf(q, df1n, df1d), f1 * f_dist.ppf(q, df1d, df1n)
        f3l, f3u = f3 / f_dist.ppf(q, df3n, df3d), f3 * f_dist.ppf(q, df3d, df3n)

        # form 2: McGraw & Wong (1996) with Satterthwaite df v
        fj = msj / mse
        vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2u, f2l = f_dist.ppf(q, n - 1, v), f_dist.ppf(q, v, n - 1)
        denom = k * msj + (k * n - k - n) * mse
        l2 = n * (msb - f2u * mse) / (f2u * denom + n * msb)
        u2 = n * (f2l * msb - mse) / (denom + n * f2l * msb)

    rows = {
        "ICC1": (icc1, f1, df1n, df1d, p1, (f1l - 1) / (f1l + k - 1), (f1u - 1) / (f1u + k - 1)),
        "ICC2": (icc2, f3, df3n, df3d, p3, l2, u2),
        "ICC3": (icc3, f3, df3n, df3d, p3, (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)),
        "ICC1k": (icc1k, f1, df1n, df1d, p1, 1 - 1 / f1l, 1 - 1 / f1u),
        "ICC2k": (icc2k, f3, df3n, df3d, p3, l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
        "ICC3k": (icc3k, f3, df3n, df3d, p3, 1 - 1 / f3l, 1 - 1 / f3u),
    }
    return {name: IccResult(*(float(v) for v in vals)) for name, vals in rows.items()}
