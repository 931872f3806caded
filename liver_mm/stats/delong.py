"""AUC with DeLong variance, and the paired DeLong test, as R's pROC computes them.

Fast algorithm of Sun & Xu (2014, IEEE Signal Process. Lett. 21:1389): the placement
values (structural components) of DeLong et al. (1988) come from midranks, so the whole
computation is O(N log N). Conventions follow pROC 1.18 with ``direction='<'`` (a higher
score means more likely malignant) and ties counted as 1/2.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from liver_mm.stats._inputs import check_binary, check_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AucResult:
    """AUC with its DeLong variance and two-sided CI (clipped to [0, 1])."""

    auc: float
    var: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int


@dataclass(frozen=True)
class DelongTest:
    """Paired DeLong test of two correlated AUCs on the same cases (diff = auc_a - auc_b).

    ``cov`` is the DeLong covariance of the two AUC estimates (pROC's ``cov(method='delong')``).
    """

    auc_a: float
    auc_b: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    z: float
    p_value: float
    cov: float


def _scores_matrix(y_true: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    y = check_binary(y_true)
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores: not a numeric (k, N) array ({exc})") from None
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise ValueError(f"scores must have shape (k, N), got {s.shape}")
    s = np.stack([check_scores(row, y.size, name=f"scores[{i}]") for i, row in enumerate(s)])
    return y, s


def _placements_1d(y: np.ndarray, s: np.ndarray, m: int, n: int) -> tuple[float, np.ndarray]:
    """pROC's AUC and the placement value of every case for one score s (N,).

    One sort gives the tie groups; per group the counts of positives and negatives give the
    midrank differences of Sun & Xu: for a positive, ``(Tz - Tx) / n`` = (negatives below +
    half the tied negatives) / n; for a negative, ``(m - (Tz - Ty)) / m`` = (positives above + half
    the tied positives) / m. Exact half-integers divided once, so identical to the rankdata form.
    """
    order = np.argsort(s, kind="quicksort")
    ss, ys = s[order], y[order]
    new = np.empty(ss.size, dtype=bool)
    new[0] = True
    np.not_equal(ss[1:], ss[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    pos_g = np.add.reduceat(ys.astype(np.int64), starts)  # positives per tie group, ascending score
    neg_g = np.diff(np.append(starts, ss.size)) - pos_g
    neg_below = np.cumsum(neg_g) - neg_g
    pos_above = m - np.cumsum(pos_g)
    gid = np.cumsum(new) - 1
    v_pos = (neg_below + 0.5 * neg_g) / n  # per group, value for a positive
    v_neg = (pos_above + 0.5 * pos_g) / m  # per group, value for a negative
    v_sorted = np.where(ys == 1, v_pos[gid], v_neg[gid])
    v = np.empty_like(v_sorted)
    v[order] = v_sorted
    # pROC's AUC: trapezoids of the empirical ROC (specificity increasing), summed in order in
    # extended precision like R's sum(), so the value is bit-identical to pROC's auc().
    tp = np.concatenate(([0], np.cumsum(pos_g[::-1])))[::-1]
    fp = np.concatenate(([0], np.cumsum(neg_g[::-1])))[::-1]
    se, sp = tp / m, (n - fp) / n
    terms = (se[1:] + se[:-1]) / 2 * (sp[1:] - sp[:-1])
    auc = float(np.cumsum(terms.astype(np.longdouble))[-1])
    return auc, v


def placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong placement values from midranks (Sun & Xu 2014), O(N log N).

    y: (N,) int 0/1; s: (k, N) scores. Returns ``aucs`` (k,) as pROC's ``auc()``, ``v10`` (k, m)
    for the m positives (fraction of negatives below each positive, ties 1/2) and ``v01`` (k, n)
    for the n negatives (fraction of positives above each negative, ties 1/2);
    ``v10.mean(1) == v01.mean(1) == aucs`` up to rounding.
    """
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    aucs = np.empty(s.shape[0])
    v10 = np.empty((s.shape[0], m))
    v01 = np.empty((s.shape[0], n))
    for i, row in enumerate(s):
        aucs[i], v = _placements_1d(y, row, m, n)
        v10[i], v01[i] = v[pos], v[~pos]
    return aucs, v10, v01


def _cov_rows(v: np.ndarray) -> np.ndarray:
    """Sample covariance (ddof=1) of the rows of v (k, m); zeros when m == 1 (undefined)."""
    k, m = v.shape
    if m < 2:
        return np.zeros((k, k))
    d = v - v.mean(axis=1, keepdims=True)
    return d @ d.T / (m - 1)


def _placements_warned(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """:func:`placements` plus (m, n) = (#positive, #negative), warning when a class has one case."""
    aucs, v10, v01 = placements(y, s)
    m, n = v10.shape[1], v01.shape[1]
    if min(m, n) < 2:
        log.warning("DeLong variance with %d positive / %d negative case(s): the single-case class "
                    "contributes 0 to the variance (undefined); the CI is too narrow", m, n)
    return aucs, v10, v01, m, n


def delong_covariance(y_true: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of k scores on the same cases and their DeLong covariance.

    y_true: (N,) 0/1 (1 = malignant) or benign/malignant; scores: (k, N) or (N,).
    Returns ``aucs`` (k,) and ``cov`` (k, k) = S10/m + S01/n (pROC's ``var``/``cov``, method
    'delong'). With a single case in a class its placement covariance is undefined (0/0 in
    pROC); it is taken as 0 here, with a warning, so the result is finite but optimistic.
    """
    y, s = _scores_matrix(y_true, scores)
    aucs, v10, v01, m, n = _placements_warned(y, s)
    cov = _cov_rows(v10) / m + _cov_rows(v01) / n
    return aucs, cov


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def auc_ci(y_true: object, score: object, alpha: float = 0.05) -> AucResult:
    """AUC of one score with DeLong variance and ``1 - alpha`` CI ``auc ± z*sqrt(var)`` clipped to [0, 1].

    Same as pROC's ``ci.auc(method='delong')``. A perfect separation gives var = 0, CI = [auc, auc].
    """
    y = check_binary(y_true)
    aucs, cov = delong_covariance(y, check_scores(score, y.size, "score")[None, :])
    auc, var = float(aucs[0]), max(float(cov[0, 0]), 0.0)
    half = norm.ppf(1.0 - alpha / 2.0) * np.sqrt(var)
    n_pos = int(y.sum())
    return AucResult(auc, var, _clip01(auc - half), _clip01(auc + half), n_pos, int(y.size - n_pos))


def delong_test(y_true: object, score_a: object, score_b: object, alpha: float = 0.05) -> DelongTest:
    """Two-sided paired DeLong test of AUC(a) = AUC(b), as pROC's ``roc.test(method='delong', paired=TRUE)``.

    ``z = (auc_a - auc_b) / sd`` with ``sd² = var_a + var_b - 2 cov`` computed directly from the
    placement differences (exact zero for identical scores). CI of the difference: diff ± z_{1-alpha/2}·sd.

    Zero variance of the difference (both scores separate perfectly, identical scores, or scores
    whose placements differ by a constant): if diff == 0 there is no evidence of a difference,
    so z = 0, p = 1 (pROC returns the same, replacing its 0/0 by 0); if diff != 0 the
    difference is certain under the model, so z = ±inf, p = 0 (pROC's diff/0). The CI is then
    [diff, diff]. Never NaN.
    """
    y = check_binary(y_true)
    s = np.stack([check_scores(score_a, y.size, "score_a"), check_scores(score_b, y.size, "score_b")])
    aucs, v10, v01, m, n = _placements_warned(y, s)
    cov = _cov_rows(v10) / m + _cov_rows(v01) / n
    var_diff = float(_cov_rows(v10[:1] - v10[1:])[0, 0] / m + _cov_rows(v01[:1] - v01[1:])[0, 0] / n)
    sd = np.sqrt(max(var_diff, 0.0))
    diff = float(aucs[0] - aucs[1])
    if sd > 0:
        z = diff / sd
        p = float(2.0 * norm.sf(abs(z)))
    elif diff == 0:
        z, p = 0.0, 1.0
    else:
        z, p = float(np.copysign(np.inf, diff)), 0.0
    half = float(norm.ppf(1.0 - alpha / 2.0) * sd)
    return DelongTest(float(aucs[0]), float(aucs[1]), diff, diff - half, diff + half, float(z), p,
                      float(cov[0, 1]))
