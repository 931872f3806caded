"""Checks of clinical / lab values: units, ranges, codes, duplicates, per-patient consistency.

Works on any table with some of the data dictionary's variables (a cohort manifest or a bare lab export);
no images needed. What is checked follows the dictionary: a binary variable's codes (``sex``: F/M, with the
``--map`` remedy for numeric codes), a ``constant_per_patient`` variable's agreement across a patient's rows,
a ``patient_drift`` variable's spread within a patient (age: 2 years), a ``top_code`` (age: 90). A single value is judged by :func:`judge_value`,
the rule the server's request check shares: an error only when the value is impossible in its unit
(outside ``plausible``), a warning when it is borderline (outside ``typical``), each naming a unit
that would explain it. A whole column (at least :data:`MIN_VALUES_FOR_UNIT_SNIFF` values) whose
median is atypical but typical in another unit is one ``unit_suspect`` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from liver_mm.cohort.validate_report import Collector, Finding, Severity
from liver_mm.dictionary import Dictionary, Variable, active, close_match
from liver_mm.io.codes import CENSORED, censored_message, unmapped_codes
from liver_mm.io.recode import blank_missing_tokens
from liver_mm.io.schema import (
    NON_LAB_COLUMNS,
    NON_NUMERIC_ATTR,
    ClinicalColumn,
    ManifestError,
    convert_units,
)

MIN_LAB_VALUES_FOR_DUPLICATES = 3  # rows need this many lab values before "identical" means anything
# a median of this many values outside the typical range is rare unless the unit is wrong (fewer: per value)
MIN_VALUES_FOR_UNIT_SNIFF = 5


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


@dataclass(frozen=True)
class LabVerdict:
    """What is wrong with one lab value: ``severity``, ``code`` (value_out_of_range / value_atypical),
    ``message`` and ``unit``: another accepted unit in which the value would be typical (or None)."""

    severity: Severity
    code: str
    message: str
    unit: str | None = None


def judge_value(spec: ClinicalColumn, x: float, suggest_units: bool = True) -> LabVerdict | None:
    """Judge one value ``x`` in ``spec.unit``: None when typical; an error when outside ``plausible``
    (impossible in this unit); a warning when outside ``typical`` (borderline). The message names a
    unit that would make the value typical, unless ``suggest_units`` is False (a unit was declared)."""
    lo, hi = spec.plausible
    tlo, thi = spec.typical
    if lo <= x <= hi and tlo <= x <= thi:
        return None
    units = [u for u, f in spec.conversions.items() if tlo <= x * f <= thi] if suggest_units else []
    hint = f"; it looks like {units[0]} (= {_fmt(x * spec.factor(units[0]))} {spec.unit})" if units else ""
    if not lo <= x <= hi:
        return LabVerdict("error", "value_out_of_range", f"{_fmt(x)} {spec.unit} is outside the plausible "
                          f"{_fmt(lo)}-{_fmt(hi)} {spec.unit}{hint}", units[0] if units else None)
    return LabVerdict("warning", "value_atypical", f"{_fmt(x)} {spec.unit} is outside the typical "
                      f"{_fmt(tlo)}-{_fmt(thi)} {spec.unit}{hint}", units[0] if units else None)


def _unit_suspect(col: str, spec: ClinicalColumn, values: pd.Series, out: Collector) -> bool:
    """Sniff another unit from the median; True when the column's values should not be range-checked."""
    if len(values) < MIN_VALUES_FOR_UNIT_SNIFF:
        return False
    median = float(values.median())
    lo, hi = spec.typical
    if lo <= median <= hi:
        return False
    fits: dict[float, list[str]] = {}
    for unit, factor in spec.conversions.items():
        if lo <= median * factor <= hi:
            fits.setdefault(factor, []).append(unit)
    declared = out.units.get(col)
    now = f"after converting from the declared {declared}, " if declared else ""
    if not fits:
        out.add("warning", "median_atypical",
                f"{now}the median {col} is {_fmt(median)} {spec.unit}, outside the typical "
                f"{_fmt(lo)}-{_fmt(hi)} {spec.unit} and not explained by a known unit "
                f"({', '.join(spec.conversions)}); check the column holds {spec.description}", column=col)
        return False
    options = "; or ".join(
        units[0] + (f" (= {' = '.join(units[1:])})" if len(units) > 1 else "")
        + f" (median would be {_fmt(median * f)} {spec.unit}): declare it with --unit {col}={units[0]}"
        for f, units in fits.items())
    out.add("error", "unit_suspect",
            f"{now}{col} median {_fmt(median)} is implausible in {spec.unit} and looks like {options} "
            f"(config: units: {{{col}: {list(fits.values())[0][0]}}})", column=col)
    return True


def _check_continuous(df: pd.DataFrame, col: str, spec: ClinicalColumn, out: Collector) -> None:
    values = df[col].dropna()
    if values.empty or _unit_suspect(col, spec, values, out):
        return
    suggest = col not in out.units
    verdicts = {idx: v for idx, x in values.items() if (v := judge_value(spec, float(x), suggest)) is not None}
    for idx, v in verdicts.items():
        if v.severity == "error":
            fix = f"convert it to {spec.unit}" if v.unit else "correct it"
            out.add("error", v.code, f"{col} = {v.message}: {fix} (or leave it empty if unknown)", idx, col)
    atypical = values[[i for i, v in verdicts.items() if v.severity == "warning"]]
    tlo, thi = spec.typical
    for side, part in (("below", atypical[atypical < tlo]), ("above", atypical[atypical > thi])):
        if part.empty:
            continue
        extreme = part.min() if side == "below" else part.max()
        unit = verdicts[part.idxmin() if side == "below" else part.idxmax()].unit
        hint = f"; if entered in {unit}, convert them to {spec.unit}" if unit else ""
        out.add("warning", "value_atypical",
                f"{len(part)} {col} value(s) {side} the typical {_fmt(tlo)}-{_fmt(thi)} "
                f"{spec.unit} (extreme {_fmt(extreme)}; {out.where(part.index)}): "
                f"plausible, but check they are not entry errors{hint}", column=col)


def _check_missing(df: pd.DataFrame, out: Collector) -> None:
    for col in df.columns:
        if col in NON_LAB_COLUMNS:
            continue
        missing = df[col].isna()
        if missing.any():
            out.add("warning", "missing_values",
                    f"{int(missing.sum())} of {len(df)} rows have no {col} ({out.where(df.index[missing])}); "
                    "missing lab values are allowed (they will need imputing)", column=col)


def _check_binary(df: pd.DataFrame, var: Variable, out: Collector) -> None:
    """A binary variable's cell that is not one of its two categories (after synonyms and a declared
    ``--map``): an error (``<name>_unknown``) with the ``--map`` remedy (numeric codes are common)."""
    wrong, fix = unmapped_codes(df, var.name, var.categories)
    names = "/".join(var.categories) + (f" ({'/'.join(var.synonyms)})" if var.synonyms else "")
    for idx, v in wrong.items():
        hint = " (numeric codes are ambiguous)" if str(v).isdigit() else ""
        out.add("error", f"{var.name}_unknown",
                f"{var.name} code {v!r} is not {names}{hint}: recode it, leave it empty, or {fix}", idx, var.name)


def _check_categories(df: pd.DataFrame, var: Variable, out: Collector) -> None:
    """A cell (a ``multi`` cell's value) that is not a declared category: an error naming it, the categories
    and a close match (cells are compared after case / space / synonym normalisation)."""
    declared = set(var.categories)
    for idx, cell in df[var.name].items():
        if not isinstance(cell, str | int | float) or pd.isna(cell):
            continue
        values = var.split(str(cell)) if var.kind == "multi" else [str(var.category(str(cell)))]
        for v in (v for v in values if v not in declared):
            out.add("error", "category_unknown",
                    f"{var.name} = {v!r} is not a declared category ({', '.join(var.categories)})"
                    f"{close_match(v, var.categories)}: correct it, or declare it in the dictionary's "
                    f"variables.{var.name}.categories", idx, var.name)


def _check_duplicates(df: pd.DataFrame, d: Dictionary, out: Collector) -> None:
    cols = [c for c in df.columns if c not in NON_LAB_COLUMNS]
    numeric = [c for c in cols if c in d and d[c].kind == "continuous"] or [
        c for c in cols if pd.api.types.is_numeric_dtype(df[c])]
    rows = df[df[numeric].notna().sum(axis=1) >= MIN_LAB_VALUES_FOR_DUPLICATES] if numeric else df.iloc[:0]
    if rows.empty:
        return
    if "patient_id" in df.columns:  # several nodules of one patient share their labs
        rows = rows[~rows.duplicated(subset=["patient_id", *cols])]
    group = rows.groupby(cols, dropna=False, sort=False).ngroup()
    first: dict[int, object] = {}
    for idx, g in group.items():
        if g not in first:
            first[g] = idx
            continue
        out.add("warning", "duplicate_row",
                f"lab values identical to {out.case(first[g])} in every column: a double entry? "
                "remove it if it is the same patient", idx)


def _check_top_code(df: pd.DataFrame, var: Variable, out: Collector) -> None:
    """Values equal to the variable's ``top_code`` and none higher: recorded top-coded (age 90 = over 89)."""
    top, col = float(var.top_code), var.name  # type: ignore[arg-type]
    values = df[col].dropna()
    capped = values.index[values == top]
    if len(capped) and not (values > top).any():
        out.add("warning", f"{col}_capped",
                f"{len(capped)} {col}(s) equal {_fmt(top)} and none is higher ({out.where(capped)}): "
                f"{col}s over {_fmt(top - 1)} look top-coded to {_fmt(top)} (de-identification), "
                f"so these patients may be older", column=col)


def _check_patients(df: pd.DataFrame, d: Dictionary, out: Collector) -> None:
    """A ``constant_per_patient`` variable that differs between a patient's rows, or a ``patient_drift`` one
    spread wider than its drift: an error ``patient_conflict_<name>`` naming the patient and the lines."""
    groups = df.dropna(subset=["patient_id"]).groupby("patient_id", sort=False)
    for col, var in d.variables.items():
        if col not in df.columns:
            continue
        if var.constant_per_patient:
            n = groups[col].nunique()
            for pid in n.index[n > 1]:
                rows = groups.get_group(pid)
                values = "/".join(sorted(map(str, rows[col].dropna().unique())))
                out.add("error", f"patient_conflict_{col}", f"patient {pid} has {col} {values} on "
                        f"{out.where(rows.index)}: fix the {col} or the patient_id", rows.index[-1], col)
        if var.patient_drift is not None and var.kind == "continuous":
            span = groups[col].max() - groups[col].min()
            for pid in span.index[span > var.patient_drift]:
                rows = groups.get_group(pid)
                unit = f" {var.unit}" if var.unit else ""
                out.add("error", f"patient_conflict_{col}",
                        f"patient {pid} has {col} {_fmt(rows[col].min())}-{_fmt(rows[col].max())} on "
                        f"{out.where(rows.index)} (> {_fmt(var.patient_drift)}{unit} apart): fix the {col} "
                        "or the patient_id", rows.index[-1], col)


def validate_labs(df: pd.DataFrame, units: Mapping[str, str] | None = None,
                  source: str = "lab table", dictionary: Dictionary | None = None) -> list[Finding]:
    """Check the clinical columns of ``df`` (a manifest from ``read_manifest`` or a raw lab table).

    ``units`` are declared units still to be converted ({column: unit}; pass None for a frame
    from ``read_manifest``, which converted already). Rows are named by CSV line (index + 2 for a
    frame without line attrs) and case_id when present. ``dictionary``: the variables checked (default: the
    active one, :func:`liver_mm.dictionary.active`). Returns the findings (errors and warnings).
    """
    d = dictionary or active()
    variables = d.variables
    df = blank_missing_tokens(df, d)  # (a frame from read_manifest has none left)
    out = Collector(df, source)
    out.units = dict(units or df.attrs.get("units", {}))
    try:
        df = convert_units(df, units, dictionary)
    except ManifestError as exc:
        out.add("error", exc.code, str(exc), column=exc.column)
        return list(out)
    bad = dict(df.attrs.get(NON_NUMERIC_ATTR, {}))
    for col, spec in variables.items():
        if col not in df.columns or spec.kind != "continuous" or pd.api.types.is_numeric_dtype(df[col]):
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        wrong = num.isna() & df[col].notna()
        bad[col] = {i: str(v) for i, v in df.loc[wrong, col].items()}
        df[col] = num.astype("float64")
    for col, cells in bad.items():
        if col in variables:
            for idx, raw in cells.items():
                if CENSORED.match(raw):
                    out.add("error", "value_censored", censored_message(col, raw, variables[col].unit), idx, col)
                    continue
                out.add("error", "value_not_numeric",
                        f"{col} = {raw!r} is not a number; write it in {variables[col].unit} or leave it empty",
                        idx, col)
    for col, spec in variables.items():
        if col in df.columns and spec.kind != "continuous":
            df[col] = df[col].map(spec.category) if spec.kind != "multi" else df[col]
            (_check_binary if spec.kind == "binary" else _check_categories)(df, spec, out)
    for col, spec in variables.items():
        if col in df.columns and spec.kind == "continuous":
            _check_continuous(df, col, spec, out)
    _check_missing(df, out)
    _check_duplicates(df, d, out)
    for col, spec in variables.items():
        if col in df.columns and spec.kind == "continuous" and spec.top_code is not None:
            _check_top_code(df, spec, out)
    if "patient_id" in df.columns:
        _check_patients(df, d, out)
    return list(out)
