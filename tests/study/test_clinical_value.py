"""Study-level calibration, decision curves and lesion sizes: equal to the stats functions on each arm's test cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.metrics import brier_score_loss

from liver_mm.study.clinical_value import (
    calibration_table,
    decision_table,
    format_cutoffs,
    format_importance,
    write_calibration_and_dca,
)
from liver_mm.study.compare import compare_study
from liver_mm.study.lesion_size import lesion_size_table
from tests.study.test_compare import make_predictions

ARMS = ["m1", "m5", "tab_logreg"]


@pytest.fixture(scope="module")
def comparison():
    n = 240
    rng = np.random.default_rng(3)
    case_ids = [f"C{i:04d}" for i in range(n)]
    labels = np.where(rng.random(n) < 0.5, "malignant", "benign")
    splits = np.array(["train", "dev", "test"])[rng.integers(0, 3, n)]
    preds = make_predictions(case_ids, labels, splits, arms=ARMS)
    return compare_study(preds, ARMS, reference="m1")


def test_calibration_table_is_sklearn_and_a_glm_on_each_arms_test_predictions(comparison):
    table = calibration_table(comparison).set_index("arm")
    y = comparison.y_test
    for arm in ARMS:
        p = comparison.prob(arm)
        assert table.at[arm, "brier"] == brier_score_loss(y, p)
        logit = np.log(p / (1 - p))
        slope = sm.GLM(y, sm.add_constant(logit), family=sm.families.Binomial()).fit().params[1]
        intercept = sm.GLM(y, np.ones_like(logit), family=sm.families.Binomial(), offset=logit).fit().params[0]
        assert table.at[arm, "cal_slope"] == pytest.approx(slope, abs=1e-6)
        assert table.at[arm, "cal_intercept"] == pytest.approx(intercept, abs=1e-6)
        assert table.at[arm, "n_test"] == y.size


def test_decision_table_has_the_issue_columns_and_net_benefit(comparison):
    dca = decision_table(comparison)
    assert list(dca.columns) == ["arm", "threshold", "net_benefit", "treat_all"]
    assert list(dict.fromkeys(dca["arm"])) == ARMS and len(dca) == 3 * 99
    y, p = comparison.y_test, comparison.prob("m5")
    row = dca[(dca["arm"] == "m5") & (dca["threshold"] == 0.3)].iloc[0]
    pos = p >= 0.3
    expected = (pos & (y == 1)).sum() / y.size - (pos & (y == 0)).sum() / y.size * 0.3 / 0.7
    assert row["net_benefit"] == pytest.approx(expected, abs=1e-12)
    assert row["treat_all"] == pytest.approx(y.mean() - (1 - y.mean()) * 0.3 / 0.7, abs=1e-12)


def test_study_files_are_written(comparison, tmp_path):
    tables = write_calibration_and_dca(comparison, tmp_path, synthetic=True)
    for name in ("calibration.csv", "calibration.md", "calibration.png", "decision_curve.csv", "decision_curve.png"):
        assert (tmp_path / name).is_file(), name
    assert pd.read_csv(tmp_path / "calibration.csv")["arm"].tolist() == ARMS
    assert tables["calibration"]["brier"].notna().all()


def test_importance_and_cutoff_tables_as_text():
    imp = pd.DataFrame({"arm": ["m5", "m5", "tab_logreg"], "feature": ["age", "ast", "age"],
                        "auc_drop_mean": [0.1, 0.0, 0.25], "auc_drop_sd": [0.01, 0.0, 0.05], "n_repeats": 10})
    wide = format_importance(imp)
    assert wide.columns.tolist() == ["Lab", "m5", "tab_logreg"]
    assert wide.loc[wide["Lab"] == "ast", "tab_logreg"].item() == "–"
    assert wide.loc[wide["Lab"] == "age", "tab_logreg"].item() == "0.250 ± 0.050"
    cut = pd.DataFrame({"arm": ["fib4"], "cutoff": [1.45], "sensitivity": [0.9], "sensitivity_k": [9],
                        "sensitivity_n": [10], "sensitivity_ci_low": [0.596], "sensitivity_ci_high": [0.982],
                        "specificity": [0.6], "specificity_k": [6], "specificity_n": [10],
                        "specificity_ci_low": [0.313], "specificity_ci_high": [0.832]})
    row = format_cutoffs(cut).iloc[0]
    assert row["Cut-off"] == "1.45" and row["Sensitivity (n/N; 95% CI)"] == "90.0% (9/10; 59.6–98.2)"


def test_lesion_size_counts_uncalibrated_rows_and_never_guesses():
    df = pd.DataFrame({"label": ["benign", "malignant", "malignant", "benign"],
                       "bbox_w_mm": [10.0, 20.0, np.nan, 30.0], "bbox_h_mm": [5.0, 6.0, np.nan, 7.0]})
    t = lesion_size_table(df).set_index("class")
    assert t.loc["malignant", "calibrated"] == "1/2"
    assert t.loc["benign", "width_mm"] == "20.0 (15.0–25.0)"
    assert t.loc["all", "height_mm"] == "6.0 (5.5–6.5)"
    with pytest.raises(ValueError, match="bbox_w_mm"):
        lesion_size_table(df.drop(columns=["bbox_w_mm"]))
