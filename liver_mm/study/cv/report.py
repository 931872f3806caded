"""The cross-validated study's folder: out-of-fold predictions, fold AUCs, summary, comparisons, figures, report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.stats import encode_labels, format_p, markdown_table, youden_threshold
from liver_mm.study.cv.tables import (
    OOF_COLUMNS,
    WITHOUT_DEGENERATE,
    check_oof_coverage,
    cv_auc_table,
    cv_comparisons,
    cv_parent_metrics,
    cv_summary,
)
from liver_mm.study.report.html import write_both
from liver_mm.study.report.markdown import (
    SYNTHETIC_STATEMENT,
    _cohort_section,
    _save,
    skipped_arm_lines,
    write_cohort_tables,
)
from liver_mm.study.report.provenance import provenance_section
from liver_mm.study.report.tables import METRICS, fmt_auc, fmt_number, fmt_proportion
from liver_mm.study.tripod.checklist import cv_evidence, tripod_section
from liver_mm.study.tripod.records import tuned_outside_warning
from liver_mm.study.tuning_report import tuning_section
from liver_mm.training.evaluate import DegenerateThresholdError, check_threshold

log = logging.getLogger(__name__)


def fold_predictions(pred: pd.DataFrame, arm: str, repeat: int, fold: int, patients: Mapping[str, str]) -> pd.DataFrame:
    """One fold run's test rows as out-of-fold rows, each with the fold's frozen dev-Youden threshold and
    ``degenerate_threshold`` (it separates no dev cases: :func:`liver_mm.training.evaluate.check_threshold`)."""
    dev, test = pred[pred["split"] == "dev"], pred[pred["split"] == "test"]
    p_dev = dev["prob"].to_numpy(dtype=float)
    thr = youden_threshold(encode_labels(dev["label"].to_numpy(dtype=object)), p_dev)
    try:
        check_threshold(thr.threshold, p_dev, float("nan"))
        bad = False
    except DegenerateThresholdError:
        bad = True
        log.warning("arm %s, repeat %d, fold %d: degenerate dev-Youden threshold %s (every test case called one "
                    "class); the pooled accuracy, sensitivity and specificity keep its test cases, the figures "
                    "beside them leave them out", arm, repeat, fold, thr.threshold)
    ids = test["case_id"].astype(str)
    return pd.DataFrame({"case_id": ids.to_numpy(), "patient_id": ids.map(patients).to_numpy(), "arm": arm,
                         "repeat": repeat, "fold": fold, "label": test["label"].to_numpy(),
                         "prob": test["prob"].to_numpy(dtype=float), "threshold": thr.threshold,
                         "degenerate_threshold": bad})


def _proportion_cell(r: Mapping[str, object], key: str) -> str:
    return fmt_proportion(r[key], r[f"{key}_ci_low"], r[f"{key}_ci_high"], r[f"{key}_k"], r[f"{key}_n"])


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The Performance table: accuracy / sensitivity / specificity of every case, each followed (when a fold
    threshold was degenerate) by the same figure without those folds, labelled."""
    beside = bool((summary["left_out_cases"] > 0).any())
    rows = []
    for r in summary.to_dict("records"):
        cells = {}
        for m in METRICS:
            cells[f"{m.capitalize()}, every case (n/N; 95% CI)"] = _proportion_cell(r, m)
            if beside:
                without = _proportion_cell(r, f"{m}{WITHOUT_DEGENERATE}")
                cells[f"{m.capitalize()} without degenerate folds (n/N; 95% CI)"] = (
                    without if r["left_out_cases"] else "same (no degenerate fold)")
        rows.append({"Model": r["arm"], "Folds": str(int(r["n_folds"])),
                     "Degenerate thresholds": str(int(r["degenerate_folds"])),
                     "Fold AUC mean (SD)": f"{r['auc_mean']:.3f} ({fmt_number(r['auc_sd'])})",
                     "Pooled out-of-fold AUC, repeat 0 (95% CI)": fmt_auc(r["pooled_auc"], r["pooled_auc_ci_low"],
                                                                          r["pooled_auc_ci_high"]),
                     **cells})
    return pd.DataFrame(rows)


def format_comparisons(comp: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in comp.to_dict("records"):
        rows.append({"Comparison": f"{r['a']} vs {r['b']}", "Family": r["family"],
                     "Mean ΔAUC over folds (SD)": f"{r['mean_auc_diff']:+.3f} ({r['sd_auc_diff']:.3f})",
                     "t (df)": f"{r['t']:.2f} ({int(r['df'])})", "p": format_p(r["p_t"]),
                     "p (Holm)": format_p(r["p_t_holm"]),
                     "Pooled ΔAUC (95% CI)": f"{r['pooled_diff']:+.3f} ({r['pooled_diff_ci_low']:+.3f} to "
                                             f"{r['pooled_diff_ci_high']:+.3f})",
                     "z (DeLong)": fmt_number(r["z_delong"], 2), "p (DeLong)": format_p(r["p_delong"]),
                     "p (DeLong, Holm)": format_p(r["p_delong_holm"])})
    return pd.DataFrame(rows)


def verdicts(comp: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One plain sentence per comparison: does the difference hold up across folds?"""
    out = []
    for r in comp.to_dict("records"):
        better = r["a"] if r["mean_auc_diff"] > 0 else r["b"]
        if r["p_t_holm"] < alpha and r["p_delong_holm"] < alpha:
            text = f"**holds up**: {better} is better in the corrected t-test over folds and the pooled DeLong test"
        elif r["p_t_holm"] < alpha:
            text = f"holds up over folds (corrected t-test), not in the pooled DeLong test; {better} ahead"
        elif r["p_delong_holm"] < alpha:
            text = ("does **not** hold up over folds: only the pooled DeLong test, which ignores the variation "
                    "between training sets, finds it")
        else:
            text = "no difference shown (neither test, after Holm)"
        out.append(f"- {r['a']} vs {r['b']} (mean ΔAUC {r['mean_auc_diff']:+.3f}): {text}.")
    return out


def write_cv_figures(oof: pd.DataFrame, cv_auc: pd.DataFrame, summary: pd.DataFrame, order: Sequence[str],
                     out: Path, synthetic: bool) -> list[str]:
    from liver_mm.figures import fold_auc_figure, roc_label, roc_overlay_figure

    prefix = "SYNTHETIC cohort (not clinical evidence): " if synthetic else ""
    aucs = {a: cv_auc.loc[cv_auc["arm"] == a, "auc"].to_numpy() for a in order}
    k = int(cv_auc["fold"].max()) + 1
    r = int(cv_auc["repeat"].max()) + 1
    _save(fold_auc_figure(aucs, f"{prefix}test AUC of each fold ({k} folds x {r} repeat(s))"), out / "cv_fold_aucs.png")
    s = summary.set_index("arm")
    curves = {}
    for a in order:
        part = oof[(oof["arm"] == a) & (oof["repeat"] == 0)]
        curves[a] = (encode_labels(part["label"].to_numpy(dtype=object)), part["prob"].to_numpy(dtype=float),
                     roc_label(a, s.at[a, "pooled_auc"], s.at[a, "pooled_auc_ci_low"], s.at[a, "pooled_auc_ci_high"]))
    _save(roc_overlay_figure(curves, f"{prefix}pooled out-of-fold ROC, repeat 0"), out / "cv_roc.png")
    return ["cv_fold_aucs.png", "cv_roc.png"]


def degenerate_sentence(summary: pd.DataFrame) -> list[str]:
    """The report's plain statement of the folds whose threshold was degenerate, or nothing when none was."""
    bad = summary[summary["degenerate_folds"] > 0]
    if bad.empty:
        return []
    each = "; ".join(f"{r['arm']} {int(r['degenerate_folds'])} of {int(r['n_folds'])} fold models (repeat 0: "
                     f"{int(r['left_out_folds'])} fold(s) with {int(r['left_out_cases'])} test cases)"
                     for r in bad.to_dict("records"))
    return [f"**Degenerate thresholds**: {each}. A fold model whose dev-Youden threshold separates no dev cases "
            "(±inf: every case called malignant, or every case benign) learnt no usable operating point. The pooled "
            "accuracy, sensitivity and specificity keep its test cases, each called at its own fold's frozen "
            "threshold as that fold model calls it (every case one class), so they hold every case; the columns "
            "\"without degenerate folds\" leave those folds out (their n/N shows how many cases are left); read them as "
            "optimistic: the folds left out are the failing ones. The AUCs use the probabilities and keep every case.", ""]


def cv_answer_lines(summary: pd.DataFrame, comp: pd.DataFrame, order: Sequence[str], k: int, r: int) -> list[str]:
    """The report's opening: the question, whether each adjacent stepwise pair's difference holds up over the
    folds (:func:`verdicts`), then the best pooled out-of-fold AUC. The stepwise pairs are the adjacent pairs in
    the Holm family of the first pair (the steps): a step vs a control, or two controls, are not steps."""
    s = summary.set_index("arm")
    adjacent = set(zip(order, order[1:], strict=False))
    records = comp.to_dict("records") if not comp.empty else []
    family = {(r["a"], r["b"]): r.get("family") for r in records}
    steps_family = family.get(tuple(order[:2]))
    adjacent = {p for p in adjacent if steps_family is None or family.get(p) == steps_family}
    steps = [text for row, text in zip(records, verdicts(comp), strict=True) if (row["a"], row["b"]) in adjacent]
    best = s.loc[list(order), "pooled_auc"].astype(float).idxmax()
    return ["## Question and answer", "",
            "**Question.** Does adding clinical data to the B-mode ultrasound image tell malignant from benign "
            f"nodules better, across {k}-fold cross-validation repeated {r} time(s)? Models: "
            f"{' → '.join(order)}.", "",
            "**Answer** (each stepwise pair; corrected t-test over folds and pooled DeLong test, Holm):", "",
            *(steps or ["- No stepwise pair to compare: see the comparisons below."]),
            f"- Highest pooled out-of-fold AUC (repeat 0): {best}, "
            f"{fmt_auc(s.at[best, 'pooled_auc'], s.at[best, 'pooled_auc_ci_low'], s.at[best, 'pooled_auc_ci_high'])}.",
            ""]


def _comparison_lines(comp: pd.DataFrame, reference: str) -> list[str]:
    if comp.empty:
        return ["### Comparisons", "", "One arm: nothing to compare.", ""]
    return [
        "### Comparisons", "",
        f"Each model against {reference} and each adjacent pair. Corrected resampled t-test of the per-fold AUC "
        "differences (Nadeau & Bengio 2003; df = K·R − 1, variance inflated by the test/train size ratio) and the "
        "paired DeLong test on repeat 0's pooled out-of-fold predictions; p (Holm) within each family.", "",
        markdown_table(format_comparisons(comp)),
        "### Which differences hold up", "", *verdicts(comp), "",
    ]


def _cv_section(summary: pd.DataFrame, comp: pd.DataFrame, k: int, r: int, reference: str) -> list[str]:
    return [
        "## Cross-validation", "",
        f"{k}-fold cross-validation repeated {r} time(s): folds grouped by patient and identical image, stratified "
        "by label; every nodule is a test case once per repeat. Inside each training part a grouped, stratified "
        "dev part chose the epoch and the Youden threshold, frozen for the fold's test cases.", "",
        "### Performance", "", markdown_table(format_summary(summary)), *degenerate_sentence(summary),
        *_comparison_lines(comp, reference),
    ]


def write_cv_study(config: DictConfig, cohort: PreparedCohort, fold_preds: Mapping[tuple[str, int, int], pd.DataFrame],
                   sizes: pd.DataFrame, order: Sequence[str], out: Path, provenance: Mapping[str, object],
                   command: str, families: Mapping[str, Sequence[str]] | None, title: str,
                   tuning: pd.DataFrame | None = None) -> dict[str, float]:
    """Write the CV files and report.md into ``out``; returns the parent run's metrics."""
    patients = dict(zip(cohort.df["case_id"].astype(str), cohort.df["patient_id"].astype(str), strict=True))
    oof = pd.concat([fold_predictions(p, a, rep, f, patients) for (a, rep, f), p in fold_preds.items()],
                    ignore_index=True)
    oof = oof.sort_values(["arm", "repeat", "case_id"], key=lambda c: c.map({a: i for i, a in enumerate(order)})
                          if c.name == "arm" else c, kind="stable").reset_index(drop=True)
    k, r = int(config.cv.folds), int(config.cv.repeats)
    check_oof_coverage(oof, list(patients), order, r)  # before any file is written
    cv_auc = cv_auc_table(oof)
    summary = cv_summary(oof, cv_auc, order)
    reference = str(config.study.reference)
    comp = cv_comparisons(oof, cv_auc, sizes, order, reference, families)
    oof[[*OOF_COLUMNS, "threshold", "degenerate_threshold"]].to_csv(out / "oof_predictions.csv", index=False)
    cv_auc.to_csv(out / "cv_auc.csv", index=False)
    sizes.to_csv(out / "cv_fold_sizes.csv", index=False)
    summary.to_csv(out / "cv_summary.csv", index=False)
    comp.to_csv(out / "cv_comparisons.csv", index=False)
    (out / "cv_summary.md").write_text(markdown_table(format_summary(summary)), encoding="utf-8")
    (out / "cv_comparisons.md").write_text("\n".join(_comparison_lines(comp, reference)[2:]) + "\n", encoding="utf-8")
    figures = write_cv_figures(oof, cv_auc, summary, order, out, cohort.synthetic)
    lines = [f"# Study report: {title}", ""]
    if cohort.synthetic:
        lines += [f"**{SYNTHETIC_STATEMENT}**", ""]
    lines += cv_answer_lines(summary, comp, order, k, r)
    lines += _cohort_section(write_cohort_tables(cohort.df, out))
    lines += _cv_section(summary, comp, k, r, reference)
    lines += skipped_arm_lines(provenance)  # score arms the dictionary cannot run
    lines += tuned_outside_warning(provenance)  # settings a `liver-mm tune` chose on rows that are test rows here
    lines += ["### Test AUC of each fold", "", f"![fold AUCs]({figures[0]})", "",
              "### Pooled out-of-fold ROC curves (repeat 0)", "", f"![ROC]({figures[1]})", ""]
    lines += tuning_section(tuning, out)  # the settings each fold's search chose; none without tuning
    lines += tripod_section(cv_evidence(out, cohort.df, fold_preds, summary, reference, provenance, cohort.synthetic,
                                        command), out)
    lines += provenance_section(provenance, command)
    write_both(out, lines, f"Study report: {title}")
    return cv_parent_metrics(summary, comp)
