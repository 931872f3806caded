"""Decision curve analysis (Vickers & Elkin 2006): net benefit over threshold probabilities.

At a threshold probability pt, a case is called positive (biopsy / treat) when its predicted probability
p >= pt, the package-wide rule (and that of the ``dcurves`` package, which this matches to 1e-9, see
tests/fixtures/dcurves_golden.py). With n cases, TP / FP the true / false positives at pt:

* net benefit of the model = TP/n - FP/n * pt / (1 - pt);
* treat all (everyone positive) = prevalence - (1 - prevalence) * pt / (1 - pt);
* treat none = 0.

Thresholds must lie strictly inside (0, 1): at 1 the odds pt/(1-pt) are infinite; dcurves' own default
grid starts at 0, ours at 0.01 (0.01..0.99 by 0.01).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liver_mm.stats._inputs import check_binary, check_scores

#: default threshold probabilities 0.01, 0.02, ..., 0.99 (rounded: exact two-decimal floats)
THRESHOLDS = np.round(np.arange(0.01, 1.00, 0.01), 2)


def _thresholds(thresholds: Sequence[float] | np.ndarray | None) -> np.ndarray:
    t = THRESHOLDS.copy() if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    bad = ~np.isfinite(t) | (t <= 0) | (t >= 1)
    if t.size == 0 or bad.any():
        raise ValueError("thresholds must be a non-empty list of probabilities strictly between 0 and 1"
                         + (f", got {t[bad][0]}" if bad.any() else ""))
    return t


def net_benefit(y_true: object, prob: object, thresholds: Sequence[float] | np.ndarray | None = None
                ) -> pd.DataFrame:
    """DataFrame(threshold, net_benefit, treat_all, treat_none), one row per threshold (default
    :data:`THRESHOLDS`), of (N,) labels 0/1 and (N,) predicted probabilities; positive when p >= pt."""
    y = check_binary(y_true, require_both=False).astype(bool)
    p = check_scores(prob, y.size, "prob")
    t = _thresholds(thresholds)
    n = float(y.size)
    odds = t / (1.0 - t)
    positive = p[None, :] >= t[:, None]  # (T, N)
    tp = (positive & y[None, :]).sum(axis=1) / n
    fp = (positive & ~y[None, :]).sum(axis=1) / n
    prevalence = y.sum() / n
    return pd.DataFrame({"threshold": t, "net_benefit": tp - fp * odds,
                         "treat_all": prevalence - (1.0 - prevalence) * odds, "treat_none": np.zeros(t.size)})


def decision_curves(y_true: object, probs: Mapping[str, object],
                    thresholds: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """Long table of several models on the same cases: DataFrame(arm, threshold, net_benefit, treat_all,
    treat_none), the arms in the mapping's order (``probs[arm]`` = (N,) probabilities)."""
    frames = [net_benefit(y_true, p, thresholds).assign(arm=arm) for arm, p in probs.items()]
    if not frames:
        raise ValueError("decision_curves: no model given")
    out = pd.concat(frames, ignore_index=True)
    return out[["arm", "threshold", "net_benefit", "treat_all", "treat_none"]]


__all__ = ["THRESHOLDS", "decision_curves", "net_benefit"]
