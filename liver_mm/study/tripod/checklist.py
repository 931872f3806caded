"""report.md's "TRIPOD+AI checklist" section and tripod.csv: every item of the checklist
(:data:`~liver_mm.study.tripod.items.CHECKLIST`), answered from the study's records where it can be, listed
for the authors where it cannot (title, abstract, background, setting, ethics, funding, interpretation, ...).

:func:`split_evidence` and :func:`cv_evidence` gather what the two report writers have; :func:`tripod_rows` is
pure; :func:`tripod_section` writes tripod.csv and returns the report lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from liver_mm.stats import markdown_table
from liver_mm.study.clinical_value import format_calibration
from liver_mm.study.compare import StudyComparison
from liver_mm.study.report.tables import fmt_auc, fmt_number
from liver_mm.study.tripod.answers import answers
from liver_mm.study.tripod.evidence import ANSWERED, AUTHORS, PARTLY, Evidence
from liver_mm.study.tripod.items import CHECKLIST, CITATION

TITLE = "TRIPOD+AI checklist"
CSV_NAME = "tripod.csv"
COLUMNS = ("item", "section", "topic", "status", "text", "evidence")
POOLED = ("pooled_auc", "pooled_auc_ci_low", "pooled_auc_ci_high")  # cv_summary.csv columns


def _files(out: Path) -> frozenset[str]:
    return frozenset({CSV_NAME, "report.md", *(p.name for p in out.iterdir() if p.is_file())})


def split_evidence(out: Path, comparison: StudyComparison, cohort_df: pd.DataFrame | None,
                   provenance: Mapping[str, object], synthetic: bool, command: str,
                   calibration: pd.DataFrame | None) -> Evidence:
    """The single-split report's records: Table 3, the calibration table, the cohort's ``split`` column."""
    t3 = comparison.table3.set_index("arm")
    cal = {} if calibration is None else {
        r["Model"]: (f"Brier {r['Brier score']}, intercept {r['Calibration intercept']}, "
                     f"slope {r['Calibration slope']}")
        for r in format_calibration(calibration).to_dict("records")}
    parts = None
    if cohort_df is not None and "split" in cohort_df.columns:
        parts = pd.DataFrame({"split": cohort_df["split"].astype(str).to_numpy()},
                             index=cohort_df["case_id"].astype(str).to_numpy())
    d = comparison.delong
    return Evidence(
        design="split", provenance=provenance, arms=tuple(comparison.order), reference=comparison.reference,
        synthetic=synthetic, command=command, cohort=cohort_df, parts=parts,
        discrimination={a: "AUC " + fmt_auc(t3.at[a, "auc"], t3.at[a, "auc_ci_low"], t3.at[a, "auc_ci_high"])
                        for a in comparison.order},
        calibration=cal, thresholds={a: fmt_number(t3.at[a, "threshold"]) for a in comparison.order},
        files=_files(out), level=round(100 * (1 - comparison.alpha)),
        performance_note=f"Test part, {d['n_pos']} malignant / {d['n_neg']} benign (Table 3)")


def fold_parts(fold_preds: Mapping[tuple[str, int, int], pd.DataFrame], case_ids: Sequence[str]) -> pd.DataFrame:
    """Index case_id (text), one column ``r{repeat}f{fold}`` per fold model holding train / dev / test: dev and
    test from the fold run's predictions (``split`` column), train the rest of the cohort."""
    first: dict[tuple[int, int], pd.DataFrame] = {}
    for (_arm, rep, fold), pred in fold_preds.items():
        first.setdefault((int(rep), int(fold)), pred)
    index = pd.Index([str(c) for c in case_ids])
    cols = {}
    for (rep, fold), pred in sorted(first.items()):
        part = pd.Series("train", index=index, dtype=object)
        rows = pred[pred["split"].isin(["dev", "test"])]
        part.loc[rows["case_id"].astype(str).to_numpy()] = rows["split"].to_numpy()
        cols[f"r{rep}f{fold}"] = part
    return pd.DataFrame(cols, index=index)


def cv_evidence(out: Path, cohort_df: pd.DataFrame, fold_preds: Mapping[tuple[str, int, int], pd.DataFrame],
                summary: pd.DataFrame, reference: str, provenance: Mapping[str, object], synthetic: bool,
                command: str) -> Evidence:
    """The cross-validated report's records: the CV summary and the fold runs' dev / test parts."""
    s = summary.set_index("arm")
    k, r = int(s["n_folds"].max()), len({rep for _a, rep, _f in fold_preds})
    return Evidence(
        design="cv", provenance=provenance, arms=tuple(summary["arm"]), reference=reference, synthetic=synthetic,
        command=command, cohort=cohort_df, parts=fold_parts(fold_preds, cohort_df["case_id"].astype(str).tolist()),
        discrimination={a: f"pooled AUC {fmt_auc(*s.loc[a, list(POOLED)])}, fold AUC mean {s.at[a, 'auc_mean']:.3f} "
                           f"(SD {fmt_number(s.at[a, 'auc_sd'])})" for a in s.index},
        files=_files(out),
        performance_note=(f"Pooled out-of-fold predictions of repeat 0 ({int(s['n'].max())} nodules); fold AUCs "
                          f"over {k} fold models ({r} repeat(s)) (cv_summary.csv)"))


def tripod_rows(ev: Evidence) -> pd.DataFrame:
    """One row per checklist item, in checklist order: :data:`COLUMNS`."""
    answered = answers(ev)
    rows = []
    for item in CHECKLIST:
        status, text, evidence = answered.get(item.number, (AUTHORS, f"To write: {item.asks}.", ""))
        rows.append({"item": item.number, "section": item.section, "topic": item.topic, "status": status,
                     "text": text, "evidence": evidence})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def tripod_section(ev: Evidence, out: Path) -> list[str]:
    """Write ``out/tripod.csv`` and return report.md's TRIPOD+AI section (a Markdown table)."""
    rows = tripod_rows(ev)
    rows.to_csv(out / CSV_NAME, index=False)
    n = rows["status"].value_counts()
    shown = pd.DataFrame({"Item": rows["item"], "Topic": rows["topic"], "Status": rows["status"],
                          "Text (evidence)": [f"{t} ({e})" if e else t
                                              for t, e in zip(rows["text"], rows["evidence"], strict=True)]})
    return [f"## {TITLE}", "",
            f"The {len(rows)} items of TRIPOD+AI ({CITATION}): {n.get(ANSWERED, 0)} answered here from this "
            f"study's records, {n.get(PARTLY, 0)} partly (what remains is named), {n.get(AUTHORS, 0)} for the "
            f"authors to write. Evidence names files of this folder or sections of this report. Also in "
            f"[{CSV_NAME}]({CSV_NAME}).", "", markdown_table(shown)]
