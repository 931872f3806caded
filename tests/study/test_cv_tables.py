"""Issue 21 items 4-5 and issue 29 item 9 on hand-built out-of-fold frames: degenerate fold thresholds are flagged,
the pooled accuracy / sensitivity / specificity hold every case (each called at its own fold's frozen threshold)
with the figures without the degenerate folds beside them, the every-case-once check sees duplicates before any
file is written, and one arm gives an empty comparison table."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from liver_mm.study.cv.report import fold_predictions, format_summary, write_cv_study
from liver_mm.study.cv.tables import (
    COMPARISON_COLUMNS,
    check_oof_coverage,
    cv_auc_table,
    cv_comparisons,
    cv_summary,
    pooled_metrics,
)

M, B = "malignant", "benign"


def _oof() -> pd.DataFrame:
    """m1, repeat 0: fold 0 (c0-c3) with threshold -inf (every case called malignant), fold 1 (c4-c7) at 0.5."""
    rows = [("c0", M, 0.9), ("c1", B, 0.8), ("c2", M, 0.3), ("c3", B, 0.1),
            ("c4", M, 0.7), ("c5", B, 0.2), ("c6", M, 0.4), ("c7", B, 0.6)]
    return pd.DataFrame([{"case_id": c, "patient_id": f"p{c}", "arm": "m1", "repeat": 0, "fold": i // 4,
                          "label": y, "prob": p, "threshold": -math.inf if i < 4 else 0.5}
                         for i, (c, y, p) in enumerate(rows)])


def test_pooled_metrics_hold_every_case_and_give_the_figures_without_degenerate_folds_beside():
    m = pooled_metrics(_oof())
    # every case: fold 0 at -inf calls c0-c3 malignant (c0, c2 TP; c1, c3 FP); fold 1 at 0.5: c4 TP, c5 TN, c6 FN,
    # c7 FP (was: fold 0 dropped from the headline, accuracy 2/4, sensitivity 1/2, specificity 1/2)
    assert (m["accuracy_k"], m["accuracy_n"]) == (4, 8)
    assert (m["sensitivity_k"], m["sensitivity_n"]) == (3, 4)
    assert (m["specificity_k"], m["specificity_n"]) == (1, 4)
    assert (m["accuracy"], m["sensitivity"], m["specificity"]) == (0.5, 0.75, 0.25)
    assert m["specificity_ci_low"] == pytest.approx(0.045587, abs=1e-6)  # Wilson 1/4: 4.56%
    # beside it, fold 1 alone
    assert (m["accuracy_without_degenerate_k"], m["accuracy_without_degenerate_n"]) == (2, 4)
    assert (m["sensitivity_without_degenerate_k"], m["sensitivity_without_degenerate_n"]) == (1, 2)
    assert (m["specificity_without_degenerate_k"], m["specificity_without_degenerate_n"]) == (1, 2)
    assert m["specificity_without_degenerate"] == 0.5
    assert (m["left_out_folds"], m["left_out_cases"]) == (1, 4)
    assert m["n"] == 8 and m["pooled_auc"] == pytest.approx(11 / 16, abs=1e-12)  # the AUC keeps every case


def test_a_plus_inf_threshold_calls_its_fold_benign():
    m = pooled_metrics(_oof().assign(threshold=[math.inf] * 4 + [0.5] * 4))
    # fold 0: c0, c2 FN, c1, c3 TN; fold 1 as above
    assert [(m[f"{k}_k"], m[f"{k}_n"]) for k in ("accuracy", "sensitivity", "specificity")] == [(4, 8), (1, 4), (3, 4)]
    assert m["sensitivity_without_degenerate_k"] == 1 and m["left_out_cases"] == 4


def test_the_flag_column_wins_over_the_threshold_value():
    oof = _oof().assign(threshold=0.5, degenerate_threshold=[True] * 4 + [False] * 4)
    assert pooled_metrics(oof)["accuracy_n"] == 8 and pooled_metrics(oof)["accuracy_without_degenerate_n"] == 4
    assert pooled_metrics(oof.drop(columns="degenerate_threshold"))["accuracy_without_degenerate_n"] == 8


def test_a_missing_threshold_is_an_error():
    with pytest.raises(ValueError, match=r"^arm m1, repeat 0, fold 1: no threshold \(NaN\)"):
        pooled_metrics(_oof().assign(threshold=[0.5] * 5 + [math.nan] * 3))


def test_cv_auc_and_summary_count_degenerate_folds():
    oof = _oof()
    cv_auc = cv_auc_table(oof)
    assert cv_auc["degenerate_threshold"].tolist() == [True, False]
    s = cv_summary(oof, cv_auc, ["m1"]).iloc[0]
    assert s["degenerate_folds"] == 1 and s["sensitivity"] == 0.75 and s["sensitivity_n"] == 4
    assert s["sensitivity_without_degenerate"] == 0.5 and s["left_out_folds"] == 1
    table = format_summary(cv_summary(oof, cv_auc, ["m1"])).iloc[0]
    assert table["Sensitivity, every case (n/N; 95% CI)"] == "75.0% (3/4; 30.1–95.4)"
    assert table["Sensitivity without degenerate folds (n/N; 95% CI)"] == "50.0% (1/2; 9.5–90.5)"


def test_fold_predictions_flag_a_constant_dev_score():
    pred = pd.DataFrame({"case_id": ["d0", "d1", "t0", "t1"], "split": ["dev", "dev", "test", "test"],
                         "label": [M, B, M, B], "prob": [0.5, 0.5, 0.9, 0.1]})
    out = fold_predictions(pred, "m1", 0, 0, {"t0": "p0", "t1": "p1"})
    assert out["threshold"].tolist() == [-math.inf, -math.inf] and out["degenerate_threshold"].tolist() == [True] * 2
    pred.loc[1, "prob"] = 0.2
    assert fold_predictions(pred, "m1", 0, 0, {"t0": "p0", "t1": "p1"})["degenerate_threshold"].tolist() == [False] * 2


def test_coverage_check_names_duplicated_missing_and_foreign_cases():
    oof = _oof()
    ids = [f"c{i}" for i in range(8)]
    check_oof_coverage(oof, ids, ["m1"], 1)
    dup = pd.concat([oof, oof.iloc[[3]].assign(fold=1)], ignore_index=True)
    with pytest.raises(ValueError, match=r"^out-of-fold predictions of arm m1, repeat 0 do not hold each of the 8 "
                                         r"cases exactly once: 1 case\(s\) predicted more than once, e.g. c3 in folds "
                                         r"\[0, 1\]$"):
        check_oof_coverage(dup, ids, ["m1"], 1)
    with pytest.raises(ValueError, match=r"1 case\(s\) of the cohort never predicted, e.g. c8"):
        check_oof_coverage(oof, [*ids, "c8"], ["m1"], 1)
    with pytest.raises(ValueError, match=r"1 case\(s\) not in the cohort, e.g. c7"):
        check_oof_coverage(oof, ids[:7], ["m1"], 1)
    with pytest.raises(ValueError, match="arm m1, repeat 1 .* 8 case\\(s\\) of the cohort never predicted"):
        check_oof_coverage(oof, ids, ["m1"], 2)


def test_one_arm_has_an_empty_comparison_table():
    oof = _oof().assign(threshold=0.5)
    sizes = pd.DataFrame({"repeat": [0, 0], "fold": [0, 1], "n_test": [4, 4], "n_outside_test": [4, 4]})
    comp = cv_comparisons(oof, cv_auc_table(oof), sizes, ["m1"], "m1", {"seed": ["m1", "m2"]})
    assert comp.empty and list(comp.columns) == list(COMPARISON_COLUMNS)


# ---- write_cv_study on a real (tiny) cohort table with hand-made fold predictions


def _fold_preds(df: pd.DataFrame, arms: list[str], constant_dev: set[tuple[str, int]]) -> dict:
    """Two folds: test = first / second half of the cases; dev = 10 of the other half; probabilities follow
    the label; (arm, fold) in ``constant_dev`` gets a constant dev score (a degenerate threshold)."""
    rng = np.random.default_rng(0)
    ids, labels = df["case_id"].astype(str).to_numpy(), df["label"].to_numpy()
    half = len(ids) // 2
    out = {}
    for arm in arms:
        for fold, (test, rest) in enumerate([(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]):
            dev_ids, dev_y = ids[rest][:10], labels[rest][:10]
            p = lambda y: np.clip(0.3 + 0.4 * (y == M) + rng.normal(0, 0.2, len(y)), 0.01, 0.99)  # noqa: E731
            dev_p = np.full(10, 0.5) if (arm, fold) in constant_dev else p(dev_y)
            out[(arm, 0, fold)] = pd.DataFrame({
                "case_id": [*dev_ids, *ids[test]], "split": ["dev"] * 10 + ["test"] * len(ids[test]),
                "label": [*dev_y, *labels[test]], "prob": [*dev_p, *p(labels[test])]})
    return out


def _write(tmp_path, tiny_cohort, fold_preds, arms, provenance=None):
    df = pd.read_csv(tiny_cohort)
    cohort = SimpleNamespace(df=df, synthetic=True)
    config = OmegaConf.create({"study": {"reference": arms[0]}, "cv": {"folds": 2, "repeats": 1}})
    half = len(df) // 2
    sizes = pd.DataFrame({"repeat": [0, 0], "fold": [0, 1], "n_train": [len(df) - half - 10, half - 10],
                          "n_dev": [10, 10], "n_test": [half, len(df) - half],
                          "n_outside_test": [len(df) - half, half]})
    out = tmp_path / "out"
    out.mkdir()
    metrics = write_cv_study(config, cohort, fold_preds, sizes, arms, out, provenance or {}, "liver-mm study",
                             None, "t")
    return out, metrics


def test_the_report_flags_degenerate_folds(tmp_path, tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    out, metrics = _write(tmp_path, tiny_cohort, _fold_preds(df, ["m1", "m5"], {("m5", 0)}), ["m1", "m5"])
    s = pd.read_csv(out / "cv_summary.csv").set_index("arm")
    half = len(df) // 2
    assert s.at["m5", "degenerate_folds"] == 1 and s.at["m1", "degenerate_folds"] == 0
    assert metrics["cv_degenerate_folds_m5"] == 1 and metrics["cv_degenerate_folds_m1"] == 0
    assert s.at["m5", "left_out_cases"] == half and s.at["m5", "accuracy_without_degenerate_n"] == len(df) - half
    assert s.at["m5", "n"] == len(df) and s.at["m5", "accuracy_n"] == len(df) and s.at["m1", "accuracy_n"] == len(df)
    # m5's fold 0: constant dev score, threshold -inf: its test half called malignant
    test0 = df.iloc[:half]
    n_mal0 = int((test0["label"] == M).sum())
    oof = pd.read_csv(out / "oof_predictions.csv")
    f1 = oof[(oof["arm"] == "m5") & (oof["fold"] == 1)]
    tp1 = int(((f1["prob"] >= f1["threshold"]) & (f1["label"] == M)).sum())
    assert s.at["m5", "sensitivity_k"] == n_mal0 + tp1 and s.at["m5", "sensitivity_without_degenerate_k"] == tp1
    report = (out / "report.md").read_text()
    assert (f"**Degenerate thresholds**: m5 1 of 2 fold models (repeat 0: 1 fold(s) with {half} test cases). "
            "A fold model whose dev-Youden threshold separates no dev cases") in report
    assert "The pooled accuracy, sensitivity and specificity keep its test cases" in report
    assert "| Accuracy, every case (n/N; 95% CI) | Accuracy without degenerate folds (n/N; 95% CI) |" in report
    m1_row = next(line for line in report.splitlines() if line.startswith("| m1 |"))
    assert m1_row.count("same (no degenerate fold)") == 3
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert oof.groupby(["arm", "fold"])["degenerate_threshold"].all().to_dict() == {
        ("m1", 0): False, ("m1", 1): False, ("m5", 0): True, ("m5", 1): False}


def test_a_duplicated_case_is_refused_before_any_file_is_written(tmp_path, tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    preds = _fold_preds(df, ["m1", "m5"], set())
    for arm in ("m1", "m5"):  # both arms alike: fold 0's first test case also tested in fold 1
        first = preds[(arm, 0, 0)]
        extra = first[first["split"] == "test"].iloc[[0]]
        preds[(arm, 0, 1)] = pd.concat([preds[(arm, 0, 1)], extra], ignore_index=True)
    case = str(extra["case_id"].item())
    with pytest.raises(ValueError, match=rf"^out-of-fold predictions of arm m1, repeat 0 do not hold each of the "
                                         rf"{len(df)} cases exactly once: 1 case\(s\) predicted more than once, "
                                         rf"e.g. {case} in folds \[0, 1\]$"):
        _write(tmp_path, tiny_cohort, preds, ["m1", "m5"])
    assert list((tmp_path / "out").iterdir()) == []


def test_one_arm_writes_its_tables_and_no_comparison(tmp_path, tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    out, metrics = _write(tmp_path, tiny_cohort, _fold_preds(df, ["m1"], set()), ["m1"])
    assert pd.read_csv(out / "cv_comparisons.csv").empty
    assert "One arm: nothing to compare." in (out / "report.md").read_text()
    assert "cv_auc_mean_m1" in metrics and not any(k.startswith("cv_p_") for k in metrics)


def test_the_comparison_gives_the_pooled_difference_with_its_delong_ci():
    from liver_mm.stats import delong_test
    from liver_mm.study.cv.report import format_comparisons

    m1 = _oof().assign(threshold=0.5)
    m2 = m1.assign(arm="m2", prob=[0.6, 0.7, 0.8, 0.2, 0.9, 0.1, 0.35, 0.3])
    oof = pd.concat([m1, m2], ignore_index=True)
    sizes = pd.DataFrame({"repeat": [0, 0], "fold": [0, 1], "n_test": [4, 4], "n_outside_test": [4, 4]})
    comp = cv_comparisons(oof, cv_auc_table(oof), sizes, ["m1", "m2"], "m1").set_index(["a", "b"])
    r = comp.loc[("m1", "m2")]
    d = delong_test([1, 0, 1, 0, 1, 0, 1, 0], m1["prob"], m2["prob"])
    assert r["pooled_diff"] == pytest.approx(11 / 16 - 14 / 16, abs=1e-12)
    assert (r["pooled_diff_ci_low"], r["pooled_diff_ci_high"]) == (d.diff_ci_low, d.diff_ci_high)
    assert d.diff_ci_low < r["pooled_diff"] < d.diff_ci_high
    row = format_comparisons(comp.reset_index()).iloc[0]
    assert row["Pooled ΔAUC (95% CI)"] == "-0.188 (-0.575 to +0.200)"


def test_the_cv_report_names_the_score_arms_the_dictionary_cannot_run(tmp_path, tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    skipped = {"apri": "inputs ast, platelets not declared by the data dictionary d.yaml"}
    out, _ = _write(tmp_path, tiny_cohort, _fold_preds(df, ["m1", "m5"], set()), ["m1", "m5"],
                    {"skipped_arms": skipped})
    text = (out / "report.md").read_text()
    line = "Not run: apri (inputs ast, platelets not declared by the data dictionary d.yaml)."
    assert text.count(line) == 1 and text.index("### Performance") < text.index(line)
