"""The ``liver-mm evaluate`` folder: the study's tables and figures on an external cohort, recalibration side by
side, report.md. Every number is a function of the written ``predictions.csv`` and the frozen thresholds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.stats import markdown_table, reliability_curve
from liver_mm.study.clinical_value import (
    _save,
    calibration_table,
    clinical_value_section,
    decision_table,
    write_calibration_and_dca,
)
from liver_mm.study.compare import StudyComparison, write_comparison
from liver_mm.study.report.answer import answer_lines
from liver_mm.study.report.html import write_both
from liver_mm.study.report.markdown import (
    SYNTHETIC_STATEMENT,
    _cohort_section,
    write_cohort_tables,
    write_figures,
)
from liver_mm.study.report.provenance import provenance_section
from liver_mm.study.report.tables import fmt_auc, fmt_number, fmt_proportion, format_table3

WHERE = "the external cohort"
VERSIONS = ("original", "recalibrated")
RECAL_FILES = ("recalibration.csv", "recalibration.md", "recalibration.png", "recalibration_decision_curve.csv",
               "recalibration_decision_curve.png")


def recalibration_table(original: StudyComparison, recalibrated: StudyComparison,
                        fits: Mapping[str, tuple[float, float]], method: str, n_fit: int) -> pd.DataFrame:
    """Two rows per arm (version original, recalibrated) on the evaluation part: method, a, b (the fitted map;
    NaN for the original), n_fit, Table 3's numbers at the frozen threshold and the calibration (Brier, intercept,
    slope)."""
    frames = []
    for version, comp in zip(VERSIONS, (original, recalibrated), strict=True):
        cal = calibration_table(comp).drop(columns="n_test")
        t3 = comp.table3.drop(columns=["description", "selection_dev_auc"]).merge(cal, on="arm")
        t3.insert(1, "version", version)
        t3.insert(2, "method", method)
        t3.insert(3, "a", [fits[a][0] if version == "recalibrated" else np.nan for a in t3["arm"]])
        t3.insert(4, "b", [fits[a][1] if version == "recalibrated" else np.nan for a in t3["arm"]])
        t3.insert(5, "n_fit", n_fit)
        frames.append(t3)
    order = {a: i for i, a in enumerate(original.order)}
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["arm", "version"], key=lambda s: s.map(order) if s.name == "arm" else s,
                             kind="stable").reset_index(drop=True)


def format_recalibration(table: pd.DataFrame) -> pd.DataFrame:
    """The side-by-side table as text: one row per arm and version."""
    rows = []
    for r in table.to_dict("records"):
        fitted = "" if r["version"] == "original" else f" (a {r['a']:.2f}, b {r['b']:.2f})"
        rows.append({"Model": r["arm"], "Probabilities": r["version"] + fitted,
                     "Brier": fmt_number(r["brier"]), "Cal. intercept": fmt_number(r["cal_intercept"], 2),
                     "Cal. slope": fmt_number(r["cal_slope"], 2),
                     "AUC (95% CI)": fmt_auc(r["auc"], r["auc_ci_low"], r["auc_ci_high"]),
                     **{f"{m.capitalize()} (n/N; 95% CI)": fmt_proportion(
                         r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], r[f"{m}_k"], r[f"{m}_n"])
                        for m in ("accuracy", "sensitivity", "specificity")}})
    return pd.DataFrame(rows)


def write_recalibration(out: Path, original: StudyComparison, recalibrated: StudyComparison,
                        fits: Mapping[str, tuple[float, float]], method: str, n_fit: int, synthetic: bool
                        ) -> pd.DataFrame:
    """recalibration.csv/.md, recalibration.png (LOESS curves of both versions on the evaluation part) and
    recalibration_decision_curve.csv/.png (``version`` column); returns the side-by-side table."""
    from liver_mm.figures import decision_curve_figure, reliability_figure

    table = recalibration_table(original, recalibrated, fits, method, n_fit)
    table.to_csv(out / "recalibration.csv", index=False)
    (out / "recalibration.md").write_text(markdown_table(format_recalibration(table)), encoding="utf-8")
    tag, y, n = "SYNTHETIC: " if synthetic else "", original.y_test, original.y_test.size
    curves, dca = {}, []
    for version, comp in zip(VERSIONS, (original, recalibrated), strict=True):
        for arm in comp.order:
            name = arm if version == "original" else f"{arm} recalibrated"
            if np.ptp(comp.prob(arm)) > 0:
                curves[name] = (comp.prob(arm), reliability_curve(y, comp.prob(arm)))
        dca.append(decision_table(comp).assign(version=version))
    if curves:
        _save(reliability_figure(curves, f"{tag}{method} recalibration, evaluation part (n={n})"),
              out / "recalibration.png")
    dca_table = pd.concat(dca, ignore_index=True)[["arm", "version", "threshold", "net_benefit", "treat_all"]]
    dca_table.to_csv(out / "recalibration_decision_curve.csv", index=False)
    per = {(a if v == "original" else f"{a} recalibrated"): g.reset_index(drop=True)
           for (a, v), g in dca_table.groupby(["arm", "version"], sort=False)}
    _save(decision_curve_figure(per, f"{tag}decision curves, evaluation part (n={n})"),
          out / "recalibration_decision_curve.png")
    return table


def _study_section(summary: Mapping[str, object], arms: pd.DataFrame) -> list[str]:
    return ["## What was evaluated", "",
            f"Study **{summary['study']}** (parent run `{summary['parent_run_id']}`): each arm's saved model, "
            "applied unchanged to the external cohort at the threshold frozen in the study (Youden's J on the "
            "study's dev split, Table 3's). Nothing was trained or re-thresholded on these cases.", "",
            f"External cohort: `{summary['manifest']}` ({summary['n_cases']} cases: {summary['n_malignant']} "
            f"malignant / {summary['n_benign']} benign{summary['cohort_note']}).", "",
            markdown_table(arms)]


def _results_section(comparison: StudyComparison) -> list[str]:
    level = round(100 * (1 - comparison.alpha))
    fam = "".join(f" --family {f}={','.join(m)}" for f, m in (comparison.families or {}).items())
    return ["## Results on the external cohort", "",
            "### Table 3: diagnostic performance", "",
            f"AUC with DeLong {level}% CI; accuracy, sensitivity and specificity with Wilson {level}% CIs at each "
            "arm's frozen threshold (malignant when probability >= threshold).", "",
            markdown_table(format_table3(comparison.table3)),
            "![ROC](figure2_roc.png)", "", "![AUC by model](auc_by_step.png)", "",
            "### DeLong tests of the AUCs", "",
            f"Paired two-sided DeLong tests of each model against {comparison.reference} and of each adjacent pair, "
            "Holm-adjusted within the study's families. Reproduce with `liver-mm delong predictions.csv --label "
            f"label --scores {','.join(comparison.order)} --reference {comparison.reference}{fam}`.", "",
            comparison.delong_md]


def _recalibration_section(table: pd.DataFrame, recal: Mapping[str, object]) -> list[str]:
    how = (f"the rows whose column `{recal['column']}` is `fit`" if recal.get("column") else
           f"a {recal['fraction']:g} fraction of the cases (seed {recal['seed']}), stratified by label and grouped "
           "by patient and identical image")
    what = ("logit p' = a + logit p (calibration in the large)" if recal["method"] == "intercept"
            else "logit p' = a + b logit p (logistic recalibration)")
    return ["## Recalibration", "",
            f"Each arm's probabilities were recalibrated, {what}, fitted on {how} ({recal['n_fit']} cases), and "
            f"evaluated with the original probabilities on the other {recal['n_eval']} cases only (column "
            "`recal_part` of predictions.csv). The frozen threshold is applied to both: on the risk scale it is "
            "the study's cut-off, so calls may change; the AUC does not (b > 0).", "",
            markdown_table(format_recalibration(table)),
            "![Recalibration](recalibration.png)", "", "![Decision curves](recalibration_decision_curve.png)", ""]


def write_evaluation(out: Path, comparison: StudyComparison, wide: pd.DataFrame, cohort_df: pd.DataFrame,
                     summary: Mapping[str, object], arms: pd.DataFrame, provenance: Mapping[str, object],
                     command: str, synthetic: str | None, recal: Mapping[str, object] | None = None,
                     recal_table: pd.DataFrame | None = None, notices: Sequence[str] = ()) -> Path:
    """Write the evaluate folder ``out`` (predictions.csv, Table 3, DeLong, ROC, calibration, decision curve,
    cohort tables, report.md); ``synthetic``: what is synthetic, said at the top of the report (None: nothing);
    ``recal``/``recal_table``: the recalibration (settings and :func:`write_recalibration`'s table), when any;
    ``notices``: markdown lines shown below the title (overlap with the study's cohort, arms not evaluated)."""
    wide.to_csv(out / "predictions.csv", index=False)
    write_comparison(comparison, out, wide_name=None)
    write_figures(comparison, out, synthetic is not None, where=WHERE)
    value = write_calibration_and_dca(comparison, out, synthetic is not None, where=WHERE)
    (out / "command.txt").write_text(command.strip() + "\n", encoding="utf-8")
    lines = [f"# External validation: {summary['study']} on {summary['title']}", ""]
    if synthetic:
        lines += [f"**SYNTHETIC: {synthetic}. {SYNTHETIC_STATEMENT}**", ""]
    lines += list(notices)
    lines += answer_lines(comparison.table3, comparison.delong["comparisons"], comparison.order, comparison.alpha,
                          where=WHERE)
    lines += _study_section(summary, arms)
    lines += _cohort_section(write_cohort_tables(cohort_df, out))
    lines += _results_section(comparison)
    lines += clinical_value_section(value, {}, where="external cohort")
    if recal is not None and recal_table is not None:
        lines += _recalibration_section(recal_table, recal)
    lines += provenance_section(provenance, command)
    return write_both(out, lines, f"External validation: {summary['study']} on {summary['title']}")
