"""Turn dev/test predictions into the run's reported metrics (numpy + liver_mm.stats only).

The threshold is chosen on dev (Youden, as pROC picks it), frozen, then applied to test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liver_mm.data.schema import label_to_int
from liver_mm.stats import auc_ci, binary_metrics, youden_threshold

PRED_COLUMNS = ["case_id", "split", "label", "prob"]


def labels01(labels: pd.Series) -> np.ndarray:
    """'benign'/'malignant' -> 0/1 (N,) int; anything else raises (never silently benign)."""
    return label_to_int(labels)


def split_arrays(pred: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels 0/1, probabilities) of one split of a predictions table."""
    part = pred[pred["split"] == split]
    return labels01(part["label"]), part["prob"].to_numpy(dtype=float)


def test_metrics(pred: pd.DataFrame) -> dict[str, float]:
    """The run's final metrics from a predictions table (columns case_id, split, label, prob).

    Names: test_auc (+ _ci_low/_ci_high, DeLong), test_accuracy / test_sensitivity /
    test_specificity (+ Wilson _ci_low/_ci_high and the _k/_n counts), dev_auc, threshold.
    """
    y_dev, p_dev = split_arrays(pred, "dev")
    y_test, p_test = split_arrays(pred, "test")
    thr = youden_threshold(y_dev, p_dev)
    test = auc_ci(y_test, p_test)
    dev = auc_ci(y_dev, p_dev)
    out = {
        "test_auc": test.auc,
        "test_auc_ci_low": test.ci_low,
        "test_auc_ci_high": test.ci_high,
        "dev_auc": dev.auc,
        "threshold": float(thr.threshold),
    }
    bm = binary_metrics(y_test, p_test, float(thr.threshold))
    for name in ("accuracy", "sensitivity", "specificity"):
        for suffix in ("", "_ci_low", "_ci_high", "_k", "_n"):
            out[f"test_{name}{suffix}"] = float(bm[f"{name}{suffix}"])
    return out
