"""Threshold metrics of a malignancy probability: Wilson CIs, Youden threshold as pROC picks it.

Decision rule used everywhere in liver-mm: predict **malignant when prob >= threshold**
(pROC's ``direction='<'``: cases ``>=`` threshold are called positive, controls ``<`` negative).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from liver_mm.stats._inputs import check_binary, check_scores

log = logging.getLogger(__name__)

#: the metrics at a threshold, in report order: the keys of :func:`binary_metrics`, the columns of Table 3 and the
#: child runs' ``test_<name>`` metrics (the one list: liver_mm.training.evaluate and liver_mm.study.report.tables use it)
THRESHOLD_METRICS = ("accuracy", "sensitivity", "specificity")
#: what each metric comes with: value, k, n, Wilson bounds (``accuracy``, ``accuracy_k``, ...)
THRESHOLD_SUFFIXES = ("", "_k", "_n", "_ci_low", "_ci_high")


@dataclass(frozen=True)
class Threshold:
    """An operating point: predict malignant when prob >= ``threshold``; metrics as fractions."""

    threshold: float
    sensitivity: float
    specificity: float
    accuracy: float


def wilson_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) for k successes out of n; bounds in [0, 1].

    statsmodels' ``proportion_confint(k, n, alpha, method="wilson")``, the same as R's
    ``binom::binom.confint(k, n, methods='wilson')`` and
    ``prop.test(k, n, correct=FALSE)$conf.int``. Raises ``ValueError`` when n < 1 or k not in [0, n].
    """
    if not (isinstance(n, int | np.integer) and isinstance(k, int | np.integer)):
        raise TypeError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if n < 1 or k < 0 or k > n:
        raise ValueError(f"wilson_ci needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    from statsmodels.stats.proportion import proportion_confint  # lazily: statsmodels takes ~0.5 s to import

    low, high = proportion_confint(int(k), int(n), alpha=alpha, method="wilson")
    # the interval of k = 0 (k = n) ends at 0 (1) exactly; statsmodels' arithmetic can land an ulp inside
    low = 0.0 if k == 0 else max(0.0, float(low))
    high = 1.0 if k == n else min(1.0, float(high))
    return float(low), float(high)


def binary_metrics(y_true: object, prob: object, threshold: float, alpha: float = 0.05) -> dict[str, float]:
    """Accuracy, sensitivity and specificity at a fixed threshold, each with k, n and Wilson bounds.

    y_true: (N,) 0/1 or benign/malignant; prob: (N,) probability of malignancy; a case is called
    malignant when ``prob >= threshold``. Keys: ``accuracy``, ``accuracy_k``, ``accuracy_n``,
    ``accuracy_ci_low``, ``accuracy_ci_high`` and the same for ``sensitivity`` (k = true
    positives, n = malignant cases) and ``specificity`` (k = true negatives, n = benign cases),
    plus ``threshold``. A metric whose n is 0 (e.g. specificity on an all-malignant set) is NaN
    with NaN bounds, and a warning is logged.
    """
    y = check_binary(y_true, require_both=False)
    p = check_scores(prob, y.size, "prob")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    pred = p >= threshold
    pos = y == 1
    counts = dict(zip(THRESHOLD_METRICS, (
        (int((pred == pos).sum()), int(y.size)),  # accuracy
        (int((pred & pos).sum()), int(pos.sum())),  # sensitivity
        (int((~pred & ~pos).sum()), int((~pos).sum())),  # specificity
    ), strict=True))
    out: dict[str, float] = {"threshold": float(threshold)}
    for name, (k, n) in counts.items():
        if n == 0:
            log.warning("%s undefined: no cases in its denominator", name)
            value, low, high = float("nan"), float("nan"), float("nan")
        else:
            value = k / n
            low, high = wilson_ci(k, n, alpha)
        out.update({name: value, f"{name}_k": k, f"{name}_n": n,
                    f"{name}_ci_low": low, f"{name}_ci_high": high})
    return out


def roc_thresholds(values: np.ndarray) -> np.ndarray:
    """pROC's candidate thresholds for sorted unique scores u (G,): (G+1,) = -inf, midpoints, +inf.

    Midpoints are ``(u[i] + u[i+1]) / 2`` (``u[i]/2 + u[i+1]/2`` beyond 1e100); when two scores are
    adjacent doubles the midpoint can round onto the lower one, and is then moved to the upper
    one so that the rule ``prob >= threshold`` still separates them (pROC's near-tie fix).
    """
    u = np.asarray(values, dtype=np.float64)
    lo = np.concatenate(([-np.inf], u))
    hi = np.concatenate((u, [np.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        t1 = (lo + hi) / 2
        t2 = lo / 2 + hi / 2
    t = np.where(np.abs(t1) > 1e100, t2, t1)
    inner = np.arange(1, t.size - 1)
    onto_lower = t[inner] == u[inner - 1]
    t[inner[onto_lower]] = u[inner[onto_lower]]
    return t


def youden_threshold(y_true: object, score: object) -> Threshold:
    """Threshold maximising Youden's J = sensitivity + specificity - 1, as pROC's
    ``coords(roc, 'best', best.method='youden')`` with ``direction='<'``.

    Candidates are pROC's thresholds (midpoints between adjacent distinct scores, plus ±inf).
    When several thresholds tie on J (compared exactly, as pROC does), pROC returns all of them
    in increasing threshold order; this returns the first, i.e. the lowest threshold (the most
    sensitive of the tied points). A frozen threshold is applied to new scores with
    :func:`binary_metrics`. If no finite cut beats calling every case malignant, the threshold is -inf.
    """
    y = check_binary(y_true)
    s = check_scores(score, y.size, "score")
    u, inv = np.unique(s, return_inverse=True)
    pos_g = np.bincount(inv, weights=(y == 1), minlength=u.size).astype(np.int64)
    neg_g = np.bincount(inv, weights=(y == 0), minlength=u.size).astype(np.int64)
    m, n = int(pos_g.sum()), int(neg_g.sum())
    # threshold j lies below unique value j: cases >= it are groups j.., controls < it groups ..j-1
    tn = np.concatenate(([0], np.cumsum(neg_g)))
    tp = m - np.concatenate(([0], np.cumsum(pos_g)))
    se, sp = tp / m, tn / n
    crit = se + sp
    best = int(np.flatnonzero(crit == crit.max())[0])
    thr = roc_thresholds(u)
    return Threshold(float(thr[best]), float(se[best]), float(sp[best]), float((tp[best] + tn[best]) / y.size))
