"""How a table file is written: separator and decimal mark (detected or declared), and spreadsheets.

- **Separator**: declared (``--sep`` / ``data.sep``) or detected by :class:`csv.Sniffer` among
  ``,`` ``;`` tab ``|`` on the first lines; a detected non-comma separator is logged. When the
  sniffer cannot decide, the error names the candidates seen and the ``--sep`` remedy.
- **Decimal mark**: declared (``--decimal`` / ``data.decimal``) or, for a file not separated by
  commas, detected when numbers such as ``4,5`` occur and no number could be read either way: a cell
  like ``1,500`` (thousands or 1.5?) or a mix of ``1,5`` and ``1.5`` is an error naming the
  file, line, column and the ``--decimal`` remedy. With decimal commas, numeric cells are rewritten
  with a point (``4,5`` -> ``4.5``, ``< 0,5`` -> ``< 0.5``); a number with a point is then an
  error (a thousands separator?), never read silently.
- **Spreadsheets**: ``.xlsx`` / ``.xlsm`` (openpyxl): the first worksheet, row 1 = header, row
  numbers as in the spreadsheet; numbers are written back as text the way Python prints them. A
  formula cell without a computed (cached) value is an error naming the cell, never an empty cell.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}
SPREADSHEET_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_SEP_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_COMMA_NUMBER = re.compile(r"^(?P<pre>[<>]=?\s*)?[+-]?\d+,(?P<frac>\d+)$")
_POINT_NUMBER = re.compile(r"^([<>]=?\s*)?[+-]?\d+\.\d+$")


@dataclass(frozen=True)
class TableOptions:
    """How to read a table: ``sep`` / ``decimal`` (None: detect), ``censored`` (``error``: refuse
    ``<5`` / ``>1000`` lab cells; ``limit``: use the limit and add ``<lab>_censored``), and ``maps``
    {column: {code: value}} declared code mappings (e.g. {"sex": {"1": "M", "2": "F"}})."""

    sep: str | None = None
    decimal: str | None = None
    censored: Literal["error", "limit"] = "error"
    maps: dict[str, dict[str, str]] = field(default_factory=dict)

    def key(self) -> dict[str, object]:
        """JSON-safe record of the non-default options ({} for defaults)."""
        out: dict[str, object] = {}
        if self.sep is not None:
            out["sep"] = self.sep
        if self.decimal is not None:
            out["decimal"] = self.decimal
        if self.censored != "error":
            out["censored"] = self.censored
        if self.maps:
            out["maps"] = {c: dict(sorted(m.items())) for c, m in sorted(self.maps.items())}
        return out


def normalise_sep(sep: str | None) -> str | None:
    """``'tab'`` / ``'\\t'`` -> tab, ``';'`` -> ``';'``; raises ``ValueError`` for anything else."""
    if sep is None:
        return None
    sep = _SEP_ALIASES.get(sep.lower(), sep)
    if sep not in SEPARATORS:
        raise ValueError(f"separator {sep!r} not supported: use one of , ; tab |")
    return sep


def detect_sep(text: str, source: object, error: type[ValueError]) -> str:
    """The separator of CSV ``text`` (logged when not a comma); raises ``error`` naming the candidates."""
    lines = [ln for ln in text.splitlines() if ln.strip()][:20]
    header = lines[0] if lines else ""
    seen = [s for s in SEPARATORS if s in header]
    if seen == [","] or not seen:
        return ","
    try:
        sep = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        sep = seen[0] if len(seen) == 1 else ""
    if sep not in SEPARATORS:
        names = ", ".join(f"{SEPARATORS[s]} ({s!r})" for s in seen)
        raise error(f"{source}, line 1: cannot tell the separator: the header holds {names}; pass --sep "
                    "(e.g. --sep ';' or --sep tab; config data.sep)")
    if sep != ",":
        log.info("%s: columns separated by %s (%r) (detected; declare it with --sep to skip detection)",
                 source, SEPARATORS[sep], sep)
    return sep


def detect_decimal(rows: list[list[str]], names: list[str], lines: list[int], sep: str,
                   text_columns: Collection[str], source: object, error: type[ValueError]) -> str:
    """``','`` when numeric cells use decimal commas unambiguously (logged), else ``'.'``; raises
    ``error`` naming the file, line and column when the cells do not say which it is."""
    commas: list[tuple[int, str, str]] = []
    points: list[tuple[int, str, str]] = []
    for rec, line in zip(rows, lines, strict=True):
        for name, cell in zip(names, rec, strict=False):
            if name in text_columns:
                continue
            cell = cell.strip()
            if _COMMA_NUMBER.match(cell):
                commas.append((line, name, cell))
            elif _POINT_NUMBER.match(cell):
                points.append((line, name, cell))
    if not commas:
        return "."
    sep_name = repr(sep) if sep != "\t" else "tab"
    remedy = f"pass --sep {sep_name} --decimal ',' (or --decimal '.'); config data.sep / data.decimal"
    line, col, cell = commas[0]
    if points:
        pl, pc, pcell = points[0]
        raise error(f"{source}: found {sep_name} separators with both decimal commas ({cell!r}, line {line}, "
                    f"column {col}) and points ({pcell!r}, line {pl}, column {pc}): {remedy}")
    three = [c for c in commas if len(_COMMA_NUMBER.match(c[2])["frac"]) == 3]
    if three:
        line, col, cell = three[0]
        raise error(f"{source}, line {line}, column {col}: {cell!r} may be a decimal comma or a thousands "
                    f"separator: found {sep_name} separators and decimal commas; {remedy}")
    log.info("%s: found %s separators and decimal commas (e.g. %r, line %d, column %s): read as decimal "
             "commas (declare --decimal ',' to skip detection)", source, sep_name, cell, line, col)
    return ","


def apply_decimal_comma(rows: list[list[str]], names: list[str], lines: list[int],
                        text_columns: Collection[str], source: object, error: type[ValueError]) -> None:
    """Rewrite decimal-comma numbers in place (``4,5`` -> ``4.5``); a number with a point raises ``error``."""
    for rec, line in zip(rows, lines, strict=True):
        for j, name in enumerate(names[:len(rec)]):
            if name in text_columns:
                continue
            cell = rec[j].strip()
            if _COMMA_NUMBER.match(cell):
                rec[j] = cell.replace(",", ".")
            elif _POINT_NUMBER.match(cell) or re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+", cell):
                raise error(f"{source}, line {line}, column {name}: {cell!r} has a point but the decimal mark "
                            "is ',' (a thousands separator?): write the number without it, or pass --decimal '.'")


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).upper()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        return v.isoformat()  # type: ignore[no-any-return]
    return str(v)


def read_spreadsheet(path: Path, error: type[ValueError]
                     ) -> tuple[str, list[str], list[list[str]], list[int]]:
    """(sheet title, row 1 as the header, rows 2.. as text, their spreadsheet row numbers) of the first
    worksheet of an .xlsx file. A formula cell holding no computed value (a file written by a program,
    never opened in Excel) raises ``error`` naming the cell: it is never read as empty."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        formulas = load_workbook(path, read_only=True, data_only=False)
    except FileNotFoundError:
        raise error(f"{path}: manifest not found") from None
    except Exception as exc:  # openpyxl raises zipfile / KeyError / InvalidFileException
        raise error(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    try:
        ws = wb.worksheets[0]
        if len(wb.worksheets) > 1:
            log.info("%s: reading the first worksheet %r of %d", path, ws.title, len(wb.worksheets))
        header: list[str] = []
        rows: list[list[str]] = []
        numbers: list[int] = []
        pairs = zip(ws.iter_rows(), formulas.worksheets[0].iter_rows(), strict=False)
        for n, (cells, raw) in enumerate(pairs, start=1):
            for cell, rcell in zip(cells, raw, strict=False):
                if cell.value is None and rcell.data_type == "f":
                    where = f"{ws.title}!{rcell.coordinate}"
                    raise error(f"{path}: cell {where} holds the formula {rcell.value!r} but no computed value "
                                "(the file was not saved by a spreadsheet program): open and save in Excel, or "
                                "export values")
            text = [_cell_text(c.value) for c in cells]
            if n == 1:
                header = text
                continue
            rows.append(text)
            numbers.append(n)
    finally:
        wb.close()
        formulas.close()
    while header and not header[-1].strip():  # trailing empty columns of the used range
        header.pop()
    return ws.title, header, rows, numbers


def make_options(sep: str | None = None, decimal: str | None = None, censored: str | None = None,
                 maps: Mapping[str, Mapping[object, object] | str] | None = None) -> TableOptions:
    """Checked :class:`TableOptions`; raises ``ValueError`` naming a bad separator, decimal mark,
    censored mode or mapping."""
    from liver_mm.io.codes import CENSORED_MODES, check_maps

    if decimal is not None and decimal not in (".", ","):
        raise ValueError(f"decimal mark {decimal!r} not supported: use '.' or ','")
    mode = censored or "error"
    if mode not in CENSORED_MODES:
        raise ValueError(f"censored={mode!r}: use 'error' (refuse <5 / >1000 cells) or 'limit'")
    return TableOptions(normalise_sep(sep), decimal, mode, check_maps(maps or {}))  # type: ignore[arg-type]


def options_from_config(data: Mapping[str, Any]) -> TableOptions:
    """:class:`TableOptions` of a ``data`` config group (keys ``sep``, ``decimal``, ``censored``, ``map``;
    absent keys: detect / refuse / no mapping). A ``map`` entry may be a mapping (``{sex: {1: M}}``) or the
    ``--map`` text (``{sex: "1:M,2:F"}``, where a code mapped twice is an error)."""
    maps = data.get("map") or {}
    return make_options(data.get("sep"), data.get("decimal"), data.get("censored"),
                        {str(k): v if isinstance(v, str) else dict(v) for k, v in dict(maps).items()})
