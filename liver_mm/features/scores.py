"""The clinical fibrosis scores a hepatologist already uses, as pure formulas over manifest columns.

- FIB-4 = age [years] * AST [U/L] / (platelets [10^9/L] * sqrt(ALT [U/L]))  (Sterling et al., 2006)
- APRI = (AST [U/L] / AST upper limit of normal [U/L]) / platelets [10^9/L] * 100  (Wai et al., 2003)

The manifest's ``platelets`` column is in the paper's unit, x10^4/uL (= 10 x 10^9/L); a frame whose platelet
column is in another unit says so with ``platelet_unit`` (any unit the shipped data dictionary converts for
platelets: ``x10^9/L``, ``/uL``, ...). A manifest read with its declared ``data.units`` already
holds x10^4/uL, the default here. Missing inputs give NaN (the caller decides what a missing score means).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liver_mm.dictionary import default_dictionary

_PLATELETS = default_dictionary()["platelets"]  # the formulas' units are the shipped dictionary's
#: the canonical platelet unit of a manifest (the shipped dictionary), and 10^9/L per unit of it
PLATELET_UNIT = _PLATELETS.unit
_PER_10_9_L = 10.0  # 1 x10^4/uL = 10^4 * 10^6 / L = 10 x 10^9/L
#: AST upper limit of normal used by APRI when none is configured (U/L)
DEFAULT_AST_ULN = 40.0
#: the inputs each score reads (manifest columns; a study runs a score only where its dictionary declares them)
SCORE_INPUTS: dict[str, tuple[str, ...]] = {"fib4": ("age", "ast", "alt", "platelets"), "apri": ("ast", "platelets")}
#: published cut-offs: FIB-4 < 1.45 rules out, > 3.25 rules in advanced fibrosis; APRI 0.5 / 1.5 likewise
PUBLISHED_CUTOFFS: dict[str, tuple[float, ...]] = {"fib4": (1.45, 3.25), "apri": (0.5, 1.5)}


def _column(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        raise KeyError(f"column {col!r} is needed by the score and missing (columns: {', '.join(map(str, df.columns))})")
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)


def platelets_10_9_per_l(df: pd.DataFrame, platelet_unit: str = PLATELET_UNIT) -> np.ndarray:
    """The ``platelets`` column (N,) converted from ``platelet_unit`` to 10^9/L; ``KeyError`` for a unit the
    schema does not accept for platelets."""
    try:
        factor = _PLATELETS.factor(platelet_unit)  # -> x10^4/uL
    except KeyError:
        raise KeyError(f"platelet unit {platelet_unit!r} is not accepted; use one of "
                       f"{', '.join(_PLATELETS.accepted_units)}") from None
    return _column(df, "platelets") * factor * _PER_10_9_L


def fib4(df: pd.DataFrame, platelet_unit: str = PLATELET_UNIT) -> pd.Series:
    """FIB-4 (N,) = age * AST / (platelets[10^9/L] * sqrt(ALT)); index of ``df``, NaN where an input is missing."""
    value = _column(df, "age") * _column(df, "ast") / (platelets_10_9_per_l(df, platelet_unit)
                                                         * np.sqrt(_column(df, "alt")))
    return pd.Series(value, index=df.index, name="fib4")


def apri(df: pd.DataFrame, ast_uln: float = DEFAULT_AST_ULN, platelet_unit: str = PLATELET_UNIT) -> pd.Series:
    """APRI (N,) = (AST / ``ast_uln``) / platelets[10^9/L] * 100; index of ``df``, NaN where an input is missing."""
    if not float(ast_uln) > 0:
        raise ValueError(f"the AST upper limit of normal must be > 0 U/L, got {ast_uln}")
    value = _column(df, "ast") / float(ast_uln) / platelets_10_9_per_l(df, platelet_unit) * 100.0
    return pd.Series(value, index=df.index, name="apri")


def clinical_score(name: str, df: pd.DataFrame, platelet_unit: str = PLATELET_UNIT,
                   ast_uln: float = DEFAULT_AST_ULN) -> pd.Series:
    """Score ``name`` (``fib4`` | ``apri``) of every row of ``df`` (N,)."""
    if name == "fib4":
        return fib4(df, platelet_unit)
    if name == "apri":
        return apri(df, ast_uln, platelet_unit)
    raise ValueError(f"unknown clinical score {name!r}; expected one of {', '.join(SCORE_INPUTS)}")
