"""Clinical (tabular) features for the fusion models, fitted on the training split only.

Per listed manifest column, in order:

* a ``binary`` variable of the data dictionary (:mod:`liver_mm.dictionary`; ``sex``: ``F`` -> 0, ``M`` -> 1):
  its categories coded 0 / 1 in the declared order (case, surrounding spaces and synonyms such as
  ``female`` ignored); kept as 0/1, not standardised. Any other value is an error naming the column, row and value.
* a variable declared ``transform: log1p`` (the skewed enzymes ``ast``, ``alt``, ``ggt``, ``alp``): ``log1p``,
  then standardised.
* every other column (age, platelets, albumin, wbc, ...): numeric, standardised with the
  training mean and (population) std; a std of 0 is replaced by 1.
* missing values are imputed with the training median on the transformed scale. Features
  that had missing values in training also get a 0/1 ``<name>_missing`` indicator column,
  appended after the features. A feature complete in training but missing at transform
  time is imputed the same way (no indicator, since the model has no input for one) and a
  warning is logged.
* censored labs (read with ``censored=limit``, :mod:`liver_mm.io.codes`): a feature whose
  0/1 ``<name>_censored`` column marks at least one training row gets that column as an extra
  input ``<name>_censored`` (not standardised; absent or empty at transform time -> 0), appended
  after the missing indicators. Saved states without the ``censored`` key read as False.

The fitted state is a plain JSON-safe dict (:meth:`TabularPreprocessor.to_dict`) that
reproduces :meth:`TabularPreprocessor.transform` exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from liver_mm.dictionary import Dictionary, default_dictionary

logger = logging.getLogger(__name__)

#: the shipped dictionary's log1p variables (the skewed enzymes)
LOG_FEATURES = frozenset(n for n, v in default_dictionary().variables.items() if v.transform == "log1p")
CENSORED_SUFFIX = "_censored"  # the indicator columns of liver_mm.io.codes
_FORMAT_VERSION = 1
_LEGACY_KINDS = {"sex": "binary"}  # saved states before the data dictionary


def _kind(feature: str, dictionary: Dictionary | None = None) -> str:
    """The encoding of ``feature``: ``binary`` (0/1 codes), ``log1p`` or ``identity`` (numbers; a variable the
    dictionary does not declare is read as a number)."""
    var = (dictionary or default_dictionary()).get(feature)
    if var is not None and var.kind == "binary":
        return "binary"
    return "log1p" if var is not None and var.transform == "log1p" else "identity"


def _row_name(df: pd.DataFrame, pos: int) -> str:
    if "case_id" in df.columns:
        return f"row {pos} (case_id={df['case_id'].iloc[pos]})"
    return f"row {pos}"


def _censored(df: pd.DataFrame, feature: str) -> np.ndarray:
    """(N,) float64 0/1: the rows whose ``feature`` cell was censored (no indicator column: all 0)."""
    col = feature + CENSORED_SUFFIX
    if col not in df.columns:
        return np.zeros(len(df))
    return (pd.to_numeric(df[col], errors="coerce").fillna(0).to_numpy(dtype=np.float64) > 0).astype(np.float64)


def _raw_values(df: pd.DataFrame, feature: str, dictionary: Dictionary | None = None) -> np.ndarray:
    """Column ``feature`` as float64 (N,) on the transformed (coded / log1p) scale, NaN = missing."""
    if feature not in df.columns:
        raise ValueError(f"clinical feature column {feature!r} is missing from the table")
    col = df[feature]
    missing = col.isna().to_numpy()
    kind = _kind(feature, dictionary)
    if kind == "binary":
        var = (dictionary or default_dictionary())[feature]
        codes = {c: float(i) for i, c in enumerate(var.categories)}
        out = col.map(var.category).map(codes).astype("float64").to_numpy()
        bad = ~missing & np.isnan(out)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {feature!r}, {_row_name(df, pos)}: bad value {col.iloc[pos]!r} "
                f"(expected one of {sorted(codes)}; {int(bad.sum())} bad value(s) in total)"
            )
        return out
    out = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
    bad = ~missing & ~np.isfinite(out)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {feature!r}, {_row_name(df, pos)}: value {col.iloc[pos]!r} is not a finite number "
            f"({int(bad.sum())} bad value(s) in total)"
        )
    if kind == "log1p":
        neg = ~missing & (out < 0)
        if neg.any():
            pos = int(np.flatnonzero(neg)[0])
            raise ValueError(
                f"column {feature!r}, {_row_name(df, pos)}: negative enzyme level {col.iloc[pos]!r} U/L"
            )
        out = np.log1p(out)
    return out


class TabularPreprocessor:
    """Encode / log-transform / impute / standardise clinical columns into a float32 matrix.

    ``features``: manifest column names, e.g. ``["age", "sex", "ast", "alt"]``; may be empty
    (image-only model), then :meth:`transform` gives an (N, 0) array.
    """

    def __init__(self, features: Sequence[str]) -> None:
        features = list(features)
        if len(set(features)) != len(features):
            raise ValueError(f"duplicate clinical features in {features}")
        self.features: list[str] = features
        self.stats_: dict[str, dict[str, Any]] | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame) -> TabularPreprocessor:
        """Learn medians, means, stds and which features get missing indicators from ``df``
        (the TRAINING rows only)."""
        if len(df) == 0 and self.features:
            raise ValueError("cannot fit the clinical preprocessing on an empty table")
        stats: dict[str, dict[str, Any]] = {}
        for f in self.features:
            x = _raw_values(df, f)
            observed = x[~np.isnan(x)]
            if observed.size == 0:
                raise ValueError(f"column {f!r} has no non-missing value in the training rows")
            kind = _kind(f)
            median = float(np.median(observed))
            filled = np.where(np.isnan(x), median, x)
            if kind == "binary":
                mean, std = 0.0, 1.0
            else:
                mean, std = float(filled.mean()), float(filled.std())
                if not math.isfinite(std) or std <= 0:
                    std = 1.0
            stats[f] = {
                "kind": kind,
                "median": median,
                "mean": mean,
                "std": std,
                "indicator": bool(np.isnan(x).any()),
                "censored": bool((_censored(df, f) == 1).any()),
            }
        self.stats_ = stats
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same rows."""
        return self.fit(df).transform(df)

    def _check_fitted(self) -> dict[str, dict[str, Any]]:
        if self.stats_ is None:
            raise RuntimeError("TabularPreprocessor is not fitted: call fit(train_df) first")
        return self.stats_

    # ---------------------------------------------------------------- transform
    @property
    def feature_names_out(self) -> list[str]:
        """Output column names: the features, ``<feature>_missing``, then ``<feature>_censored`` indicators."""
        stats = self._check_fitted()
        return (self.features + [f"{f}_missing" for f in self.features if stats[f]["indicator"]]
                + [f + CENSORED_SUFFIX for f in self.features if stats[f].get("censored")])

    @property
    def n_features_out(self) -> int:
        """Number of output columns F_out."""
        return len(self.feature_names_out)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(N, F_out) float32 features for the rows of ``df`` (extra columns are ignored)."""
        stats = self._check_fitted()
        n = len(df)
        values, indicators, censored = [], [], []
        for f in self.features:
            s = stats[f]
            x = _raw_values(df, f)
            miss = np.isnan(x)
            if miss.any() and not s["indicator"]:
                logger.warning(
                    "clinical feature %r: %d missing value(s) but none in training; imputing the training "
                    "median without a missing-indicator",
                    f,
                    int(miss.sum()),
                )
            x = np.where(miss, s["median"], x)
            values.append((x - s["mean"]) / s["std"])
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
        """JSON-safe fitted state (plain str / float / bool / list)."""
        stats = self._check_fitted()
        return {
            "format_version": _FORMAT_VERSION,
            "features": list(self.features),
            "stats": {f: dict(stats[f]) for f in self.features},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_dict` output (e.g. after ``json.load``)."""
        if d.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported tabular preprocessor format {d.get('format_version')!r}")
        obj = cls(d["features"])
        stats: dict[str, dict[str, Any]] = {}
        for f in obj.features:
            if f not in d["stats"]:
                raise ValueError(f"saved tabular preprocessor lacks statistics for feature {f!r}")
            s = d["stats"][f]
            kind = _LEGACY_KINDS.get(s["kind"], s["kind"])
            if kind != _kind(f):
                raise ValueError(f"feature {f!r}: saved transform {s['kind']!r}, this code uses {_kind(f)!r}")
            stats[f] = {
                "kind": kind,
                "median": float(s["median"]),
                "mean": float(s["mean"]),
                "std": float(s["std"]),
                "indicator": bool(s["indicator"]),
                "censored": bool(s.get("censored", False)),
            }
        obj.stats_ = stats
        return obj

    def __repr__(self) -> str:
        state = "fitted" if self.stats_ is not None else "unfitted"
        return f"TabularPreprocessor(features={self.features!r}, {state})"
