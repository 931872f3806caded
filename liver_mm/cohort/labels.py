"""The one parser of benign / malignant labels (malignant = 1) for every reader of a label column.

Manifests (split, folds, training, explain) accept the manifest vocabulary ``benign`` / ``malignant`` in
any case; the statistics commands also accept the codes 0/1 and true/false (``codes=True``). A bad or
(unless allowed) missing value is a :class:`LabelError` naming the file, the line, the case, the column
and the value.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from liver_mm.io.schema import LABELS
from liver_mm.stats._inputs import LABEL_CODES

log = logging.getLogger(__name__)

#: the manifest vocabulary, compared after strip().lower() (the codes of liver_mm.stats, written once)
NAMES = {name: LABEL_CODES[name] for name in LABELS}


class LabelError(ValueError):
    """A label column that cannot be read as benign/malignant; the message names file, line and column."""


def _where(where: str, lines: pd.Series, case_ids: pd.Series | None, idx: object, column: str) -> str:
    case = "" if case_ids is None or pd.isna(case_ids[idx]) else f" (case {case_ids[idx]})"
    return f"{where}, line {lines[idx]}{case}, column {column}"


def parse_labels(
    values: pd.Series,
    where: str,
    *,
    column: str | None = None,
    lines: pd.Series | None = None,
    case_ids: pd.Series | None = None,
    codes: bool = False,
    if_missing: str | None = None,
) -> np.ndarray | None:
    """(N,) int 0/1 (malignant = 1) from a label column.

    ``where``: the file, for messages; ``column``: its name (default ``values.name``); ``lines``: the file
    line of each row, index-aligned (default: data row i is line i + 2, a plain CSV); ``case_ids``: named
    beside the line. ``codes``: also accept 0/1 and true/false. ``if_missing``: None makes an empty label an
    error; a text allows empty labels: the result is then None and a warning says how many rows, which
    lines, and this text (what is done without labels).
    """
    column = str(values.name) if column is None else column
    lines = pd.Series(np.arange(len(values)) + 2, index=values.index) if lines is None else lines
    vocab = LABEL_CODES if codes else NAMES
    text = values.astype("string").str.strip().str.lower()
    empty = text.isna() | (text == "")
    mapped = text.map(vocab)
    bad = ~empty & mapped.isna()
    if bad.any():
        idx = values.index[bad][0]
        shown = ", ".join(["0", "1", *LABELS] if codes else LABELS)
        raise LabelError(f"{_where(where, lines, case_ids, idx, column)}: {values[idx]!r} is not one of {shown} "
                         f"({int(bad.sum())} such row(s))")
    if empty.any():
        rows = [str(lines[i]) for i in values.index[empty]]
        listed = ", ".join(rows[:10]) + (" ..." if len(rows) > 10 else "")
        if if_missing is None:
            raise LabelError(f"{_where(where, lines, case_ids, values.index[empty][0], column)}: the label is "
                             f"empty ({len(rows)} such row(s): line(s) {listed}); every row needs one")
        log.warning("%s, column %s: %d of %d rows have no label (line(s) %s): %s", where, column, len(rows),
                    len(values), listed, if_missing)
        return None
    return mapped.to_numpy(dtype=np.int64)
