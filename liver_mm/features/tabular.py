"""Clinical (tabular) features for the fusion models, fitted on the training split only.

Each listed variable is encoded by its kind in the data dictionary (:mod:`liver_mm.dictionary`; the
shipped one unless another is given; a column the dictionary does not declare is read as a number):

* ``continuous``: numeric, ``log1p`` first where declared (the skewed enzymes ``ast``, ``alt``, ``ggt``,
  ``alp``), standardised with the training mean and (population) std; a std of 0 is replaced by 1.
* ``binary`` (``sex``: ``F`` -> 0, ``M`` -> 1): its categories coded 0 / 1 in the declared order (case,
  surrounding spaces and synonyms such as ``female`` ignored); kept as 0/1, not standardised.
* ``ordinal``: the category's position 0, 1, ..., standardised like a number.
* ``categorical``: one-hot, one column ``<name>=<level>`` per declared level but the first (the reference
  level, all zeros); not standardised.
* ``multi``: multi-hot, one 0/1 column ``<name>=<value>`` per declared value.
* A value that is not a declared category is an error naming the column, row, value and the categories.
* missing values (empty cells and the dictionary's ``missing`` tokens) are imputed with the training median
  on the transformed scale (numbers, binary, ordinal) or the training mode (categorical: the most frequent
  level, ties to the earlier one; multi: each value's majority). Variables that had missing values in
  training also get a 0/1 ``<name>_missing`` indicator column, appended after the features. A variable
  complete in training but missing at transform time is imputed the same way (no indicator, since the model
  has no input for one) and a warning is logged.
* censored labs (read with ``censored=limit``, :mod:`liver_mm.io.codes`): a feature whose 0/1
  ``<name>_censored`` column marks at least one training row gets that column as an extra input
  ``<name>_censored`` (not standardised; absent or empty at transform time -> 0), appended after the
  missing indicators. Saved states without the ``censored`` key read as False.

The fitted state is a plain JSON-safe dict (:meth:`TabularPreprocessor.to_dict`) that reproduces
:meth:`TabularPreprocessor.transform` exactly; it carries each variable's dictionary entry (kind, unit,
categories), so a saved model needs nothing of the installed package's default dictionary.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from liver_mm.dictionary import Dictionary, Variable, active, default_dictionary, variable_from_canonical
from liver_mm.features.encode import HOT_KINDS, cell_values, codes, numbers, one_hot, row_name

logger = logging.getLogger(__name__)

CENSORED_SUFFIX = "_censored"  # the indicator columns of liver_mm.io.codes
LEVEL_SEP = "="  # one-hot / multi-hot column names: <variable>=<level>
_FORMAT_VERSION = 1
LEGACY_KINDS = {"sex": "binary"}  # a saved state before the data dictionary named the binary kind so
_row_name = row_name


def _kind(var: Variable | None) -> str:
    """The encoding of a variable: ``binary``, ``ordinal``, ``categorical``, ``multi``, ``log1p`` or
    ``identity`` (a number; also an undeclared column)."""
    if var is None or var.kind == "continuous":
        return "log1p" if var is not None and var.transform == "log1p" else "identity"
    return var.kind


def _censored(df: pd.DataFrame, feature: str) -> np.ndarray:
    """(N,) float64 0/1: the rows whose ``feature`` cell was censored (no indicator column: all 0)."""
    col = feature + CENSORED_SUFFIX
    if col not in df.columns:
        return np.zeros(len(df))
    return (pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy(dtype=np.float64) > 0).astype(np.float64)


class TabularPreprocessor:
    """Encode / log-transform / impute / standardise clinical columns into a float32 matrix.

    ``features``: manifest column names, e.g. ``["age", "sex", "ast", "alt"]``; may be empty (image-only
    model), then :meth:`transform` gives an (N, 0) array. ``dictionary``: the variables' declarations
    (default: the active one, :func:`liver_mm.dictionary.active`; the shipped one unless set).
    """

    def __init__(self, features: Sequence[str], dictionary: Dictionary | None = None) -> None:
        features = list(features)
        if len(set(features)) != len(features):
            raise ValueError(f"duplicate clinical features in {features}")
        self.features: list[str] = features
        d = dictionary or active()
        self.variables: dict[str, Variable | None] = {f: d.get(f) for f in features}
        self.missing_tokens: tuple[str, ...] = tuple(d.missing)
        self.stats_: dict[str, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ encoding
    def _matrix(self, df: pd.DataFrame, f: str) -> tuple[np.ndarray, np.ndarray]:
        """((N, k) encoded values before imputation/scaling, (N,) missing) of variable ``f``."""
        if f not in df.columns:
            raise ValueError(f"clinical feature column {f!r} is missing from the table")
        var, kind = self.variables[f], _kind(self.variables[f])
        if kind in HOT_KINDS:
            assert var is not None
            return one_hot(df, f, var, self.missing_tokens)
        if kind in ("binary", "ordinal"):
            assert var is not None
            x = codes(df, f, var, self.missing_tokens)
        else:
            x = numbers(df, f, kind == "log1p", self.missing_tokens)
        return x[:, None], np.isnan(x)

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame) -> TabularPreprocessor:
        """Learn medians / modes, means, stds and which features get missing indicators from ``df``
        (the TRAINING rows only)."""
        if len(df) == 0 and self.features:
            raise ValueError("cannot fit the clinical preprocessing on an empty table")
        stats: dict[str, dict[str, Any]] = {}
        for f in self.features:
            x, miss = self._matrix(df, f)
            if miss.all():
                raise ValueError(f"column {f!r} has no non-missing value in the training rows")
            kind = _kind(self.variables[f])
            s: dict[str, Any] = {"kind": kind}
            if kind in HOT_KINDS:
                seen = x[~miss]
                if kind == "categorical":
                    fill = np.zeros(x.shape[1])
                    fill[int(np.argmax(seen.sum(axis=0)))] = 1.0  # the mode; ties to the earlier level
                else:
                    fill = (seen.mean(axis=0) > 0.5).astype(np.float64)
                s["fill"] = [float(v) for v in fill]
                s["seen"] = [c for c, n in zip(self._levels(f), seen.sum(axis=0), strict=True) if n > 0]
            else:
                col = x[:, 0]
                median = float(np.median(col[~miss]))
                filled = np.where(miss, median, col)
                if kind == "binary":
                    mean, std = 0.0, 1.0
                else:
                    mean, std = float(filled.mean()), float(filled.std())
                    if not math.isfinite(std) or std <= 0:
                        std = 1.0
                s.update(median=median, mean=mean, std=std)
                if kind in ("binary", "ordinal"):
                    s["seen"] = [c for i, c in enumerate(self._levels(f)) if (col[~miss] == i).any()]
            s["indicator"] = bool(miss.any())
            s["censored"] = bool((_censored(df, f) == 1).any())
            stats[f] = s
        self.stats_ = stats
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(df).transform(df)

    def _check_fitted(self) -> dict[str, dict[str, Any]]:
        if self.stats_ is None:
            raise RuntimeError("TabularPreprocessor is not fitted: call fit(train_df) first")
        return self.stats_

    def _levels(self, f: str) -> tuple[str, ...]:
        var = self.variables[f]
        return var.categories if var is not None else ()

    def unseen_rows(self, df: pd.DataFrame) -> dict[str, dict[str, list[int]]]:
        """{variable: {value: row positions of ``df``}} of the category cells holding a value the training rows
        never held, declared or not: the model learned nothing of it (``evaluate`` refuses such a cohort).
        Variables without the saved ``seen`` levels (states older than the dictionary) are not checked."""
        stats = self._check_fitted()
        out: dict[str, dict[str, list[int]]] = {}
        for f in self.features:
            var = self.variables[f]
            if var is None or "seen" not in stats[f] or f not in df.columns:
                continue
            seen, found = set(stats[f]["seen"]), {}
            for pos, values in enumerate(cell_values(df, f, var, self.missing_tokens)):
                for v in values:
                    if v not in seen:
                        found.setdefault(v, []).append(pos)
            if found:
                order = {c: i for i, c in enumerate(var.categories)}
                out[f] = {v: found[v] for v in sorted(found, key=lambda v: (order.get(v, len(order)), v))}
        return out

    def seen(self, f: str) -> list[str]:
        """The categories of variable ``f`` the training rows held (what the model knows), declared order."""
        return list(self._check_fitted()[f].get("seen", []))

    def unseen(self, df: pd.DataFrame) -> dict[str, list[str]]:
        """{variable: the categories ``df`` holds that the training rows never held} (declared order first)."""
        return {f: list(rows) for f, rows in self.unseen_rows(df).items()}

    # ---------------------------------------------------------------- transform
    def _value_names(self, f: str) -> list[str]:
        kind = self._check_fitted()[f]["kind"]
        var = self.variables[f]
        if kind not in HOT_KINDS or var is None:
            return [f]
        levels = var.categories[1:] if kind == "categorical" else var.categories
        return [f"{f}{LEVEL_SEP}{lev}" for lev in levels]

    @property
    def feature_names_out(self) -> list[str]:
        """Output column names: the features (``<name>=<level>`` for one-hot / multi-hot), ``<feature>_missing``,
        then ``<feature>_censored`` indicators."""
        stats = self._check_fitted()
        return ([n for f in self.features for n in self._value_names(f)]
                + [f"{f}_missing" for f in self.features if stats[f]["indicator"]]
                + [f + CENSORED_SUFFIX for f in self.features if stats[f].get("censored")])

    def groups(self) -> dict[str, list[int]]:
        """Variable -> its output columns (values, missing and censored indicators): what permutation
        importance permutes together."""
        names = self.feature_names_out
        out: dict[str, list[int]] = {}
        for f in self.features:
            own = [*self._value_names(f), f"{f}_missing", f + CENSORED_SUFFIX]
            out[f] = [names.index(n) for n in own if n in names]
        return out

    @property
    def n_features_out(self) -> int:
        """Number of output columns F_out."""
        return len(self.feature_names_out)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(N, F_out) float32 features for the rows of ``df`` (extra columns are ignored)."""
        stats = self._check_fitted()
        n = len(df)
        values: list[np.ndarray] = []
        indicators, censored = [], []
        for f in self.features:
            s = stats[f]
            x, miss = self._matrix(df, f)
            if miss.any() and not s["indicator"]:
                logger.warning(
                    "clinical feature %r: %d missing value(s) but none in training; imputing the training "
                    "%s without a missing-indicator", f, int(miss.sum()), "mode" if "fill" in s else "median")
            if s["kind"] in HOT_KINDS:
                x = np.where(miss[:, None], np.asarray(s["fill"])[None, :], x)
                values += list((x[:, 1:] if s["kind"] == "categorical" else x).T)
            else:
                col = np.where(miss, s["median"], x[:, 0])
                values.append((col - s["mean"]) / s["std"])
            if s["indicator"]:
                indicators.append(miss.astype(np.float64))
            if s.get("censored"):
                censored.append(_censored(df, f))
        cols = values + indicators + censored
        if not cols:
            return np.zeros((n, 0), dtype=np.float32)
        return np.stack(cols, axis=1).astype(np.float32)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fitted state (plain str / float / bool / list), with each declared variable's entry."""
        stats = self._check_fitted()
        return {
            "format_version": _FORMAT_VERSION,
            "features": list(self.features),
            "stats": {f: dict(stats[f]) for f in self.features},
            "variables": {f: v.canonical() for f, v in self.variables.items() if v is not None},
            "missing_tokens": list(self.missing_tokens),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output (e.g. after ``json.load``). A state saved
        before the data dictionary (no ``variables``) reads its variables from the shipped dictionary."""
        if d.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported tabular preprocessor format {d.get('format_version')!r}")
        obj = cls(d["features"], default_dictionary())  # (not the active one: the state says what it was fitted on)
        if "variables" in d:
            saved = {f: variable_from_canonical(v) for f, v in d["variables"].items()}
            obj.variables = {f: saved.get(f) for f in obj.features}
            obj.missing_tokens = tuple(d.get("missing_tokens", ()))
        stats: dict[str, dict[str, Any]] = {}
        for f in obj.features:
            if f not in d["stats"]:
                raise ValueError(f"saved tabular preprocessor lacks statistics for feature {f!r}")
            s = d["stats"][f]
            kind = LEGACY_KINDS.get(s["kind"], s["kind"])
            if kind != _kind(obj.variables[f]):
                raise ValueError(f"feature {f!r}: saved transform {s['kind']!r}, its variable is "
                                 f"{_kind(obj.variables[f])!r}")
            out: dict[str, Any] = {"kind": kind}
            if kind in HOT_KINDS:
                out["fill"] = [float(v) for v in s["fill"]]
            else:
                out.update(median=float(s["median"]), mean=float(s["mean"]), std=float(s["std"]))
            if "seen" in s:
                out["seen"] = [str(c) for c in s["seen"]]
            out["indicator"] = bool(s["indicator"])
            out["censored"] = bool(s.get("censored", False))
            stats[f] = out
        obj.stats_ = stats
        return obj

    def __repr__(self) -> str:
        state = "fitted" if self.stats_ is not None else "unfitted"
        return f"TabularPreprocessor(features={self.features!r}, {state})"
