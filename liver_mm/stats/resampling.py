"""Comparing two models over resampled train/test splits (cross-validation folds): the corrected t-test.

Pure numpy/scipy. The folds of a K-fold cross-validation repeated R times share training cases, so the
per-fold differences are correlated and the plain paired t-test is far too liberal; the Nadeau-Bengio
correction inflates the variance by the test/train size ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class CorrectedTTest:
    """The corrected resampled t-test of per-fold differences d (a - b).

    mean_diff, sd_diff: mean and sample SD (ddof=1) of d; t, df: the statistic and its degrees of
    freedom (J - 1); p_value: two-sided; ratio: n_test / n_train used; n_folds: J = K * R.
    """

    mean_diff: float
    sd_diff: float
    t: float
    df: int
    p_value: float
    ratio: float
    n_folds: int


def corrected_resampled_ttest(diffs: object, ratio: float) -> CorrectedTTest:
    """Nadeau-Bengio corrected resampled t-test of paired per-fold differences.

    diffs: (J,) per-fold differences d_j of a metric (e.g. AUC_a - AUC_b), J = K * R folds;
    ratio: n_test / n_train (>= 0), the mean test size over the mean training size.

    ``t = mean(d) / sqrt((1/J + n_test/n_train) * s^2)`` with ``s^2`` the sample variance of d
    (ddof=1), df = J - 1, two-sided p from Student's t. Nadeau C, Bengio Y (2003) "Inference for
    the generalization error", Machine Learning 52:239-281; the form for repeated K-fold
    cross-validation of Bouckaert RR, Frank E (2004), PAKDD, LNCS 3056:3-12. ratio = 0 gives the
    ordinary one-sample t-test (``scipy.stats.ttest_1samp(d, 0)``).

    Zero variance: mean 0 gives t = 0, p = 1; a non-zero mean gives t = +-inf, p = 0 (every fold
    agrees exactly, there is no variation to test against). Raises ``ValueError`` for J < 2,
    non-finite differences or a negative/non-finite ratio.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"diffs must be a 1-D array of per-fold differences, got shape {d.shape}")
    if d.size < 2:
        raise ValueError(f"the corrected t-test needs at least 2 folds, got {d.size}")
    if not np.isfinite(d).all():
        raise ValueError(f"diffs must be finite; fold(s) {np.flatnonzero(~np.isfinite(d)).tolist()} are not")
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"ratio (n_test / n_train) must be a finite number >= 0, got {ratio}")
    j = int(d.size)
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    if var == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t = mean / math.sqrt((1.0 / j + ratio) * var)
        p = float(2.0 * stats.t.sf(abs(t), j - 1))
    return CorrectedTTest(mean_diff=mean, sd_diff=math.sqrt(var), t=float(t), df=j - 1, p_value=min(1.0, p),
                          ratio=ratio, n_folds=j)


def size_ratio(n_test: object, n_train: object) -> float:
    """mean(n_test) / mean(n_train) over the folds: (J,) case counts, all positive."""
    te, tr = np.asarray(n_test, dtype=np.float64), np.asarray(n_train, dtype=np.float64)
    if te.ndim != 1 or te.shape != tr.shape or te.size == 0:
        raise ValueError(f"n_test and n_train must be 1-D of one length per fold, got shapes {te.shape}, {tr.shape}")
    if not (np.isfinite(te).all() and np.isfinite(tr).all() and (te > 0).all() and (tr > 0).all()):
        raise ValueError("fold sizes n_test and n_train must be positive counts")
    return float(te.mean() / tr.mean())


def compare_fold_aucs(auc_a: object, auc_b: object, n_test: object, n_train: object) -> CorrectedTTest:
    """Corrected resampled t-test of arm a vs arm b over folds (difference a - b).

    auc_a, auc_b: (J,) per-fold test AUCs, aligned by (repeat, fold); n_test, n_train: (J,) the
    fold's test and training case counts (training = the cases outside the test fold that the arm
    learned from, dev included when it is used for early stopping/thresholds). ratio =
    mean(n_test) / mean(n_train), see :func:`corrected_resampled_ttest`.
    """
    a, b = np.asarray(auc_a, dtype=np.float64), np.asarray(auc_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"auc_a and auc_b must be 1-D, one AUC per fold, same length; got {a.shape}, {b.shape}")
    for name, x in (("auc_a", a), ("auc_b", b)):
        bad = ~(np.isfinite(x) & (x >= 0) & (x <= 1))
        if bad.any():
            raise ValueError(f"{name}: fold(s) {np.flatnonzero(bad).tolist()} are not AUCs in [0, 1]")
    ratio = size_ratio(n_test, n_train)
    if np.asarray(n_test).shape != a.shape:
        raise ValueError(f"fold sizes have shape {np.asarray(n_test).shape}, the AUCs {a.shape}")
    return corrected_resampled_ttest(a - b, ratio)
