"""Grad-CAM pictures: one overlay per case (the crop, and the crop with its heat map) and a montage.

Built with matplotlib's object API (``matplotlib.figure.Figure``, rendered by Agg on save): no pyplot, no
window, no global figure state to close.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

HEAT_CMAP = "jet"
HEAT_ALPHA = 0.4
GROUP_COLORS = {"correct": "tab:green", "wrong": "tab:red", "false negative": "tab:red", "false positive": "tab:purple"}


def case_title(case_id: str, prob: float, label: str | None, threshold: float) -> str:
    """``<case_id>: p=0.83 -> malignant (label malignant)``; the label part only when known."""
    called = "malignant" if prob >= threshold else "benign"
    return f"{case_id}: p={prob:.2f} -> {called}" + (f" (label {label})" if label else "")


def _show(ax, crop: np.ndarray, heat: np.ndarray | None) -> None:
    ax.imshow(np.asarray(crop), cmap="gray", vmin=0, vmax=255 if np.asarray(crop).dtype == np.uint8 else 1.0)
    if heat is not None:
        ax.imshow(np.asarray(heat), cmap=HEAT_CMAP, vmin=0.0, vmax=1.0, alpha=HEAT_ALPHA)
    ax.set_axis_off()


def overlay_figure(crop: np.ndarray, heat: np.ndarray, title: str) -> Figure:
    """Crop (S, S) in gray beside the same crop with its Grad-CAM map (S, S) in [0, 1] alpha-blended."""
    fig = Figure(figsize=(6.0, 3.4), dpi=100)
    left, right = fig.subplots(1, 2)
    _show(left, crop, None)
    left.set_title("crop", fontsize=8)
    _show(right, crop, heat)
    right.set_title("Grad-CAM", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def montage_figure(crops: np.ndarray, heats: np.ndarray, titles: Sequence[str], groups: Sequence[str],
                   suptitle: str, cols: int = 4) -> Figure:
    """Grid of crops (N, S, S) with their maps (N, S, S); each panel titled, the title coloured by its group
    (``correct`` green, ``wrong`` red, anything else black)."""
    n = len(titles)
    if n == 0:
        raise ValueError("montage_figure: no case to show")
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows + 0.5), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, crop, heat, title, group in zip(axes, crops, heats, titles, groups, strict=False):
        _show(ax, crop, heat)
        ax.set_title(f"[{group}] {title}", fontsize=6.5, color=GROUP_COLORS.get(group, "black"))
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def safe_names(case_ids: Sequence[str]) -> list[str]:
    """File stems for case ids: characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``;
    a stem taken twice (after that) gets ``-2``, ``-3``, ... so no overlay overwrites another."""
    used: set[str] = set()
    out = []
    for cid in case_ids:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(cid)).lstrip(".") or "case"
        name, k = stem, 1
        while name.lower() in used:  # case-insensitive: two files must differ on any file system
            k += 1
            name = f"{stem}-{k}"
        used.add(name.lower())
        out.append(name)
    return out
