"""One clinical variable's cells as numbers, by its kind in the data dictionary (:mod:`liver_mm.dictionary`).

* numbers (``continuous`` or undeclared): float64, ``log1p`` where declared (a negative value is an error);
* ``binary`` / ``ordinal``: the category's position in the declared list (0, 1, ...);
* ``categorical`` / ``multi``: an (N, k) 0/1 matrix over the declared categories (a ``multi`` cell may hold
  several, joined by the declared separator).

Cells are compared stripped and case-insensitively, synonyms mapped; the dictionary's ``missing`` tokens are
missing. A value that is not a declared category is a ``ValueError`` naming the column, row, value, the
declared categories and a close match when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from liver_mm.dictionary import Variable, close_match

CODED_KINDS = frozenset({"binary", "ordinal"})
HOT_KINDS = frozenset({"categorical", "multi"})


def row_name(df: pd.DataFrame, pos: int) -> str:
    if "case_id" in df.columns:
        return f"row {pos} (case_id={df['case_id'].iloc[pos]})"
    return f"row {pos}"


def unknown_message(feature: str, where: str, value: object, var: Variable, n_bad: int) -> str:
    text = str(value)
    return (f"column {feature!r}, {where}: {value!r} is not a declared category of {feature} "
            f"({', '.join(var.categories)}){close_match(text, var.categories)}; {n_bad} bad value(s) in total")


def missing_mask(col: pd.Series, tokens: Sequence[str]) -> np.ndarray:
    """(N,) bool: empty cells and cells equal (stripped, any case) to a missing token."""
    miss = col.isna().to_numpy()
    if tokens:
        low = {t.strip().lower() for t in tokens}
        miss = miss | col.map(lambda v: isinstance(v, str) and v.strip().lower() in low).to_numpy(dtype=bool)
    return miss


def cell_values(df: pd.DataFrame, feature: str, var: Variable, tokens: Sequence[str] = ()) -> list[list[str]]:
    """Per row of ``df``, the values a category variable's cell holds as the dictionary writes them (stripped,
    case and synonyms mapped; a ``multi`` cell's several values): [] for a missing cell. Undeclared values are
    kept as written (stripped), not refused."""
    col = df[feature]
    missing = missing_mask(col, tokens)
    out: list[list[str]] = []
    for pos, cell in enumerate(col.tolist()):
        text = cell if isinstance(cell, str) else str(cell)
        out.append([] if missing[pos] else var.split(text) if var.kind == "multi" else [str(var.category(text))])
    return out


def codes(df: pd.DataFrame, feature: str, var: Variable, tokens: Sequence[str] = ()) -> np.ndarray:
    """(N,) float64 positions of a binary / ordinal variable's cells in its categories; NaN = missing."""
    col = df[feature]
    missing = missing_mask(col, tokens)
    index = {c: float(i) for i, c in enumerate(var.categories)}
    out = col.map(lambda v: index.get(str(var.category(v)), np.nan) if isinstance(v, str | int | float)
                  else np.nan).astype("float64").to_numpy(copy=True)
    out[missing] = np.nan
    bad = ~missing & np.isnan(out)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(unknown_message(feature, row_name(df, pos), col.iloc[pos], var, int(bad.sum())))
    return out


def one_hot(df: pd.DataFrame, feature: str, var: Variable, tokens: Sequence[str] = ()
            ) -> tuple[np.ndarray, np.ndarray]:
    """((N, k) float64 0/1 over ``var.categories``, (N,) missing) of a categorical or multi variable."""
    col = df[feature]
    missing = missing_mask(col, tokens)
    index = {c: i for i, c in enumerate(var.categories)}
    out = np.zeros((len(df), len(index)), dtype=np.float64)
    bad: list[tuple[int, str]] = []
    for pos, cell in enumerate(col.tolist()):
        if missing[pos]:
            continue
        text = cell if isinstance(cell, str) else str(cell)
        values = var.split(text) if var.kind == "multi" else [str(var.category(text))]
        for v in values:
            if v in index:
                out[pos, index[v]] = 1.0
            else:
                bad.append((pos, v))
    if bad:
        pos, v = bad[0]
        raise ValueError(unknown_message(feature, row_name(df, pos), v, var, len(bad)))
    return out, missing


def numbers(df: pd.DataFrame, feature: str, log1p: bool, tokens: Sequence[str] = ()) -> np.ndarray:
    """(N,) float64 of a numeric column (``log1p`` applied when asked); NaN = missing."""
    col = df[feature]
    missing = missing_mask(col, tokens)
    out = pd.to_numeric(col.where(~missing), errors="coerce").astype("float64").to_numpy()
    bad = ~missing & ~np.isfinite(out)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {feature!r}, {row_name(df, pos)}: value {col.iloc[pos]!r} is not a finite number "
            f"({int(bad.sum())} bad value(s) in total)"
        )
    if log1p:
        neg = ~missing & (out < 0)
        if neg.any():
            pos = int(np.flatnonzero(neg)[0])
            raise ValueError(
                f"column {feature!r}, {row_name(df, pos)}: negative value {col.iloc[pos]!r} cannot be log1p "
                "transformed"
            )
        out = np.log1p(out)
    return out
