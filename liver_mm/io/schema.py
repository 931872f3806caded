"""The cohort manifest: its columns, clinical units and ranges, and :func:`read_manifest`.

One row per nodule (see README). Clinical values are kept in the units of the data dictionary
(:mod:`liver_mm.dictionary`); other units are converted only when the user *declares* them
(``units={"albumin": "g/L"}`` / ``--unit albumin=g/L``), never guessed. The CSV is read by
:mod:`liver_mm.io.csvread` (CSV of any common dialect or .xlsx; :class:`TableOptions` declares the
separator, decimal mark, censored-value handling and code mappings), headers matching
:func:`known_columns` case-insensitively (``AST`` -> ``ast``, each such match logged as a warning).
DICOM images add their physical pixel size (``mm_per_px_x`` / ``mm_per_px_y``) and the lesion box's
size in mm (``bbox_w_mm`` / ``bbox_h_mm``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm import catalog
from liver_mm.dictionary import CATEGORY_KINDS, Dictionary, Variable, active, default_dictionary
from liver_mm.io.codes import CENSORED_SUFFIX, apply_maps, substitute_censored
from liver_mm.io.csvread import TEXT_COLUMNS, ManifestError, read_csv_table
from liver_mm.io.dialect import TableOptions
from liver_mm.io.dicom import DicomReadError, dicom_info, is_dicom
from liver_mm.io.images import ImageCache, ImageReadError, mask_union_bbox
from liver_mm.io.recode import recode_by_dictionary, rename_aliases
from liver_mm.stats import encode_labels
from liver_mm.stats._inputs import CLASSES

LABELS = CLASSES  # index = integer label (malignant = 1): liver_mm.stats' coding
SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("case_id", "patient_id", "image_path", "label")
BBOX_COLUMNS = ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")  # pixels, x1/y1 exclusive
BBOX2_COLUMNS = ("bbox2_x0", "bbox2_y0", "bbox2_x1", "bbox2_y1")  # second observer (synthetic)
FRAME_COLUMN = "frame"  # 0-based frame of a DICOM clip (default 0)
MM_COLUMNS = ("mm_per_px_x", "mm_per_px_y")  # DICOM ultrasound region's pixel size (mm)
SIZE_MM_COLUMNS = ("bbox_w_mm", "bbox_h_mm")  # lesion box size in mm (derived, never read)
# manifest columns that are not lab/clinical data (excluded from lab checks)
NON_LAB_COLUMNS = frozenset((*REQUIRED_COLUMNS, "mask_path", "subtype", "diagnostic_basis", "split",
                             *BBOX_COLUMNS, *BBOX2_COLUMNS, FRAME_COLUMN, *MM_COLUMNS, *SIZE_MM_COLUMNS))
LINES_ATTR = "manifest_lines"  # df.attrs key: {index label: CSV line number}
SOURCE_ATTR = "manifest_source"
NON_NUMERIC_ATTR = "manifest_non_numeric"  # df.attrs key: {column: {index label: raw text}}

log = logging.getLogger(__name__)


#: one clinical variable (unit, ranges, conversions, categories): the data dictionary's
#: :class:`~liver_mm.dictionary.Variable`; the one table of unit rules, applied to single values by
#: :func:`liver_mm.cohort.validate_labs.judge_value` (validator and server alike)
ClinicalColumn = Variable
#: the manifest's own columns (the clinical ones are the data dictionary's variables: :func:`known_columns`)
MANIFEST_COLUMNS = (*REQUIRED_COLUMNS, "mask_path", *BBOX_COLUMNS, *BBOX2_COLUMNS, "subtype", "diagnostic_basis",
                    "split", FRAME_COLUMN, *MM_COLUMNS)
#: modality set -> the clinical columns its models use (conf/modalities/<name>.yaml, the one source; m1 = image only)
MODEL_COLUMNS = catalog.modality_features()

#: benign -> 0, malignant -> 1 ((n,) int8; 0/1 text accepted): the one label encoding, from liver_mm.stats
label_to_int = encode_labels


def convert_units(df: pd.DataFrame, units: Mapping[str, str] | None, dictionary: Dictionary | None = None
                  ) -> pd.DataFrame:
    """Copy of ``df`` with declared units converted to the canonical ones.

    ``units``: {column: unit}. Raises :class:`ManifestError` (code ``unit_unknown``) for a column
    without known conversions or a unit not accepted for it; absent columns are ignored.
    """
    df = df.copy()
    variables = (dictionary or active()).variables
    for col, unit in (units or {}).items():
        spec = variables.get(col)
        if spec is None or spec.kind != "continuous":
            raise ManifestError(f"--unit {col}={unit}: no unit conversions for column {col!r} "
                                f"(known: {', '.join(c for c, s in variables.items() if s.conversions)})",
                                code="unit_unknown", column=col)
        try:
            factor = spec.factor(unit)
        except KeyError:
            raise ManifestError(f"--unit {col}={unit}: unit not accepted for {col}; use one of "
                                f"{', '.join(spec.accepted_units)}", code="unit_unknown", column=col) from None
        if col in df.columns:
            num = pd.to_numeric(df[col], errors="coerce") * factor
            keep = num.isna() & df[col].notna()  # text such as "<5" stays for the validator to name
            df[col] = num.astype(object).where(~keep, df[col]) if keep.any() else num
    return df


def split_paths(value: object) -> list[str]:
    """``'a.png; b.png'`` -> ``['a.png', 'b.png']`` (empty/NaN -> [])."""
    return [p.strip() for p in value.split(";") if p.strip()] if isinstance(value, str) else []


def known_columns(dictionary: Dictionary | None = None) -> tuple[str, ...]:
    """The manifest's columns and the dictionary's variables (headers matched case-insensitively)."""
    return (*MANIFEST_COLUMNS, *(dictionary or active()).variables)


def text_columns(dictionary: Dictionary | None = None) -> frozenset[str]:
    """Columns never holding numbers (no decimal mark looked for): the manifest's text columns and the
    dictionary's category variables (names and aliases)."""
    d = dictionary or active()
    return TEXT_COLUMNS | {h for v in d.variables.values() if v.kind in CATEGORY_KINDS for h in (v.name, *v.aliases)}


def read_raw_table(path: str | Path, log_renames: bool = True, options: TableOptions | None = None,
                   known: tuple[str, ...] | None = None, dictionary: Dictionary | None = None) -> pd.DataFrame:
    """:func:`~liver_mm.io.csvread.read_csv_table` with the manifest's columns and the dictionary's variables
    (:func:`known_columns`, or ``known``): stripped strings, index = CSV line, known headers matched
    case-insensitively; the dictionary's category columns read as text."""
    d = dictionary or active()
    return read_csv_table(path, known_columns(d) if known is None else known, log_renames, options, text_columns(d))


def recode(raw: pd.DataFrame, options: TableOptions | None, dictionary: Dictionary | None = None
           ) -> pd.DataFrame:
    """A raw table with the declared code mappings applied and, with ``censored='limit'``, censored
    cells of the dictionary's censorable variables replaced by their limit plus ``<lab>_censored`` columns
    (:mod:`liver_mm.io.codes`)."""
    options = options or TableOptions()
    out = apply_maps(raw, options.maps) if options.maps else raw
    if options.censored != "limit":
        return out
    censorable = [n for n, v in (dictionary or active()).variables.items() if v.censorable]
    return substitute_censored(out, censorable)


def _to_numeric(df: pd.DataFrame, columns: Iterable[str], bad: dict[str, dict[int, str]]) -> None:
    for col in columns:
        if col in df.columns:
            num = pd.to_numeric(df[col], errors="coerce")
            wrong = num.isna() & df[col].notna()
            if wrong.any():
                bad[col] = {int(i): str(v) for i, v in df.loc[wrong, col].items()}
            df[col] = num.astype("float64")


def read_manifest(path: str | Path, units: Mapping[str, str] | None = None, *,
                  cache: ImageCache | None = None, options: TableOptions | None = None,
                  dictionary: Dictionary | None = None) -> pd.DataFrame:
    """Read a cohort manifest CSV into a DataFrame (one row per nodule, RangeIndex).

    Headers are stripped, column order is free and extra columns are kept. ``image_path`` /
    ``mask_path`` become absolute (relative to the manifest's folder; ``;``-separated masks),
    declared ``units`` are converted, labels lower-cased, categories normalised, and an empty bbox
    is taken from the union of the row's masks when they can be read. Non-numeric clinical/bbox
    cells become NaN and are listed in ``df.attrs[NON_NUMERIC_ATTR]``; CSV line numbers are kept
    in ``df.attrs[LINES_ATTR]`` (see :func:`line_numbers`). ``options``: how the file is written and
    declared recodings (:class:`TableOptions`). ``dictionary``: the clinical variables (default: the active
    one, :func:`liver_mm.dictionary.active`): aliases, missing tokens and categories recoded by it
    (:mod:`liver_mm.io.recode`), its continuous variables read as numbers. Raises :class:`ManifestError`
    only when the file cannot be read at all or a declared unit is unknown.
    """
    return read_manifest_table(path, units, cache=cache, options=options, dictionary=dictionary)[1]


def read_manifest_table(path: str | Path, units: Mapping[str, str] | None = None, *,
                        cache: ImageCache | None = None, options: TableOptions | None = None,
                        dictionary: Dictionary | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table as read: :func:`read_raw_table`, left unchanged; :func:`read_manifest`'s frame of it): one read
    of the file, for a caller that also hashes or copies the table (the study's split)."""
    path = Path(path)
    d = dictionary or active()
    table = read_raw_table(path, options=options, dictionary=d)
    raw = rename_aliases(table, d)
    raw = recode_by_dictionary(recode(raw, options, d), d)
    lines = raw.index.to_numpy()
    df = raw.reset_index(drop=True)
    bad: dict[str, dict[int, str]] = {}
    numeric = [*d.continuous, *BBOX_COLUMNS, *BBOX2_COLUMNS, FRAME_COLUMN, *MM_COLUMNS]
    _to_numeric(df, numeric, bad)
    for col in (c + CENSORED_SUFFIX for c in d.continuous if c + CENSORED_SUFFIX in df.columns):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")  # no lab value: not censored
    df = convert_units(df, units, d)
    root = path.resolve().parent
    if "image_path" in df.columns:
        df["image_path"] = df["image_path"].map(lambda p: str(root / p) if isinstance(p, str) else p)
    if "mask_path" in df.columns:
        df["mask_path"] = df["mask_path"].map(
            lambda v: ";".join(str(root / p) for p in split_paths(v)) or np.nan)
        _bbox_from_masks(df, cache)
    if "image_path" in df.columns:
        _physical_size(df)
    if "label" in df.columns:
        df["label"] = df["label"].str.lower()
    df.attrs = {SOURCE_ATTR: str(path), LINES_ATTR: {i: int(n) for i, n in enumerate(lines)},
                NON_NUMERIC_ATTR: bad, "units": dict(units or {}), "maps": dict((options or TableOptions()).maps)}
    return table, df


def _bbox_from_masks(df: pd.DataFrame, cache: ImageCache | None) -> None:
    for col in BBOX_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    empty = df[list(BBOX_COLUMNS)].isna().all(axis=1) & df["mask_path"].notna()
    for i in df.index[empty]:
        try:
            box = mask_union_bbox(split_paths(df.at[i, "mask_path"]), cache)
        except ImageReadError:
            continue  # reported by the validator
        if box is not None:
            df.loc[i, list(BBOX_COLUMNS)] = box


def _physical_size(df: pd.DataFrame) -> None:
    """Fill ``mm_per_px_x/y`` of DICOM rows from their header (when empty) and derive ``bbox_w/h_mm``."""
    dcm = df["image_path"].map(lambda p: isinstance(p, str) and is_dicom(p))
    if not dcm.any() and not all(c in df.columns for c in MM_COLUMNS):
        return
    for col in MM_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    for i in df.index[dcm & df[list(MM_COLUMNS)].isna().any(axis=1)]:
        box = df.loc[i, list(BBOX_COLUMNS)].astype("float64") if BBOX_COLUMNS[0] in df.columns else None
        near = None if box is None or box.isna().any() else tuple(box.tolist())  # the box must lie in a region
        try:
            mm = dicom_info(df.at[i, "image_path"], near).mm_per_px
        except (OSError, DicomReadError):
            continue  # reported by the validator
        if mm is not None:
            df.loc[i, list(MM_COLUMNS)] = mm
    if all(c in df.columns for c in BBOX_COLUMNS):
        b = df[list(BBOX_COLUMNS)].astype("float64")
        df[SIZE_MM_COLUMNS[0]] = ((b["bbox_x1"] - b["bbox_x0"]) * df[MM_COLUMNS[0]]).round(3)
        df[SIZE_MM_COLUMNS[1]] = ((b["bbox_y1"] - b["bbox_y0"]) * df[MM_COLUMNS[1]]).round(3)


def line_numbers(df: pd.DataFrame) -> pd.Series:
    """CSV line number of each row of a frame from :func:`read_manifest` (index-aligned).

    Frames not read by it get ``index + 2`` (the line of data row ``i`` of a plain CSV).
    """
    known = df.attrs.get(LINES_ATTR)
    if known:
        return pd.Series([known.get(i) for i in df.index], index=df.index, dtype="Int64")
    return pd.Series(np.arange(len(df)) + 2, index=df.index, dtype="Int64")


def manifest_hash(path: str | Path, options: TableOptions | None = None) -> str:
    """sha256 of the manifest's canonical CSV (cells stripped, columns and rows sorted):
    unchanged by column order, row order, whitespace, blank lines or file format (CSV dialect, .xlsx)."""
    # the shipped dictionary's headers: a cohort's hash does not depend on the dictionary it is read with
    return table_hash(read_raw_table(Path(path), log_renames=False, options=options, dictionary=default_dictionary()))


def shipped_headers(dictionary: Dictionary | None = None) -> bool:
    """True when the dictionary (default: the active one) reads a table's headers and text cells as the shipped
    one does: a raw table it read gives :func:`manifest_hash` by :func:`table_hash` (no second read)."""
    d = dictionary or active()
    return d is default_dictionary() or (known_columns(d) == known_columns(default_dictionary())
                                         and text_columns(d) == text_columns(default_dictionary()))


def table_hash(raw: pd.DataFrame) -> str:
    """:func:`manifest_hash` of a raw table (:func:`read_raw_table` with the shipped dictionary's headers)."""
    raw = raw[sorted(raw.columns)]
    raw = raw.sort_values(list(raw.columns), na_position="first", kind="stable")
    return hashlib.sha256(raw.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
