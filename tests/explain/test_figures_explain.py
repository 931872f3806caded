"""The figures of issue 13 in liver_mm/figures.py: reliability with band and histogram, decision curves,
permutation importance (what is drawn, not how it looks)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from liver_mm.figures import decision_curve_figure, importance_figure, reliability_figure
from liver_mm.stats import net_benefit, reliability_curve


def _preds(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, 120)
    return (rng.uniform(size=120) < p).astype(int), p


def test_reliability_figure_draws_curve_band_and_histogram():
    y, p = _preds()
    curve = reliability_curve(y, p, n_grid=41, n_boot=50)
    fig = reliability_figure({"m5": (p, curve)}, title="m5 [synthetic]")
    ax, hist = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["m5"].get_ydata(), curve["observed"])
    assert len(ax.collections) == 1  # the band
    counts = np.histogram(p, bins=np.linspace(0, 1, 26))[0]
    (step,) = hist.patches  # one step histogram of the predictions, 25 bins
    assert step.get_xy()[:, 1].max() == counts.max() and hist.get_ylabel() == "Cases"
    plt.close(fig)


def test_decision_curve_figure_has_treat_all_none_and_models():
    y, p = _preds()
    curves = {"m1": net_benefit(y, p), "m5": net_benefit(y, np.clip(p + 0.1, 0, 1))}
    fig = decision_curve_figure(curves)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["treat all", "treat none", "m1", "m5"]
    np.testing.assert_array_equal(ax.get_lines()[2].get_ydata(), curves["m1"]["net_benefit"])
    assert ax.get_ylim()[0] == -0.05
    plt.close(fig)


def test_importance_figure_sorts_features():
    table = pd.DataFrame({"feature": ["age", "sex", "albumin"], "auc_drop_mean": [0.03, -0.01, 0.08],
                          "auc_drop_sd": [0.01, 0.004, 0.01]})
    fig = importance_figure(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sex", "age", "albumin"]  # largest on top
    assert [round(b.get_width(), 3) for b in ax.patches] == [-0.01, 0.03, 0.08]
    plt.close(fig)
