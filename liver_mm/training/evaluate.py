"""Predictions -> the reported numbers of one model (numpy + liver_mm.stats only).

The threshold is chosen on dev (Youden, as pROC picks it), frozen, then applied to test. The
dev AUC is the checkpoint-selection metric: it is reported as ``selection_dev_auc`` and never
beside the test AUC as if comparable (dev chose the epoch, so it is optimistic).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from liver_mm.stats import (
    THRESHOLD_METRICS,
    THRESHOLD_SUFFIXES,
    auc_ci,
    binary_metrics,
    calibration_metrics,
    youden_threshold,
)
from liver_mm.stats._inputs import encode_labels

log = logging.getLogger(__name__)
METRICS = THRESHOLD_METRICS  # accuracy, sensitivity, specificity (liver_mm.stats.binary: the one list)
COUNT_SUFFIXES = THRESHOLD_SUFFIXES


class DegenerateThresholdError(ValueError):
    """The dev predictions give no cut that separates anything: every case would get one label."""


def split_arrays(pred: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels 0/1, probabilities) of one split of a predictions table (case_id, split, label, prob)."""
    part = pred[pred["split"] == split]
    return encode_labels(part["label"].to_numpy(dtype=object)), part["prob"].to_numpy(dtype=float)


def split_metrics(y_dev: np.ndarray, p_dev: np.ndarray, y_test: np.ndarray, p_test: np.ndarray,
                  alpha: float = 0.05) -> dict[str, float]:
    """One model's numbers from dev and test predictions (labels (n,) 0/1, probabilities (n,)).

    Keys: n_test, n_malignant, n_benign, auc (+ _ci_low/_ci_high, DeLong), accuracy / sensitivity /
    specificity at the frozen dev-Youden threshold (+ _k, _n, Wilson _ci_low/_ci_high), threshold,
    selection_dev_auc.
    """
    thr = float(youden_threshold(y_dev, p_dev).threshold)
    out = frozen_metrics(y_test, p_test, thr, alpha=alpha)
    out["selection_dev_auc"] = auc_ci(y_dev, p_dev, alpha=alpha).auc
    return out


def frozen_metrics(y: np.ndarray, p: np.ndarray, threshold: float, alpha: float = 0.05) -> dict[str, float]:
    """Numbers of one model on evaluation cases (labels (n,) 0/1, probabilities (n,)) at a threshold frozen
    before them (malignant when p >= threshold): n_test, n_malignant, n_benign, auc (+ _ci_low/_ci_high, DeLong),
    accuracy / sensitivity / specificity (+ _k, _n, Wilson _ci_low/_ci_high), threshold."""
    test = auc_ci(y, p, alpha=alpha)
    out: dict[str, float] = {"n_test": int(len(y)), "n_malignant": test.n_pos, "n_benign": test.n_neg,
                             "auc": test.auc, "auc_ci_low": test.ci_low, "auc_ci_high": test.ci_high}
    bm = binary_metrics(y, p, float(threshold), alpha=alpha)
    for name in METRICS:
        for suffix in COUNT_SUFFIXES:
            out[f"{name}{suffix}"] = float(bm[f"{name}{suffix}"])
    out["threshold"] = float(threshold)
    return out


def check_threshold(threshold: float, p_dev: np.ndarray, dev_auc: float) -> None:
    """Raise :class:`DegenerateThresholdError` when the frozen threshold puts every dev case on one side
    (an infinite cut, e.g. from a constant dev score or a dev AUC at or below 0.5)."""
    lo, hi = float(np.min(p_dev)), float(np.max(p_dev))
    if not math.isfinite(threshold) or threshold <= lo or threshold > hi:
        side = "malignant" if threshold <= lo else "benign"
        raise DegenerateThresholdError(
            f"no usable threshold: the dev predictions (AUC {dev_auc:.3f}, probabilities {lo:.3g}-{hi:.3g}) give "
            f"a Youden threshold of {threshold:.3g}, which calls every case {side}. The model learnt nothing "
            "usable on dev. Train longer, check the labels, or use a larger dev part.")


def run_metrics(pred: pd.DataFrame, allow_degenerate: bool = False) -> dict[str, float]:
    """The run's logged metrics from a predictions table (columns case_id, split, label, prob).

    Names: ``test_`` + each :func:`split_metrics` key and the test split's calibration (``test_brier``,
    ``test_cal_intercept``, ``test_cal_slope``: :func:`liver_mm.stats.calibration_metrics`), except ``threshold`` and ``selection_dev_auc``
    (as they are). Raises :class:`DegenerateThresholdError` for a threshold that separates nothing,
    unless ``allow_degenerate`` (a cross-validation fold, whose test cases must still be predicted and
    which delivers no model): then it is logged as a warning and the metric ``threshold_degenerate`` is 1.
    """
    y_dev, p_dev = split_arrays(pred, "dev")
    y_test, p_test = split_arrays(pred, "test")
    m = split_metrics(y_dev, p_dev, y_test, p_test)
    m.update(calibration_metrics(y_test, p_test))  # brier, cal_intercept, cal_slope (test split)
    try:
        check_threshold(m["threshold"], p_dev, m["selection_dev_auc"])
        m["threshold_degenerate"] = 0.0
    except DegenerateThresholdError as exc:
        if not allow_degenerate:
            raise
        log.warning("%s (kept: a cross-validation fold)", exc)
        m["threshold_degenerate"] = 1.0
    if m["selection_dev_auc"] < 0.5:
        log.warning("dev AUC %.3f is below 0.5: the model ranks dev cases worse than chance", m["selection_dev_auc"])
    keep = {"threshold", "selection_dev_auc", "threshold_degenerate"}
    return {(k if k in keep else f"test_{k}"): float(v) for k, v in m.items()}
