"""A tolerant reader of comma-separated tables (manifests, clinical tables): strings, CSV line numbers.

Only commas separate (a header holding ``;`` / tabs / ``|`` that csv.Sniffer reads as the separator is
refused, naming it); cells are stripped and blank / NA tokens become NaN; headers matching a known
column case-insensitively are renamed to it (``AST`` -> ``ast``, logged as a warning).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd

_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
_NA_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "#N/A")

log = logging.getLogger(__name__)


class ManifestError(ValueError):
    """The manifest cannot be read at all (file, row, column named in the message)."""

    def __init__(self, message: str, code: str = "manifest_unreadable", column: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.column = column


def _check_separator(path: Path, text: str, header: list[str]) -> None:
    """Refuse a CSV whose header holds ``;`` / tab / ``|`` and which csv.Sniffer reads as separated by it."""
    if not any(sep in name for name in header for sep in _SEPARATORS):
        return
    sample = "\n".join(text.splitlines()[:5])
    try:
        sep = csv.Sniffer().sniff(sample, delimiters="," + "".join(_SEPARATORS)).delimiter
    except csv.Error:
        sep = max(_SEPARATORS, key=lambda c: sum(n.count(c) for n in header)) if len(header) == 1 else ","
    if sep in _SEPARATORS:
        raise ManifestError(f"{path}, line 1: the columns are separated by {_SEPARATORS[sep]} ({sep!r}), not "
                            "commas: the manifest must be comma-separated; re-export it as a comma-separated CSV",
                            code="manifest_separator")


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


def read_csv_table(path: str | Path, known_columns: Collection[str] = (), log_renames: bool = True
                   ) -> pd.DataFrame:
    """Read any comma-separated CSV as stripped strings (blank / NA tokens -> NaN); index = CSV line of
    each row; ``known_columns`` matched case-insensitively (:func:`canonical_headers`).

    Raises :class:`ManifestError` naming the file and line when it cannot be parsed (code
    ``manifest_separator`` when it is separated by ``;``, tabs or ``|``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        hint = "; save it as a UTF-8 CSV" if isinstance(exc, UnicodeDecodeError) else ""
        raise ManifestError(f"{path}: cannot read the file ({exc}){hint}") from None
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ManifestError(f"{path}: empty manifest (no header line)")
        _check_separator(path, text, header)
        names = [h.strip() for h in header]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "" in names:
            what = (f"duplicate column(s) {', '.join(dup)}" if dup
                    else f"empty column name at position {names.index('') + 1}")
            raise ManifestError(f"{path}, line 1: {what} in the header", column=dup[0] if dup else None)
        names = canonical_headers(names, known_columns, path, log_renames)
        width, last = len(names), reader.line_num
        for rec in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in rec):
                continue
            if len(rec) > width and any(c.strip() for c in rec[width:]):
                raise ManifestError(f"{path}, line {start}: {len(rec)} fields but the header names {width}")
            rows.append((rec + [""] * width)[:width])
            lines.append(start)
    except csv.Error as exc:
        raise ManifestError(f"{path}, line {reader.line_num}: not a valid CSV ({exc})") from None
    df = pd.DataFrame(rows, columns=names, index=pd.Index(lines, dtype="int64"), dtype=object)
    df = df.apply(lambda s: s.str.strip()).replace(list(_NA_TOKENS), np.nan)
    return df.astype("str") if len(df) else df
