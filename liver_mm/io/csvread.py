"""A tolerant reader of tables (manifests, clinical tables): strings, line numbers.

CSV in any common dialect (``,`` ``;`` tab ``|`` separators, decimal commas: detected or declared, see
:mod:`liver_mm.io.dialect`) and ``.xlsx`` spreadsheets; cells are stripped and blank / NA tokens
become NaN; headers matching a known column case-insensitively are renamed to it (``AST`` -> ``ast``,
logged as a warning). A CSV record with more or fewer fields than the header is an error naming the file and
line (a missing separator would shift the values after it into the wrong columns); a spreadsheet row may end
early (its cells sit in their columns: what is not there is empty).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.io.dialect import (
    SPREADSHEET_SUFFIXES,
    TableOptions,
    apply_decimal_comma,
    detect_decimal,
    detect_sep,
    read_spreadsheet,
)

_NA_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A")
#: the manifest's columns never holding numbers: decimal marks are not looked for there (a reader adds the
#: data dictionary's category variables: :func:`liver_mm.io.schema.text_columns`)
TEXT_COLUMNS = frozenset({"case_id", "patient_id", "image_path", "mask_path", "label", "split", "subtype",
                          "diagnostic_basis"})

log = logging.getLogger(__name__)


class ManifestError(ValueError):
    """The manifest cannot be read at all (file, row, column named in the message)."""

    def __init__(self, message: str, code: str = "manifest_unreadable", column: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.column = column


def canonical_headers(names: list[str], known_columns: Collection[str], source: object,
                      log_renames: bool = True) -> list[str]:
    """``names`` with headers that match a ``known_columns`` name case-insensitively renamed to it
    (``AST`` -> ``ast``; logged). A header whose exact name is also present is kept as it is; two
    headers matching one name raise :class:`ManifestError` (code ``header_ambiguous``)."""
    known = {c.lower(): c for c in known_columns}
    matches: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        target = known.get(name.lower())
        if target is not None and name != target:
            matches.setdefault(target, []).append(i)
    out = list(names)
    for target, idxs in matches.items():
        found = ", ".join(repr(names[i]) for i in idxs)
        if target in names:
            if log_renames:
                log.warning("%s: column(s) %s kept as extra column(s): %r is present too", source, found, target)
        elif len(idxs) > 1:
            raise ManifestError(f"{source}, line 1: columns {found} all match {target!r}: keep one",
                                code="header_ambiguous", column=target)
        else:
            out[idxs[0]] = target
            if log_renames:
                log.warning("%s: column %s read as %r (headers match known columns case-insensitively)",
                            source, found, target)
    return out


def _csv_rows(path: Path, text: str, sep: str) -> tuple[list[str], list[list[str]], list[int]]:
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader, None) or []
        last = reader.line_num
        for rec in reader:
            start, last = last + 1, reader.line_num
            rows.append(rec)
            lines.append(start)
    except csv.Error as exc:
        raise ManifestError(f"{path}, line {reader.line_num}: not a valid CSV ({exc})") from None
    return header, rows, lines


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: cannot read the file ({exc}); save it as UTF-8 (CSV UTF-8 in "
                            "Excel's Save As) or as .xlsx") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the file ({exc})") from None


def read_csv_table(path: str | Path, known_columns: Collection[str] = (), log_renames: bool = True,
                   options: TableOptions | None = None, text_columns: Collection[str] = TEXT_COLUMNS) -> pd.DataFrame:
    """Read a CSV (any separator / decimal mark of :mod:`~liver_mm.io.dialect`) or an .xlsx sheet as
    stripped strings (blank / NA tokens -> NaN; decimal commas rewritten with a point); index = line
    (CSV) or row (spreadsheet) of each record; ``known_columns`` matched case-insensitively
    (:func:`canonical_headers`); ``text_columns`` never hold numbers (no decimal mark looked for there).

    Raises :class:`ManifestError` naming the file and line when it cannot be parsed or a CSV record has more or
    fewer fields than the header (code
    ``manifest_separator`` when the separator or decimal mark cannot be told).
    """
    path, options = Path(path), options or TableOptions()
    seen, sheet = ",", None
    try:
        if path.suffix.lower() in SPREADSHEET_SUFFIXES:
            sheet, header, records, lines = read_spreadsheet(path, ManifestError)
        else:
            text = _read_text(path)
            sep = options.sep or detect_sep(text, path, _SeparatorError)
            header, records, lines = _csv_rows(path, text, sep)
            seen = sep
        _find_header_row(path, sheet, header, records, lines, known_columns)
        if not header or not any(h.strip() for h in header):
            raise ManifestError(f"{path}: empty manifest (no header line)")
        names = [h.strip() for h in header]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "" in names:
            what = (f"duplicate column(s) {', '.join(dup)}" if dup
                    else f"empty column name at position {names.index('') + 1}")
            raise ManifestError(f"{path}, line 1: {what} in the header", column=dup[0] if dup else None)
        names = canonical_headers(names, known_columns, path, log_renames)
        width = len(names)
        rows: list[list[str]] = []
        kept: list[int] = []
        for rec, start in zip(records, lines, strict=True):
            if not any(c.strip() for c in rec):
                continue
            if len(rec) > width and (sheet is None or any(c.strip() for c in rec[width:])):
                raise ManifestError(_surplus_message(path, sheet, start, rec, names, known_columns, seen, records))
            if len(rec) < width and sheet is None:
                raise ManifestError(_short_message(path, start, rec, names, seen))
            rows.append((rec + [""] * width)[:width])  # a sheet row ends at its last filled cell: pad it
            kept.append(start)
        decimal = options.decimal or (detect_decimal(rows, names, kept, seen, text_columns, path, _SeparatorError)
                                      if seen != "," else ".")
        if decimal == ",":
            apply_decimal_comma(rows, names, kept, text_columns, path, _SeparatorError)
        elif sheet is None and seen == ",":
            _refuse_split_numbers(path, rows, names, kept, options, text_columns)
    except _SeparatorError as exc:
        raise ManifestError(str(exc), code="manifest_separator") from None
    df = pd.DataFrame(rows, columns=names, index=pd.Index(kept, dtype="int64"), dtype=object)
    df = df.apply(lambda s: s.str.strip()).replace(list(_NA_TOKENS), np.nan)
    return df.astype("str") if len(df) else df


def _known(cells: list[str], known_columns: Collection[str]) -> list[str]:
    known = {c.lower() for c in known_columns}
    return [c.strip() for c in cells if c.strip().lower() in known]


def _find_header_row(path: Path, sheet: str | None, header: list[str], records: list[list[str]],
                     lines: list[int], known_columns: Collection[str]) -> None:
    """Raise :class:`ManifestError` when line / row 1 names none of ``known_columns`` (or, without them,
    is empty) but a later one of the first 20 does (a title or blank rows above the header)."""
    if _known(header, known_columns) or (not known_columns and any(h.strip() for h in header)):
        return
    where, unit = (f"{path} (sheet {sheet})", "row") if sheet is not None else (str(path), "line")
    for rec, line in list(zip(records, lines, strict=True))[:20]:
        found = _known(rec, known_columns) or ([] if known_columns else [c for c in rec if c.strip()])
        if found:
            raise ManifestError(f"header row not found in {unit} 1 of {where}: found the columns "
                                f"{', '.join(found[:6])} on {unit} {line}; delete the {unit}s above the header")


def _surplus_message(path: Path, sheet: str | None, line: int, rec: list[str], names: list[str],
                     known_columns: Collection[str], sep: str, records: list[list[str]]) -> str:
    """Why a record with more fields than the header is refused, and the remedy (with the columns whose
    number may have split at a decimal comma: those holding decimals in the well-formed ``records``)."""
    width = len(names)
    if sheet is not None:
        from openpyxl.utils import get_column_letter

        j = next(k for k in range(width, len(rec)) if rec[k].strip())
        if known_columns and not _known(names, known_columns):
            expected = ", ".join(list(known_columns)[:4])
            return (f"header row not found in row 1 of {path} (sheet {sheet}): row 1 names none of the expected "
                    f"columns ({expected}, ...); the header must be on row 1")
        return (f"{path} (sheet {sheet}), row {line}: cell {sheet}!{get_column_letter(j + 1)}{line} holds "
                f"{rec[j].strip()!r} but its column has no header (row 1 names {width} columns)")
    msg = f"{path}, line {line}: {len(rec)} fields but the header names {width}"
    if width == 1:
        return f"{msg} (the header has no {sep!r}: is the separator {sep!r}? pass --sep)"
    # a split number "a,b" at fields k, k+1 belongs to column names[k] (the fields before it are still aligned)
    split = [k for k in range(min(width, len(rec) - 1))
             if _INT.fullmatch(rec[k].strip()) and rec[k + 1].strip().isdigit()]
    decimal = {k for k in split if any(len(r) == width and _DECIMAL.fullmatch(r[k].strip()) for r in records)}
    pairs = [f"{names[k]} {rec[k].strip()},{rec[k + 1].strip()}" for k in (sorted(decimal) or split)]
    if sep == "," and pairs:
        shown = "; ".join(f"'{p}'" for p in pairs[:4]) + (" ..." if len(pairs) > 4 else "")
        return (f"{msg}: a number with a decimal comma splits into two fields in a comma CSV (candidates: "
                f"{shown}); quote it (\"12,5\"), write it with a point, or save with ';' separators and pass "
                "--sep ';' --decimal ','; otherwise delete the surplus separators")
    return f"{msg}: quote values holding {sep!r}, or delete the surplus separators"


def _short_message(path: Path, line: int, rec: list[str], names: list[str], sep: str) -> str:
    """Why a delimited record with fewer fields than the header is refused: a missing separator shifts
    every value after it into the column on its left (an empty value is an empty field: ``a,,c``)."""
    width, last = len(names), names[len(rec) - 1]
    empty = ", ".join(names[len(rec):][:3]) + (" ..." if width - len(rec) > 3 else "")
    shown = "tab" if sep == "\t" else repr(sep)
    return (f"{path}, line {line}: {len(rec)} fields but the header names {width}: {width - len(rec)} separator(s) "
            f"missing, so the values after a gap would move left into the wrong columns (the last value, "
            f"{rec[-1].strip()!r}, would be read as {last}; {empty} left empty); write an empty value as an empty "
            f"field (two {shown} in a row)")


def _refuse_split_numbers(path: Path, rows: list[list[str]], names: list[str], lines: list[int],
                          options: TableOptions, text_columns: Collection[str] = TEXT_COLUMNS) -> None:
    """Raise :class:`ManifestError` for a whole number in a text column right after a number in a numeric
    column (``...,3,7`` read as albumin 3 and diagnostic_basis 7: a decimal comma splitting a number) whose
    other cells are mostly text. Only free-text columns are looked at (label, sex, split, paths: the
    validator names a wrong value); columns holding mostly numbers, and codes of a declared ``--map``, pass."""
    for j in range(1, len(names)):
        col, prev = names[j], names[j - 1]
        if col not in _FREE_TEXT or prev in text_columns:
            continue
        hits = [i for i, rec in enumerate(rows) if _NUMBER.fullmatch(rec[j].strip())]
        texts = sum(1 for rec in rows if rec[j].strip() and not _NUMBER.fullmatch(rec[j].strip()))
        if not hits or texts <= len(hits):
            continue
        codes = {c.lower() for c in options.maps.get(col, {})}
        for i in hits:
            cell, before = rows[i][j].strip(), rows[i][j - 1].strip()
            if not (cell.isdigit() and _INT.fullmatch(before)) or cell.lower() in codes:
                continue
            raise ManifestError(
                f"{path}, line {lines[i]}, column {col}: {cell!r} is a number in a text column, right after "
                f"{prev} = {before!r}: is {before},{cell} one number with a decimal comma? Quote it "
                f"(\"{before},{cell}\"), write it with a point, or save with ';' separators and pass --sep ';' "
                "--decimal ','", column=col)


#: text columns whose values nothing checks later (a stray number would be kept silently)
_FREE_TEXT = frozenset({"case_id", "patient_id", "subtype", "diagnostic_basis"})
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class _SeparatorError(ValueError):
    """The separator or decimal mark cannot be told (re-raised as ``ManifestError``)."""
