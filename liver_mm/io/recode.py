"""A table recoded by the data dictionary (:mod:`liver_mm.dictionary`), in one pass after reading:

* a header that is a variable's alias is renamed to the variable (logged);
* cells equal to one of the dictionary's ``missing`` tokens (stripped, any case) become missing, in the
  declared variables' columns;
* category cells are written as the declared category when they differ only in case or surrounding
  spaces, or are a declared synonym (``female`` -> ``F``), with a logged note per column; any other text is
  kept as it is, for the validator to name (:mod:`liver_mm.cohort.validate_labs`). ``multi`` cells are
  recoded value by value and re-joined with the separator.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from liver_mm.dictionary import Dictionary

log = logging.getLogger(__name__)


def rename_aliases(df: pd.DataFrame, d: Dictionary) -> pd.DataFrame:
    """``df`` with alias headers renamed to their variable (never over an existing column)."""
    renames = {}
    for col in df.columns:
        name = d.column_of(str(col))
        if name is not None and name != col and name not in df.columns and name not in renames.values():
            renames[col] = name
    for old, new in renames.items():
        log.warning("column %r read as the dictionary's variable %r (an alias)", old, new)
    return df.rename(columns=renames) if renames else df


def blank_missing_tokens(df: pd.DataFrame, d: Dictionary) -> pd.DataFrame:
    """``df`` with the dictionary's missing tokens emptied in its variables' columns."""
    if not d.missing:
        return df
    tokens = {t.strip().lower() for t in d.missing}
    df = df.copy()
    for name in d.variables:
        if name in df.columns:
            hit = df[name].map(lambda v: isinstance(v, str) and v.strip().lower() in tokens).astype(bool)
            if hit.any():
                df[name] = df[name].astype(object).where(~hit, np.nan)
    return df


def normalise_categories(df: pd.DataFrame, d: Dictionary) -> pd.DataFrame:
    """``df`` with category cells written as declared (case, spaces, synonyms); a note per column changed."""
    df = df.copy()
    for name, var in d.variables.items():
        if var.kind == "continuous" or name not in df.columns:
            continue
        if var.kind == "multi":
            sep = var.separator or ""
            new = df[name].map(lambda v, var=var, sep=sep: sep.join(var.split(v)) if isinstance(v, str) else v)
        else:
            new = df[name].map(var.category)
        changed = [(a, b) for a, b in zip(df[name].tolist(), new.tolist(), strict=True)
                   if isinstance(a, str) and a != b and a.strip() != b]
        if changed:
            log.info("%s: %d cell(s) read as the declared category (case, spaces or a synonym), e.g. %r -> %r",
                     name, len(changed), *changed[0])
        df[name] = new
    return df


def recode_by_dictionary(df: pd.DataFrame, d: Dictionary) -> pd.DataFrame:
    """Aliases (again: a no-op after :func:`rename_aliases`), missing tokens, then categories."""
    return normalise_categories(blank_missing_tokens(rename_aliases(df, d), d), d)
