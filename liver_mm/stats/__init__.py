"""Clinical statistics validated against R (pROC 1.18, psych 2.2.9): numpy/scipy/pandas only.

Imports nothing of liver_mm and no torch: DeLong, Wilson, Youden, Holm, cohort tables, ICC, the corrected t-test,
calibration (Brier, intercept, slope, LOESS reliability curve) and decision curves (net benefit).

A probability is always the probability of malignancy; labels are 0 = benign, 1 = malignant
(``benign``/``malignant`` text is accepted). A case is called malignant when prob >= threshold.
"""

from liver_mm.stats._inputs import encode_labels
from liver_mm.stats.binary import (
    THRESHOLD_METRICS,
    THRESHOLD_SUFFIXES,
    Threshold,
    binary_metrics,
    roc_thresholds,
    wilson_ci,
    youden_threshold,
)
from liver_mm.stats.calibration import (
    calibration_in_the_large,
    calibration_metrics,
    recalibration_fit,
    reliability_curve,
)
from liver_mm.stats.cohort import (
    CATEGORICAL,
    CONTINUOUS,
    chi_square_p,
    format_p,
    mann_whitney_p,
    markdown_table,
    table1,
    table2,
)
from liver_mm.stats.compare import (
    ModelComparison,
    compare_models,
    comparison_families,
    comparison_pairs,
    delong_report,
    holm_adjust,
    holm_by_family,
)
from liver_mm.stats.decision import THRESHOLDS as DCA_THRESHOLDS
from liver_mm.stats.decision import decision_curves, net_benefit
from liver_mm.stats.delong import AucResult, DelongTest, auc_ci, delong_covariance, delong_test, placements
from liver_mm.stats.icc import FORMS as ICC_FORMS
from liver_mm.stats.icc import IccResult, icc
from liver_mm.stats.resampling import CorrectedTTest, compare_fold_aucs, corrected_resampled_ttest, size_ratio

__all__ = [
    "CATEGORICAL",
    "CONTINUOUS",
    "DCA_THRESHOLDS",
    "ICC_FORMS",
    "THRESHOLD_METRICS",
    "THRESHOLD_SUFFIXES",
    "AucResult",
    "CorrectedTTest",
    "DelongTest",
    "IccResult",
    "ModelComparison",
    "Threshold",
    "auc_ci",
    "binary_metrics",
    "calibration_in_the_large",
    "calibration_metrics",
    "chi_square_p",
    "compare_fold_aucs",
    "compare_models",
    "comparison_families",
    "comparison_pairs",
    "corrected_resampled_ttest",
    "decision_curves",
    "delong_covariance",
    "delong_report",
    "delong_test",
    "encode_labels",
    "format_p",
    "holm_adjust",
    "holm_by_family",
    "icc",
    "mann_whitney_p",
    "markdown_table",
    "net_benefit",
    "placements",
    "recalibration_fit",
    "reliability_curve",
    "roc_thresholds",
    "size_ratio",
    "table1",
    "table2",
    "wilson_ci",
    "youden_threshold",
]
