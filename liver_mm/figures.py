"""Figures a reader would rather look at than read: ROC curves, confusion matrices, calibration, decision
curves, permutation importance.

Functions return matplotlib Figures (Agg backend, no display); callers save or log them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, roc_curve  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="Sensitivity", title=title, aspect="equal")


def roc_label(name: str, auc: float, ci_low: float, ci_high: float) -> str:
    return f"{name}: AUC {auc:.3f} (95% CI {ci_low:.3f}-{ci_high:.3f})"


def plot_roc(ax, y_true: np.ndarray, prob: np.ndarray, label: str, **kw) -> None:
    """Draw one empirical ROC curve of (N,) labels 0/1 and (N,) probabilities on ``ax``."""
    fpr, tpr, _ = roc_curve(y_true, prob)
    ax.plot(fpr, tpr, lw=1.6, label=label, **kw)


def roc_figure(y_true: np.ndarray, prob: np.ndarray, label: str, title: str = "ROC (test)") -> Figure:
    """A single ROC curve with its legend label (e.g. AUC and CI)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.8), dpi=120)
    plot_roc(ax, y_true, prob, label)
    _roc_axes(ax, title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def roc_panels(curves: Mapping[str, tuple[np.ndarray, np.ndarray, str]], title: str) -> Figure:
    """One ROC panel per model plus a final overlay of all; ``curves[name] = (y, prob, legend label)``."""
    names = list(curves)
    n = len(names) + 1
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), dpi=110, squeeze=False)
    flat = axes.ravel()
    for ax, name in zip(flat, names, strict=False):
        y, p, lab = curves[name]
        plot_roc(ax, y, p, lab)
        _roc_axes(ax, name)
        ax.legend(loc="lower right", fontsize=6)
    overlay = flat[len(names)]
    for name in names:
        y, p, lab = curves[name]
        plot_roc(overlay, y, p, lab)
    _roc_axes(overlay, "All models")
    overlay.legend(loc="lower right", fontsize=5)
    for ax in flat[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, title: str) -> Figure:
    """2x2 confusion matrix (rows true, columns predicted; benign, malignant)."""
    cm = confusion_matrix(y_true, y_pred, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=120)
    ConfusionMatrixDisplay(cm, display_labels=["benign", "malignant"]).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def auc_by_step_figure(names: Sequence[str], auc: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> Figure:
    """Test AUC with 95% CI per model, in study order."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    x = np.arange(len(names))
    a = np.asarray(auc)
    ax.errorbar(x, a, yerr=[a - np.asarray(lo), np.asarray(hi) - a], fmt="o-", capsize=4)
    ax.set_xticks(x, list(names), rotation=30, ha="right")
    ax.set(ylim=(0.4, 1.02), ylabel="Test AUC (95% CI)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fold_auc_figure(aucs: Mapping[str, Sequence[float]], title: str) -> Figure:
    """Cross-validation: each fold's test AUC as a point per arm, with the mean and ±1 SD."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(aucs) + 2), 3.8), dpi=120)
    rng = np.random.default_rng(0)  # fixed jitter: the figure is a function of the data
    for i, values in enumerate(aucs.values()):
        v = np.asarray(values, dtype=float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=14, alpha=0.6, color="C0")
        sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
        ax.errorbar(i + 0.25, v.mean(), yerr=sd, fmt="D", color="C3", capsize=4, ms=5)
    ax.set_xticks(np.arange(len(aucs)), list(aucs), rotation=30, ha="right")
    ax.set(ylabel="Test AUC per fold (mean ± SD)", title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def roc_overlay_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, str]], title: str) -> Figure:
    """All models' ROC curves on one axes; ``curves[name] = (y, prob, legend label)``."""
    fig, ax = plt.subplots(figsize=(5.2, 5.2), dpi=120)
    for y, p, label in curves.values():
        plot_roc(ax, y, p, label)
    _roc_axes(ax, title)
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=6)
    fig.tight_layout()
    return fig


def reliability_figure(curves: Mapping[str, tuple[np.ndarray, pd.DataFrame]], title: str = "Calibration (test)"
                       ) -> Figure:
    """Smoothed reliability curves with their 95% bands above a histogram of the predictions.

    ``curves[name] = (prob (N,), curve)``, ``curve`` a DataFrame(prob, observed, lower, upper) as
    :func:`liver_mm.stats.reliability_curve` returns it (LOESS of the outcome on the prediction, bootstrap band).
    """
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.8), dpi=120, sharex=True,
                                   gridspec_kw={"height_ratios": [4, 1]})
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey", label="ideal")
    bins = np.linspace(0.0, 1.0, 26)
    for i, (name, (prob, curve)) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ax.fill_between(curve["prob"], curve["lower"], curve["upper"], color=color, alpha=0.18, lw=0)
        ax.plot(curve["prob"], curve["observed"], color=color, lw=1.5, label=name)
        hist.hist(np.asarray(prob), bins=bins, histtype="step", color=color, lw=1.2)
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="Observed fraction malignant (LOESS, 95% band)", title=title)
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", fontsize=7)
    hist.set(xlabel="Predicted probability of malignancy", ylabel="Cases")
    fig.tight_layout()
    return fig


def decision_curve_figure(curves: Mapping[str, pd.DataFrame], title: str = "Decision curves (test)") -> Figure:
    """Net benefit against threshold probability per model, with treat-all and treat-none.

    ``curves[name]`` = DataFrame(threshold, net_benefit, treat_all) as :func:`liver_mm.stats.net_benefit`
    returns it; all models are assumed evaluated on the same cases (treat-all is drawn from the first).
    """
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=120)
    first = next(iter(curves.values()))
    top = max(float(np.nanmax(first["treat_all"])), *(float(np.nanmax(c["net_benefit"])) for c in curves.values()))
    ax.plot(first["threshold"], first["treat_all"], color="grey", lw=1.0, label="treat all")
    ax.axhline(0.0, color="black", lw=1.0, label="treat none")
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["threshold"], c["net_benefit"], color=f"C{i % 10}", lw=1.5, label=name)
    ax.set(xlim=(0, 1), ylim=(-0.05, max(top, 0.05) * 1.1), xlabel="Threshold probability",
           ylabel="Net benefit", title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def importance_figure(table: pd.DataFrame, title: str = "Permutation importance (test)") -> Figure:
    """Horizontal bars of the AUC drop per feature (mean ± SD over repeats), largest at the top;
    ``table`` = DataFrame(feature, auc_drop_mean, auc_drop_sd) as explain's permutation importance gives it."""
    t = table.sort_values("auc_drop_mean", kind="stable")
    fig, ax = plt.subplots(figsize=(5.2, 0.45 * len(t) + 1.4), dpi=120)
    y = np.arange(len(t))
    ax.barh(y, t["auc_drop_mean"], xerr=t["auc_drop_sd"], color="C0", alpha=0.8, capsize=3)
    ax.set_yticks(y, list(t["feature"]))
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set(xlabel="Drop in test AUC when permuted (mean ± SD)", title=title)
    ax.title.set_fontsize(9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
