"""``liver-mm validate``: is a cohort manifest usable, and if not, what exactly to fix.

:func:`validate_manifest` returns every finding (row = CSV line, case_id, column, code, message);
:func:`load_valid_manifest` is the gate training and prediction go through. Stable codes:
manifest_unreadable, manifest_separator, header_ambiguous, manifest_empty, unit_unknown, missing_column,
missing_clinical_column, missing_value, duplicate_case_id, label_invalid, image_missing, image_unreadable,
image_too_large, mask_missing, mask_unreadable, mask_too_large, mask_empty, mask_inverted (warning),
mask_size_mismatch, mask_outside, frame_invalid, frame_out_of_range, burned_in_annotation (warning),
bbox_missing, bbox_invalid, bbox_empty,
bbox_outside, image_duplicate, image_duplicate_label_conflict, split_invalid, split_leak_patient,
split_leak_image, split_empty_class, and from :func:`validate_labs`: value_not_numeric,
value_censored, value_out_of_range, value_atypical, category_unknown, unit_suspect, median_atypical, missing_values,
duplicate_row, and by the dictionary's variables ``<binary>_unknown``, ``<top-coded>_capped``,
``patient_conflict_<variable>`` (the shipped one: sex_unknown, age_capped, patient_conflict_sex,
patient_conflict_age).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from liver_mm.cohort.grouping import split_leaks
from liver_mm.cohort.validate_images import check_bboxes, check_files, check_identical
from liver_mm.cohort.validate_labs import validate_labs
from liver_mm.cohort.validate_report import (
    Collector,
    Finding,
    ManifestValidationError,
    ValidationReport,
)
from liver_mm.dictionary import Dictionary, active, default_dictionary
from liver_mm.io.codes import unmapped_codes
from liver_mm.io.dialect import TableOptions
from liver_mm.io.images import ImageCache
from liver_mm.io.schema import (
    BBOX_COLUMNS,
    LABELS,
    MODEL_COLUMNS,
    REQUIRED_COLUMNS,
    SPLITS,
    ManifestError,
    read_manifest_table,
)

__all__ = ["Finding", "ManifestValidationError", "ValidationReport",
           "load_valid_manifest", "validate_labs", "validate_manifest"]

log = logging.getLogger(__name__)


def _check_steps(df: pd.DataFrame, d: Dictionary, out: Collector) -> None:
    """A user's dictionary: each variable its steps use must be a column (an error naming the steps)."""
    for col in dict.fromkeys(v for s in d.steps for v in s.add):
        if col not in df.columns:
            aliases = f" (or one of its aliases {', '.join(d[col].aliases)})" if d[col].aliases else ""
            out.add("error", "missing_column", f"variable {col!r} of the dictionary {d.source} is not a column "
                    f"of the table{aliases}; step(s) {', '.join(d.steps_needing(col))} need it", column=col)


def _check_columns(df: pd.DataFrame, require_clinical: Iterable[str], out: Collector,
                   dictionary: Dictionary | None = None) -> bool:
    """Required columns present? Returns False when row checks cannot run. With a user's ``dictionary`` its
    steps' variables are required (:func:`_check_steps`) instead of the shipped modality sets'."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if "mask_path" not in df.columns:
        missing += [c for c in BBOX_COLUMNS if c not in df.columns]
    for col in missing:
        hint = " (or give a mask_path column)" if col in BBOX_COLUMNS else ""
        out.add("error", "missing_column", f"required column {col!r} is missing{hint}; "
                f"columns found: {', '.join(df.columns)}", column=col)
    required = set(require_clinical)
    if dictionary is not None and dictionary is not default_dictionary():
        _check_steps(df, dictionary, out)
        required -= set(dictionary.variables)
        grouped: dict[str, None] = {}
    else:
        grouped = dict.fromkeys(c for cols in MODEL_COLUMNS.values() for c in cols)  # in the modality sets' order
    for col in grouped:
        if col not in df.columns:
            if col in required:
                out.add("error", "missing_column", f"clinical column {col!r} is required here "
                        f"but missing", column=col)
            else:
                users = [m for m, cols in MODEL_COLUMNS.items() if col in cols]
                out.add("warning", "missing_clinical_column", f"no {col!r} column: modality set(s) "
                        f"{', '.join(users)} cannot be trained on this cohort", column=col)
    for col in sorted(required - set(grouped) - set(df.columns)):  # other labs or extra feature columns
        out.add("error", "missing_column", f"column {col!r} is required here (a feature of this model) but "
                "missing", column=col)
    return not missing


def _check_rows(df: pd.DataFrame, out: Collector) -> None:
    for col in REQUIRED_COLUMNS:
        for idx in df.index[df[col].isna()]:
            out.add("error", "missing_value", f"{col} is empty: every row needs one", idx, col)
    dup = df["case_id"].notna() & df["case_id"].duplicated(keep=False)
    for cid, rows in df[dup].groupby("case_id", sort=False):
        for idx in rows.index[1:]:
            out.add("error", "duplicate_case_id", f"case_id {cid} already used on {out.case(rows.index[0])}: "
                    "give every nodule its own case_id", idx, "case_id")
    wrong, fix = unmapped_codes(df, "label", LABELS)
    for idx, v in wrong.items():
        out.add("error", "label_invalid", f"label {v!r} is not benign/malignant (malignant = the "
                f"positive class): recode it, or {fix}", idx, "label")


def _check_splits(df: pd.DataFrame, out: Collector) -> None:
    split = df["split"]
    for idx, v in split.items():
        if pd.isna(v) or v not in SPLITS:
            out.add("error", "split_invalid", f"split {'is empty' if pd.isna(v) else repr(v) + ' is unknown'}: "
                    f"use one of {', '.join(SPLITS)} (or drop the split column)", idx, "split")
    known = df[split.isin(SPLITS)]
    for leak in split_leaks(known, known["split"]):  # patients (identical images: check_identical)
        out.add("error", "split_leak_patient", leak.message(out.lines), leak.last_row, "split")
    counts = pd.crosstab(known["split"], known["label"]).reindex(index=list(SPLITS), columns=list(LABELS),
                                                                 fill_value=0)
    for s in SPLITS:
        for label in LABELS:
            if counts.at[s, label] == 0:
                out.add("error", "split_empty_class", f"split {s} has no {label} case: AUCs cannot be "
                        "computed there; re-split stratified by label", column="split")


def open_manifest(path: str | Path, units: Mapping[str, str] | None, options: TableOptions | None = None,
                  dictionary: Dictionary | None = None) -> tuple[ValidationReport, pd.DataFrame | None, ImageCache]:
    """Read a manifest for validation: (report holding the read error if any, frame or None, the
    image cache to share with the checks)."""
    report, _table, df, cache = open_manifest_table(path, units, options, dictionary)
    return report, df, cache


def open_manifest_table(path: str | Path, units: Mapping[str, str] | None, options: TableOptions | None = None,
                        dictionary: Dictionary | None = None
                        ) -> tuple[ValidationReport, pd.DataFrame | None, pd.DataFrame | None, ImageCache]:
    """:func:`open_manifest` keeping the table as read too (:func:`~liver_mm.io.schema.read_manifest_table`):
    (report, table or None, frame or None, image cache)."""
    report = ValidationReport(str(path))
    cache: ImageCache = {}
    try:
        table, df = read_manifest_table(path, units, cache=cache, options=options, dictionary=dictionary)
    except ManifestError as exc:
        report.findings.append(Finding("error", exc.code, str(exc), column=exc.column))
        return report, None, None, cache
    report.n_rows = len(df)
    return report, table, df, cache


def _validate(path: str | Path, units: Mapping[str, str] | None, check_images: bool,
              require_clinical: Iterable[str], options: TableOptions | None = None,
              dictionary: Dictionary | None = None) -> tuple[ValidationReport, pd.DataFrame | None]:
    report, df, cache = open_manifest(path, units, options, dictionary)
    if df is None:
        return report, None
    return validate_frame(report, df, cache, path, check_images, require_clinical, dictionary), df


def validate_frame(report: ValidationReport, df: pd.DataFrame, cache: ImageCache, path: str | Path,
                   check_images: bool = True, require_clinical: Iterable[str] = (),
                   dictionary: Dictionary | None = None) -> ValidationReport:
    """Every check of :func:`validate_manifest` on a manifest already read by :func:`open_manifest` (``report``,
    ``df``, ``cache``): the table is read once and then checked, never read again. Returns ``report`` with the
    findings."""
    out = Collector(df, str(path))
    if df.empty:
        out.add("error", "manifest_empty", "the manifest has a header but no rows: one row per nodule")
    elif _check_columns(df, require_clinical, out, dictionary or active()):
        _check_rows(df, out)
        shapes = check_files(df, out, cache) if check_images else None
        check_bboxes(df, shapes, out)
        if check_images:
            check_identical(df, cache, out)
        if "split" in df.columns:
            _check_splits(df, out)
    report.findings = [*report.findings, *out, *validate_labs(df, source=str(path), dictionary=dictionary)]
    return report


def validate_manifest(path: str | Path, units: Mapping[str, str] | None = None, check_images: bool = True,
                      require_clinical: Iterable[str] = (), options: TableOptions | None = None,
                      dictionary: Dictionary | None = None) -> ValidationReport:
    """Validate a cohort manifest CSV (and, with ``check_images``, every image and mask it names).

    ``units``: declared non-canonical units {column: unit} (e.g. {"albumin": "g/L"}).
    ``require_clinical``: clinical columns whose absence is an error (e.g. ``MODEL_COLUMNS["m5"]``);
    other absent clinical columns are warnings. ``options``: separator, decimal mark, censored values,
    code mappings (:class:`~liver_mm.io.dialect.TableOptions`). ``dictionary``: the clinical variables
    (default: the active one, :func:`liver_mm.dictionary.active`). Never raises for bad content.
    """
    return _validate(path, units, check_images, require_clinical, options, dictionary)[0]


def load_valid_manifest(path: str | Path, units: Mapping[str, str] | None = None,
                        require_clinical: Iterable[str] = (), options: TableOptions | None = None,
                        dictionary: Dictionary | None = None) -> pd.DataFrame:
    """:func:`~liver_mm.io.schema.read_manifest` after a full validation: raises
    :class:`ManifestValidationError` (with ``.report``) when not usable, logs the warnings otherwise."""
    report, df = _validate(path, units, True, require_clinical, options, dictionary)
    if df is None:
        raise ManifestValidationError(report)
    return raise_or_warn(report, df)


def raise_or_warn(report: ValidationReport, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` when ``report`` holds no error (its warnings logged), else :class:`ManifestValidationError`."""
    if not report.ok:
        raise ManifestValidationError(report)
    for finding in report.warnings:
        log.warning("%s", finding)
    return df
