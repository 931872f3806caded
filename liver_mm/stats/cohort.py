"""Cohort description tables: Table 1 (subtype x diagnostic basis) and Table 2 (clinical data by class).

Table 2 tests, chosen like R's defaults:

* continuous: Mann-Whitney U, two-sided (``scipy.stats.mannwhitneyu``), exact when both classes
  have fewer than 50 values and there are no ties (R's ``wilcox.test`` rule), otherwise the
  normal approximation with continuity correction and tie-corrected variance;
* categorical: chi-square test of independence (``scipy.stats.chi2_contingency``), Yates'
  correction for a 2x2 table as R's ``chisq.test``; Fisher's exact test (``scipy.stats.fisher_exact``)
  instead where an expected count is under 5 (the ``test`` column says which).

Medians and quartiles use the linear interpolation of R's ``quantile(type=7)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import MonteCarloMethod, chi2_contingency, fisher_exact, mannwhitneyu

from liver_mm.dictionary import Dictionary, Variable, active, default_dictionary
from liver_mm.stats._inputs import CLASSES, encode_labels

log = logging.getLogger(__name__)

#: the shipped data dictionary's variables (liver_mm/dictionary/liver.yaml), in its order
CONTINUOUS = default_dictionary().continuous
CATEGORICAL = default_dictionary().of_kind("binary", "categorical")
MISSING = "(missing)"


def _classes(df: pd.DataFrame, label_col: str) -> np.ndarray:
    if label_col not in df.columns:
        raise ValueError(f"label column {label_col!r} not in the table (columns: {list(df.columns)})")
    return encode_labels(df[label_col].to_numpy(dtype=object), name=f"column {label_col!r}")


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Two-sided Mann-Whitney p of two samples and the method used, chosen as R's ``wilcox.test``."""
    if a.size == 0 or b.size == 0:
        return float("nan"), ""
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    if a.size < 50 and b.size < 50 and not ties:
        return float(mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue), "Mann-Whitney U (exact)"
    res = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    return float(res.pvalue), "Mann-Whitney U (normal approx., continuity corr.)"


def chi_square_p(table: np.ndarray) -> tuple[float, str]:
    """Chi-square p of a contingency table (classes x levels), Yates-corrected when 2x2."""
    table = np.asarray(table)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), ""
    res = chi2_contingency(table, correction=True)
    return float(res.pvalue), "chi-square (Yates)" if res.dof == 1 else "chi-square"


FISHER_RESAMPLES = 20_000  # Monte Carlo tables of an r x c Fisher test (seeded: the same p every run)


def categorical_p(table: np.ndarray) -> tuple[float, str]:
    """:func:`chi_square_p`, or Fisher's exact test (``scipy.stats.fisher_exact``, two-sided) when an expected
    count is under 5, where the chi-square approximation is poor: exact for a 2x2 table, for a larger one its
    Monte Carlo p over :data:`FISHER_RESAMPLES` tables of the same margins (seeded)."""
    table = np.asarray(table)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), ""
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if (expected < 5).any() and table.shape == (2, 2):
        return float(fisher_exact(table).pvalue), "Fisher's exact (expected count < 5)"
    if (expected < 5).any():
        method = MonteCarloMethod(n_resamples=FISHER_RESAMPLES, rng=np.random.default_rng(0))
        return (float(fisher_exact(table, method=method).pvalue),
                f"Fisher's exact, Monte Carlo {FISHER_RESAMPLES} tables (expected count < 5)")
    return chi_square_p(table)


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def table2(
    df: pd.DataFrame,
    label_col: str = "label",
    continuous: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    digits: int = 1,
    dictionary: Dictionary | None = None,
) -> pd.DataFrame:
    """Clinical characteristics by class (the paper's Table 2), one row per variable or level.

    Columns: ``variable``, ``level`` (categorical level, "" otherwise), ``benign``,
    ``malignant`` (median (Q1–Q3) or n (% of non-missing)), ``benign_missing``,
    ``malignant_missing`` (counts), ``test``, ``p_value`` (on the first row of a variable).
    The first row (``variable == "n"``) holds the class sizes. Variables absent from df are skipped.
    ``continuous`` / ``categorical``: default the data dictionary's (``dictionary``, else the active one,
    :func:`liver_mm.dictionary.active`). Categorical (and binary) levels: n (% of non-missing) by class with
    chi-square, or Fisher's exact test where an expected count is under 5 (``test`` says which). The
    dictionary's ordinal variables: a first row with the median level by class (Mann-Whitney U on the codes),
    then a row per level; its multi-valued variables: a row per value (n (%) of the rows holding it, each value
    its own test).
    """
    d = dictionary or active()
    continuous = d.continuous if continuous is None else continuous
    categorical = d.of_kind("binary", "categorical") if categorical is None else categorical
    y = _classes(df, label_col)
    groups = {name: y == code for code, name in enumerate(CLASSES)}
    rows: list[dict] = [{"variable": "n", "level": "", **{c: str(int(groups[c].sum())) for c in CLASSES},
                         **{f"{c}_missing": 0 for c in CLASSES}, "test": "", "p_value": np.nan}]
    for var in continuous:
        if var not in df.columns:
            log.debug("table2: no column %r, skipped", var)
            continue
        values = pd.to_numeric(df[var], errors="coerce")
        bad = values.isna() & df[var].notna()
        if bad.any():
            log.warning("table2: column %r has %d non-numeric value(s), counted as missing (first at row %d)",
                        var, int(bad.sum()), int(np.flatnonzero(bad.to_numpy())[0]))
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        row: dict = {"variable": var, "level": ""}
        samples = {}
        for c in CLASSES:
            s = v[groups[c]]
            s = s[~np.isnan(s)]
            samples[c] = s
            row[f"{c}_missing"] = int(groups[c].sum() - s.size)
            if s.size:
                q1, med, q3 = np.quantile(s, [0.25, 0.5, 0.75])
                row[c] = f"{_fmt(med, digits)} ({_fmt(q1, digits)}–{_fmt(q3, digits)})"
            else:
                row[c] = "–"
        row["p_value"], row["test"] = mann_whitney_p(samples["benign"], samples["malignant"])
        rows.append(row)
    for var in categorical:
        if var not in df.columns:
            log.debug("table2: no column %r, skipped", var)
            continue
        col = df[var]
        present = col.notna().to_numpy()
        levels = sorted(col[present].astype(str).unique())
        counts = np.array([[int((col[groups[c] & present].astype(str) == lev).sum()) for lev in levels]
                           for c in CLASSES])
        p, test = categorical_p(counts)
        for j, lev in enumerate(levels):
            row = {"variable": var, "level": lev}
            for i, c in enumerate(CLASSES):
                total = counts[i].sum()
                pct = 100.0 * counts[i, j] / total if total else float("nan")
                row[c] = f"{counts[i, j]} ({pct:.{digits}f}%)"
                row[f"{c}_missing"] = int((groups[c] & ~present).sum())
            row["test"], row["p_value"] = (test, p) if j == 0 else ("", np.nan)
            rows.append(row)
    for var in d.of_kind("ordinal", "multi"):
        if var in df.columns:
            rows += _ordinal_rows(df[var], d[var], groups, digits) if d[var].kind == "ordinal" else \
                _multi_rows(df[var], d[var], groups, digits)
    cols = ["variable", "level", *CLASSES, *(f"{c}_missing" for c in CLASSES), "test", "p_value"]
    return pd.DataFrame(rows, columns=cols)


def _n_pct(k: int, total: int, digits: int) -> str:
    return f"{k} ({100.0 * k / total if total else float('nan'):.{digits}f}%)"


def _ordinal_rows(col: pd.Series, var: Variable, groups: dict[str, np.ndarray], digits: int) -> list[dict]:
    index = {c: i for i, c in enumerate(var.categories)}
    codes = col.map(lambda v: index.get(str(var.category(v)), np.nan) if pd.notna(v) else np.nan).astype(float)
    present = codes.notna().to_numpy()
    missing = {f"{c}_missing": int((groups[c] & ~present).sum()) for c in CLASSES}
    first: dict = {"variable": var.name, "level": "median level", **missing}
    samples = {}
    for c in CLASSES:
        s = codes.to_numpy()[groups[c] & present]
        samples[c] = s
        first[c] = var.categories[int(np.ceil(np.median(s) - 0.5))] if s.size else "–"  # R's type-1 median level
    first["p_value"], first["test"] = mann_whitney_p(samples["benign"], samples["malignant"])
    rows = [first]
    for j, lev in enumerate(var.categories):
        rows.append({"variable": var.name, "level": lev, **missing, "test": "", "p_value": np.nan,
                     **{c: _n_pct(int((samples[c] == j).sum()), samples[c].size, digits) for c in CLASSES}})
    return rows


def _multi_rows(col: pd.Series, var: Variable, groups: dict[str, np.ndarray], digits: int) -> list[dict]:
    values = col.map(lambda v: set(var.split(v)) if isinstance(v, str) else None)
    present = values.notna().to_numpy()
    missing = {f"{c}_missing": int((groups[c] & ~present).sum()) for c in CLASSES}
    rows = []
    for lev in var.categories:
        has = values.map(lambda s, lev=lev: s is not None and lev in s).to_numpy(dtype=bool)
        counts = np.array([[int((groups[c] & present & has).sum()), int((groups[c] & present & ~has).sum())]
                           for c in CLASSES])
        p, test = categorical_p(counts)
        rows.append({"variable": var.name, "level": lev, **missing, "test": test, "p_value": p,
                     **{c: _n_pct(int(counts[i, 0]), int(counts[i].sum()), digits) for i, c in enumerate(CLASSES)}})
    return rows


def table1(
    df: pd.DataFrame, subtype_col: str = "subtype", basis_col: str = "diagnostic_basis", label_col: str = "label"
) -> pd.DataFrame:
    """Nodule counts by subtype and diagnostic basis, per class, with totals (the paper's Table 1).

    Columns: ``label``, ``subtype``, one column per diagnostic basis (sorted), ``total``. Each
    class has its subtype rows then a ``total`` row; the last row (``label == "all"``) sums
    both classes. Missing subtype/basis values count as ``(missing)`` (a whole missing basis
    column too, with a warning); without a subtype column a ``ValueError`` is raised.
    """
    y = _classes(df, label_col)
    if subtype_col not in df.columns:
        raise ValueError(f"table1 needs a {subtype_col!r} column (columns: {list(df.columns)})")

    def as_text(col: str) -> pd.Series:
        if col not in df.columns:
            log.warning("table1: no %r column, every nodule counted as %s", col, MISSING)
            return pd.Series(MISSING, index=df.index, dtype=object)
        return df[col].astype(object).where(df[col].notna(), MISSING).astype(str)

    subtype, basis = as_text(subtype_col), as_text(basis_col)
    bases = sorted(set(basis))
    parts = []
    for code, name in enumerate(CLASSES):
        sel = y == code
        tab = pd.crosstab(subtype[sel], basis[sel]).reindex(columns=bases, fill_value=0).sort_index()
        tab.loc["total"] = tab.sum(axis=0)
        tab.insert(0, "label", name)
        parts.append(tab)
    grand = pd.crosstab(pd.Series("total", index=df.index), basis).reindex(columns=bases, fill_value=0)
    grand.insert(0, "label", "all")
    out = pd.concat([*parts, grand])
    out["total"] = out[bases].sum(axis=1)
    out.index.name = "subtype"
    out = out.reset_index()[["label", "subtype", *bases, "total"]]
    out.columns.name = None
    return out


def format_p(p: float) -> str:
    """p-value for a table: "<0.001", three decimals otherwise, "" when missing."""
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table of df (index dropped); a ``p_value`` column goes through format_p."""
    def cell(col: str, v: object) -> str:
        if col == "p_value":
            return format_p(float(v))
        if isinstance(v, float) and np.isnan(v):
            return ""
        return str(v).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    lines = [header, sep]
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(c, v) for c, v in zip(df.columns, rec, strict=True)) + " |")
    return "\n".join(lines) + "\n"
