"""Formatting and cohort tables of a study report (pandas + liver_mm.stats only).

Shared by :mod:`liver_mm.study.compare`, :mod:`liver_mm.study.report.markdown` and the
``notebooks/compare_runs.ipynb`` notebook, so a number reads the same everywhere.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from liver_mm import catalog
from liver_mm.io.schema import BBOX2_COLUMNS, BBOX_COLUMNS
from liver_mm.stats import ICC_FORMS, THRESHOLD_METRICS, THRESHOLD_SUFFIXES, format_p, icc

log = logging.getLogger(__name__)

#: the study's arms in stepwise order (the seed's models 1-5, then the two clinical-only controls):
#: ``study.arms`` of conf/study.yaml
ARM_ORDER = catalog.study_arms()

#: numeric Table 3 columns; the child runs log the same names with a ``test_`` prefix (threshold as is)
METRICS = THRESHOLD_METRICS
TABLE3_COLUMNS = (
    "arm", "description", "n_test", "n_malignant", "n_benign", "auc", "auc_ci_low", "auc_ci_high",
    *(f"{m}{s}" for m in METRICS for s in THRESHOLD_SUFFIXES),
    "threshold", "selection_dev_auc",
)
BBOX1, BBOX2 = BBOX_COLUMNS, BBOX2_COLUMNS  # the two observers' boxes
DASH = "–"


def arm_order(arms: Sequence[str]) -> list[str]:
    """Arms sorted in :data:`ARM_ORDER`, unknown arms after them alphabetically."""
    known = [a for a in ARM_ORDER if a in arms]
    return known + sorted(a for a in set(arms) if a not in ARM_ORDER)


def _finite(*xs: object) -> bool:
    try:
        return all(x is not None and math.isfinite(float(x)) for x in xs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def fmt_proportion(value: float, low: float, high: float, k: float | None = None, n: float | None = None) -> str:
    """A proportion with its CI as the report prints it: ``68.5% (74/108; 59.2–76.6)``.

    value, low, high are fractions in [0, 1]; k/n (counts) are optional: ``68.5% (59.2–76.6)``
    without them. A missing or NaN value gives ``–``.
    """
    if not _finite(value):
        return DASH
    ci = f"{100 * low:.1f}{DASH}{100 * high:.1f}" if _finite(low, high) else DASH
    counts = f"{int(k)}/{int(n)}; " if _finite(k, n) else ""
    return f"{100 * value:.1f}% ({counts}{ci})"


def fmt_auc(auc: float, low: float, high: float) -> str:
    """``0.812 (0.735–0.889)``; ``–`` when the AUC is missing."""
    if not _finite(auc):
        return DASH
    ci = f"{low:.3f}{DASH}{high:.3f}" if _finite(low, high) else DASH
    return f"{auc:.3f} ({ci})"


def fmt_number(x: object, digits: int = 3) -> str:
    """A float with ``digits`` decimals, ``±inf`` spelled out, ``–`` when missing."""
    if x is None:
        return DASH
    v = float(x)  # type: ignore[arg-type]
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def format_table3(table: pd.DataFrame) -> pd.DataFrame:
    """Table 3 as text, one row per arm, from numeric columns named as :data:`TABLE3_COLUMNS`.

    Works on :attr:`StudyComparison.table3` and on child-run metrics with the ``test_`` prefix
    removed; count columns (``*_k``, ``*_n``) and ``description`` are optional.
    """
    def col(row: pd.Series, name: str) -> object:
        return row[name] if name in row.index else None

    rows = []
    for _, r in table.iterrows():
        out = {"Model": r["arm"]}
        if "description" in table.columns:
            out["Input"] = r["description"]
        if "n_test" in table.columns:
            out["N (test)"] = str(int(r["n_test"]))
        out["AUC (95% CI)"] = fmt_auc(r["auc"], r["auc_ci_low"], r["auc_ci_high"])
        for m in METRICS:
            out[m.capitalize() + " (n/N; 95% CI)"] = fmt_proportion(
                r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], col(r, f"{m}_k"), col(r, f"{m}_n"))
        out["Threshold (dev Youden)"] = fmt_number(r["threshold"])
        rows.append(out)
    return pd.DataFrame(rows)


def delong_frame(report: dict) -> pd.DataFrame:
    """The comparisons of a :func:`liver_mm.stats.delong_report` dict, one row per pair.

    Columns: comparison, a, b, auc_a, auc_b, diff, diff_ci_low, diff_ci_high, z, p_value, p_holm, family
    (z is NaN where the report has null: zero variance with a non-zero difference; family is the Holm family).
    """
    cols = ["comparison", "a", "b", "auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z", "p_value",
            "p_holm", "family"]
    rows = [{"comparison": f"{c['a']} vs {c['b']}", **{k: (np.nan if c.get(k) is None else c[k])
                                                       for k in cols[1:]}} for c in report["comparisons"]]
    return pd.DataFrame(rows, columns=cols)


def format_delong(report: dict) -> pd.DataFrame:
    """DeLong comparisons as text: AUCs, difference with CI, Z, p and Holm-adjusted p."""
    rows = []
    for c in report["comparisons"]:
        z = c["z"]
        z_text = ("inf" if c["diff"] > 0 else "-inf") if z is None else f"{z:.3f}"
        rows.append({
            "Comparison": f"{c['a']} vs {c['b']}",
            "AUC a": fmt_number(c["auc_a"]),
            "AUC b": fmt_number(c["auc_b"]),
            "Difference a − b (95% CI)": f"{c['diff']:.3f} ({c['diff_ci_low']:.3f} to {c['diff_ci_high']:.3f})",
            "Z": z_text,
            "p": format_p(c["p_value"]),
            "p (Holm)": format_p(c["p_holm"]),
            "Holm family": c.get("family", "all"),
        })
    return pd.DataFrame(rows)


def cohort_counts(df: pd.DataFrame, label_col: str = "label", split_col: str = "split") -> pd.DataFrame:
    """Nodules per split (rows train, dev, test, then others, then ``all``) and class (columns), with totals.

    Without a split column there is one row, ``all``.
    """
    if label_col not in df.columns:
        raise ValueError(f"cohort table has no {label_col!r} column (columns: {list(df.columns)})")
    label = df[label_col].astype(object).where(df[label_col].notna(), "(missing)").astype(str)
    split = (df[split_col].astype(object).where(df[split_col].notna(), "(missing)").astype(str)
             if split_col in df.columns else pd.Series("all", index=df.index))
    tab = pd.crosstab(split, label)
    classes = [c for c in ("benign", "malignant") if c in tab.columns] + sorted(
        c for c in tab.columns if c not in ("benign", "malignant"))
    splits = [s for s in ("train", "dev", "test") if s in tab.index] + sorted(
        s for s in tab.index if s not in ("train", "dev", "test", "all"))
    tab = tab.reindex(columns=classes)
    if splits:
        tab = tab.reindex(index=splits)
        tab.loc["all"] = tab.sum(axis=0)
    tab["total"] = tab.sum(axis=1)
    tab.index.name = "split"
    tab.columns.name = None
    return tab.reset_index()


def has_second_observer(df: pd.DataFrame) -> bool:
    """True when the cohort carries both observers' boxes (bbox_* and bbox2_* columns)."""
    present = [c for c in BBOX2 if c in df.columns]
    if present and len(present) < len(BBOX2):
        log.warning("ICC skipped: only some second-observer columns present (%s)", ", ".join(present))
    return all(c in df.columns for c in (*BBOX1, *BBOX2))


def bbox_areas(df: pd.DataFrame, columns: Sequence[str] = BBOX1) -> np.ndarray:
    """Box areas in pixels² (N,) from (x0, y0, x1, y1) columns (x1, y1 exclusive); NaN where missing."""
    x0, y0, x1, y1 = (pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                      for c in columns)
    return (x1 - x0) * (y1 - y0)


def bbox_icc_table(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """All six ICC forms of the two observers' box areas (pixels²), as ``liver_mm.stats.icc``.

    Columns: form, icc, ci_low, ci_high, F, df1, df2, p, n_subjects. Raises ``ValueError`` when the
    bbox2 columns are absent.
    """
    if not has_second_observer(df):
        raise ValueError(f"no second observer's box: need columns {', '.join(BBOX2)}")
    ratings = np.column_stack([bbox_areas(df, BBOX1), bbox_areas(df, BBOX2)])
    res = icc(ratings, alpha=alpha)
    n = int(np.isfinite(ratings).all(axis=1).sum())
    rows = [{"form": f, "icc": res[f].icc, "ci_low": res[f].ci_low, "ci_high": res[f].ci_high, "F": res[f].F,
             "df1": res[f].df1, "df2": res[f].df2, "p": res[f].p, "n_subjects": n} for f in ICC_FORMS]
    return pd.DataFrame(rows)


def format_icc(table: pd.DataFrame, highlight: Sequence[str] = ("ICC2", "ICC3")) -> pd.DataFrame:
    """ICC table as text; the ``highlight`` forms (two-way models) are set in bold."""
    rows = []
    for r in table.itertuples(index=False):
        def b(text: str, form: str = r.form) -> str:
            return f"**{text}**" if form in highlight else text
        rows.append({"Form": b(r.form), "ICC (95% CI)": b(fmt_auc(r.icc, r.ci_low, r.ci_high)),
                     "F": fmt_number(r.F, 2), "df1": fmt_number(r.df1, 0), "df2": fmt_number(r.df2, 0 if float(r.df2).is_integer() else 1),
                     "p": format_p(r.p)})
    return pd.DataFrame(rows)
