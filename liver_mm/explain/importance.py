"""Permutation importance of the clinical inputs: the drop in test AUC when a feature group is shuffled.

scikit-learn's ``sklearn.inspection.permutation_importance`` permutes one column at a time and cannot shuffle
a group of columns with one permutation (a lab and its missing-indicator, a one-hot coded variable), so this
is the small loop, with scikit-learn's protocol: ``numpy.random.RandomState(seed)`` draws one integer seed,
every group restarts a ``RandomState`` from it, and each repeat shuffles a running row index (in place) and
re-permutes the group's columns with it. For a one-column group the numbers are therefore identical to
``permutation_importance(..., scoring="roc_auc", n_repeats=n_repeats, random_state=seed)``; the SD is
numpy's (ddof=0), as scikit-learn's ``importances_std``. A feature the model never reads gets exactly 0.0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from liver_mm.stats import encode_labels

COLUMNS = ("feature", "auc_drop_mean", "auc_drop_sd", "n_repeats")
MISSING_SUFFIX = "_missing"
INDICATOR_SUFFIXES = (MISSING_SUFFIX, "_censored")  # a lab's missing-value and censored-cell indicators
LEVEL_SEP = "="  # one-hot / multi-hot columns: <variable>=<level> (liver_mm.features.tabular)


def feature_groups(names_out: Sequence[str]) -> dict[str, list[int]]:
    """Variable -> its columns of the preprocessed lab matrix, from the preprocessor's ``feature_names_out``:
    a variable's value column, or its one-hot / multi-hot columns ``<variable>=<level>`` together, with its
    ``<variable>_missing`` and ``<variable>_censored`` indicator columns (when there are any), in the
    variables' order: permuted together, reported under the variable's name."""
    names = list(names_out)

    def base(n: str) -> str:
        return n.split(LEVEL_SEP, 1)[0]

    variables = list(dict.fromkeys(base(n) for n in names))

    def indicator(n: str) -> bool:
        return LEVEL_SEP not in n and any(
            n.endswith(sfx) and n[: -len(sfx)] in variables for sfx in INDICATOR_SUFFIXES)

    out: dict[str, list[int]] = {}
    for v in (v for v in variables if not indicator(v)):
        out[v] = [i for i, n in enumerate(names) if base(n) == v and (n == v or LEVEL_SEP in n)]
        out[v] += [names.index(v + sfx) for sfx in INDICATOR_SUFFIXES if v + sfx in names]
    return out


def _check_groups(groups: Mapping[str, Sequence[int]], n_cols: int) -> dict[str, np.ndarray]:
    out = {}
    for name, cols in groups.items():
        idx = np.asarray(list(cols), dtype=int)
        if idx.size == 0 or (idx < 0).any() or (idx >= n_cols).any():
            raise ValueError(f"feature group {name!r}: columns {list(cols)} are not within the {n_cols} columns of X")
        out[str(name)] = idx
    if not out:
        raise ValueError("permutation_importance: no feature group given")
    return out


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: object,
                           groups: Mapping[str, Sequence[int]], n_repeats: int = 10, seed: int = 0
                           ) -> pd.DataFrame:
    """DataFrame(feature, auc_drop_mean, auc_drop_sd, n_repeats), one row per group in ``groups``' order.

    ``predict(X) -> (N,)`` probabilities of the model with everything but the labs fixed; ``X`` (N, F) the
    preprocessed labs of the evaluation cases, ``y`` (N,) labels 0/1 (or benign/malignant); ``groups``:
    name -> columns of ``X`` shuffled together with one row permutation (see :func:`feature_groups`).
    auc_drop = AUC(y, predict(X)) - AUC(y, predict(X with the group's rows permuted)), per repeat.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be (N, F), got shape {X.shape}")
    labels = encode_labels(y if isinstance(y, np.ndarray | pd.Series) else list(y), "y")
    if len(labels) != len(X) or len(np.unique(labels)) != 2:
        raise ValueError(f"y must hold both classes and one label per row of X ({len(X)} rows), got {len(labels)}")
    if int(n_repeats) < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    cols = _check_groups(groups, X.shape[1])
    baseline = roc_auc_score(labels, predict(X))
    group_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    rows = []
    for name, idx in cols.items():
        rng = np.random.RandomState(group_seed)
        permuted = X.copy()
        order = np.arange(X.shape[0])
        drops = np.empty(int(n_repeats))
        for r in range(int(n_repeats)):
            rng.shuffle(order)
            permuted[:, idx] = permuted[order][:, idx]
            drops[r] = baseline - roc_auc_score(labels, predict(permuted))
        rows.append((name, float(drops.mean()), float(drops.std()), int(n_repeats)))
    return pd.DataFrame(rows, columns=list(COLUMNS))
