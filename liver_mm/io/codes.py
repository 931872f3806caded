"""Declared recodings of exported tables: code mappings and censored lab values. Never guessed.

- **Code mappings** (``--map sex=1:M,2:F``, ``--map label=0:benign,1:malignant``; config
  ``data.map: {sex: {1: M, 2: F}}``): each listed cell code (compared stripped, case-insensitively)
  is replaced by its value; a code the mapping does not list is left as it is, so the validator
  names it (file, line, column) with the ``--map`` remedy. A code mapped to two values (``sex=1:M,1:F``,
  or over two ``--map sex`` options) is an error naming the option and the code.
- **Censored labs** (``<5``, ``> 1000``, ``<=0,5``): refused by default (``value_censored``).
  With ``censored=limit`` (``--censored limit`` / ``data.censored: limit``) the cell becomes the
  limit and a 0/1 column ``<lab>_censored`` (1 = the cell was censored) is added for each lab with
  at least one censored cell; :class:`~liver_mm.features.tabular.TabularPreprocessor` feeds it to the
  model next to the lab.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CENSORED = re.compile(r"^\s*(?P<op>[<>]=?)\s*(?P<num>[+-]?\d+(?:\.\d+)?)\s*$")
CENSORED_SUFFIX = "_censored"
CENSORED_MODES = ("error", "limit")


def map_targets(column: str) -> tuple[str, ...] | None:
    """The values a mapping of ``column`` may produce: the label's classes, or a category variable's
    categories in the active data dictionary (the shipped one: ``sex`` F/M); None for any other column."""
    from liver_mm.dictionary import CATEGORY_KINDS, active
    from liver_mm.stats._inputs import CLASSES

    if column == "label":
        return tuple(CLASSES)
    var = active().get(column)
    return tuple(var.categories) if var is not None and var.kind in CATEGORY_KINDS else None


def _add_code(table: dict[str, str], code: str, value: str, where: str) -> None:
    """Add ``code`` -> ``value`` to ``table``; a code already mapped (stripped, any case) to another value
    raises ``ValueError`` naming ``where`` and the code. The same code mapped to the same value twice is
    accepted (it says nothing new)."""
    code, value = code.strip(), value.strip()
    old = next((k for k in table if k.lower() == code.lower()), None)
    if old is not None and table[old] != value:
        raise ValueError(f"{where}: code {code!r} is mapped twice (to {table[old]} and to {value}): "
                         "map each code once")
    table.setdefault(old if old is not None else code, value)


def parse_map(text: str) -> tuple[str, dict[str, str]]:
    """``'sex=1:M,2:F'`` -> ``('sex', {'1': 'M', '2': 'F'})``; raises ``ValueError`` naming the form, or the
    option and the code when one code is mapped to two values (``sex=1:M,1:F``; ``1:M,1:M`` is accepted)."""
    col, sep, pairs = text.partition("=")
    out: dict[str, str] = {}
    for pair in pairs.split(","):
        code, colon, value = pair.partition(":")
        if not colon or not code.strip() or not value.strip():
            raise ValueError(f"expected COLUMN=CODE:VALUE[,CODE:VALUE...] (e.g. sex=1:M,2:F), got {text!r}")
        _add_code(out, code, value, f"--map {text}")
    if not sep or not col.strip():
        raise ValueError(f"expected COLUMN=CODE:VALUE[,CODE:VALUE...] (e.g. sex=1:M,2:F), got {text!r}")
    return col.strip(), out


def merge_maps(parsed: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, dict[str, str]]:
    """{column: {code: value}} of several ``--map`` options (:func:`parse_map` pairs); a code that two options
    of one column map to different values raises ``ValueError`` naming ``--map <column>`` and the code."""
    out: dict[str, dict[str, str]] = {}
    for col, table in parsed:
        merged = out.setdefault(col, {})
        for code, value in table.items():
            _add_code(merged, code, value, f"--map {col}")
    return out


def check_maps(maps: Mapping[str, Mapping[object, object] | str]) -> dict[str, dict[str, str]]:
    """Declared mappings as {column: {code: value}} (text); a column's mapping may be written as the
    ``--map`` text (``{sex: "1:M,2:F"}``). Raises ``ValueError`` for a value that the column cannot hold
    (:func:`map_targets`: label benign/malignant, a category variable its categories) or a code mapped to two values (``{1: M, "1": F}``). A YAML
    mapping ``{1: M, 1: F}`` loses its first entry in OmegaConf before it gets here: the text form
    catches that too."""
    out: dict[str, dict[str, str]] = {}
    for col, table in maps.items():
        col = str(col)
        if isinstance(table, str):
            table = parse_map(f"{col}={table}")[1]
        merged: dict[str, str] = {}
        for code, value in table.items():
            _add_code(merged, str(code), str(value), f"map {col}")
        allowed = map_targets(col)
        for code, value in merged.items():
            if allowed is not None and value not in allowed:
                raise ValueError(f"map {col}={code}:{value}: {col} must map to one of {', '.join(allowed)}")
        out[col] = merged
    return out


def map_remedy(column: str, codes: Iterable[object], targets: Iterable[object] = ()) -> str:
    """The ``--map`` option a user would pass for ``codes`` of ``column`` (``targets``: what the codes may
    mean, default :func:`map_targets`; the user checks which is which)."""
    shown = sorted({str(c) for c in codes})[:4]
    targets = tuple(map(str, targets)) or map_targets(column) or ("VALUE",)
    example = ",".join(f"{c}:{targets[min(i, len(targets) - 1)]}" for i, c in enumerate(shown))
    return (f"declare what the codes mean with --map {column}={example} (check which is which; "
            f"config data.map: {{{column}: {{...}}}})")


def unmapped_codes(df: pd.DataFrame, column: str, allowed: Iterable[object]) -> tuple[pd.Series, str]:
    """(the cells of ``column`` that are not ``allowed``, the remedy to print): extend the declared ``--map``
    when there is one (``df.attrs["maps"]``), else declare one."""
    allowed = list(allowed)
    wrong = df[column].dropna()
    wrong = wrong[~wrong.isin(allowed)]
    if wrong.empty:
        return wrong, ""
    declared = df.attrs.get("maps", {}).get(column)
    if declared:
        return wrong, f"the declared --map {column} lists {', '.join(declared)} only: add this code"
    return wrong, map_remedy(column, wrong, allowed)


def apply_maps(df: pd.DataFrame, maps: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Copy of ``df`` (text cells) with the declared codes replaced; unlisted codes kept for the validator."""
    df = df.copy()
    for col, table in maps.items():
        if col not in df.columns:
            log.warning("--map %s: no column %r in the table (columns: %s)", col, col, ", ".join(df.columns))
            continue
        lookup = {k.lower(): v for k, v in table.items()}
        df[col] = df[col].map(
            lambda v, lk=lookup: lk.get(v.strip().lower(), v) if isinstance(v, str) else v).astype(object)
    return df


def censored_cells(df: pd.DataFrame, columns: Collection[str]) -> dict[str, dict[object, str]]:
    """{column: {index label: raw text}} of the ``<x`` / ``>x`` cells of ``columns``."""
    out: dict[str, dict[object, str]] = {}
    for col in columns:
        if col in df.columns:
            text = df[col].astype(object)
            hits = {i: str(v) for i, v in text.items() if isinstance(v, str) and CENSORED.match(v)}
            if hits:
                out[col] = hits
    return out


def substitute_censored(df: pd.DataFrame, columns: Collection[str]) -> pd.DataFrame:
    """Copy of ``df`` with each censored cell of ``columns`` replaced by its limit (text) and a 0/1
    ``<col>_censored`` column after each column holding one (logged)."""
    df = df.copy()
    for col, cells in censored_cells(df, columns).items():
        flag = pd.Series(np.int64(0), index=df.index)
        for idx, raw in cells.items():
            df.at[idx, col] = CENSORED.match(raw)["num"]
            flag[idx] = 1
        name = col + CENSORED_SUFFIX
        if name in df.columns:
            df = df.drop(columns=name)
        df.insert(df.columns.get_loc(col) + 1, name, flag)
        log.warning("%s: %d censored value(s) (e.g. %r) read as their limit; %s marks them (censored=limit)",
                    col, len(cells), next(iter(cells.values())), name)
    return df


def censored_message(column: str, raw: str, unit: str) -> str:
    """The refusal of one censored cell, with the remedy."""
    m = CENSORED.match(raw)
    limit = m["num"] if m else "?"
    side = "below" if m and m["op"].startswith("<") else "above"
    return (f"{column} = {raw!r} is censored ({side} the assay's limit {limit} {unit}): not a measured value. "
            f"Pass --censored limit (config data.censored: limit) to use {limit} and mark the cell in "
            f"{column}{CENSORED_SUFFIX} = 1, or enter the measured value")
