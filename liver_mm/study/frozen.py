"""Comparing a study's arms on cases seen after their thresholds were frozen (an external cohort): Table 3 and the
DeLong table as :func:`liver_mm.study.compare.compare_study` gives them for the test split, each arm called at the
threshold it was trained with instead of one chosen on dev here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liver_mm.stats import encode_labels
from liver_mm.study.compare import StudyComparison, assemble_comparison, check_order
from liver_mm.training.evaluate import frozen_metrics


def compare_frozen(
    test: pd.DataFrame,
    order: Sequence[str],
    thresholds: Mapping[str, float],
    reference: str = "m1",
    alpha: float = 0.05,
    descriptions: Mapping[str, str] | None = None,
    families: Mapping[str, Sequence[str]] | None = None,
    selection_dev_auc: Mapping[str, float] | None = None,
) -> StudyComparison:
    """Table 3 and the DeLong table of arms whose thresholds were frozen before these cases (an external cohort).

    test: (N, 2 + k) case_id, label (benign/malignant) and one probability column per arm of ``order``;
    thresholds: arm -> its frozen threshold (malignant when prob >= threshold), never chosen on ``test``;
    selection_dev_auc: arm -> the dev AUC that chose its epoch in training (Table 3's column; NaN when absent).
    Raises ``ValueError`` naming a missing arm column or threshold, or a label that is not benign/malignant.
    """
    order = check_order(order, reference, {c: None for c in test.columns})
    missing = [a for a in order if a not in thresholds]
    if missing:
        raise ValueError(f"no frozen threshold for arm(s) {missing}")
    test = test[["case_id", "label", *order]].reset_index(drop=True)
    y = encode_labels(test["label"].to_numpy(dtype=object), name="column 'label'")
    desc, dev = dict(descriptions or {}), dict(selection_dev_auc or {})
    rows = [{"arm": arm, "description": desc.get(arm, ""),
             **frozen_metrics(y, test[arm].to_numpy(dtype=np.float64), float(thresholds[arm]), alpha),
             "selection_dev_auc": dev.get(arm, math.nan)} for arm in order]
    return assemble_comparison(test, order, reference, rows, alpha, families)


