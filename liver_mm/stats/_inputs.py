"""Input checks shared by the statistics functions (labels and score arrays)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

#: the two classes; index = the integer label (benign = 0, malignant = 1): the one place of this coding
CLASSES = ("benign", "malignant")
#: accepted spellings of the two classes, compared after str().strip().lower()
LABEL_CODES = {
    **{name: code for code, name in enumerate(CLASSES)},
    "0": 0, "0.0": 0, "false": 0,
    "1": 1, "1.0": 1, "true": 1,
}


def encode_labels(values: Iterable[object], name: str = "label") -> np.ndarray:
    """Map labels to int 0/1 (benign = 0, malignant = 1), shape (N,).

    Accepts 0/1 (int, float or text), booleans and ``benign``/``malignant`` in any case.
    Raises ``ValueError`` naming the first offending (0-based) position and value.
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray | pd.Series) else values, dtype=object)
    out = np.empty(arr.shape[0], dtype=np.int8)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            raise ValueError(f"{name}: missing label at row {i} (0-based)")
        code = LABEL_CODES.get(str(v).strip().lower())
        if code is None:
            raise ValueError(f"{name}: row {i} (0-based) has '{v}'; expected 0/1 or benign/malignant")
        out[i] = code
    return out


def check_binary(y_true: object, name: str = "y_true", require_both: bool = True) -> np.ndarray:
    """Validate a label vector and return it as int8 (N,) with values in {0, 1}.

    With ``require_both`` (the default) both classes must be present: an AUC needs one of each.
    """
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        y = encode_labels(y, name)
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{name}: missing label at row {int(np.flatnonzero(np.isnan(y))[0])} (0-based)")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: row {i} (0-based) has {y[i]}; labels must be 0 (benign) or 1 (malignant)")
    y = y.astype(np.int8)
    n_pos = int(y.sum())
    if y.size == 0:
        raise ValueError(f"{name}: no cases")
    if require_both and (n_pos == 0 or n_pos == y.size):
        only = "malignant" if n_pos else "benign"
        raise ValueError(f"{name}: only one class present (all {y.size} cases {only}); need both")
    return y


def check_scores(score: object, n: int, name: str = "score") -> np.ndarray:
    """Validate a score vector of length ``n``: finite float64 (n,)."""
    try:
        if isinstance(score, pd.Series | pd.Index):
            s = score.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            s = np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not numeric ({exc})") from None
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) like the labels, got {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: non-finite value {s[i]} at row {i} (0-based; {int(bad.sum())} in all)")
    return s
