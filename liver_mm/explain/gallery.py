"""The case gallery of one model: the test cases it got most wrong, for a reviewer who looks at failures first.

Up to ``k`` false negatives (malignant, called benign; lowest probability first) and ``k`` false positives
(benign, called malignant; highest first) at the model's frozen threshold. Files in ``out``: ``gallery.csv``
(case_id, kind, prob, threshold, label, confidence, the clinical values the model saw as the manifest holds
them, image), and for a network with an image branch ``gallery/false_negative_<rank>.png`` and
``gallery/false_positive_<rank>.png`` (the crop beside its Grad-CAM map of the called class; named by rank, not
by case) and ``gallery.png`` (the grid of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.explain.overlays import case_title, montage_figure, overlay_figure
from liver_mm.fileio import atomic_to_csv

KINDS = ("false negative", "false positive")
GALLERY_COLUMNS = ("case_id", "kind", "prob", "threshold", "label", "confidence")


def worst_cases(prob: np.ndarray, y: np.ndarray, threshold: float, k: int) -> pd.DataFrame:
    """DataFrame(index, kind, confidence): the ``k`` most confident false negatives, then false positives.

    Confidence is that of the wrong call: 1 - p for a false negative, p for a false positive; ties keep the
    case order."""
    prob, y = np.asarray(prob, dtype=float), np.asarray(y).astype(int)
    called = prob >= threshold
    rows = []
    for kind, member, conf in ((KINDS[0], (y == 1) & ~called, 1.0 - prob), (KINDS[1], (y == 0) & called, prob)):
        idx = np.flatnonzero(member)
        idx = idx[np.argsort(-conf[idx], kind="stable")][: max(k, 0)]
        rows += [(int(i), kind, float(conf[i])) for i in idx]
    return pd.DataFrame(rows, columns=["index", "kind", "confidence"])


def write_gallery(out: Path, prob: np.ndarray, y: np.ndarray, threshold: float, case_ids: Sequence[str],
                  clinical: pd.DataFrame, k: int = 4, crops: np.ndarray | None = None,
                  maps: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  title: str = "") -> dict[str, Path]:
    """Write the gallery (see the module docstring) and return {name: path} of what was written.

    ``clinical``: the raw clinical values the model saw, one row per case (no columns for an image-only model);
    ``crops`` (N, S, S) and ``maps(index, sign) -> (n, S, S)`` Grad-CAM maps of those cases: the pictures, for a
    network with an image branch. Nothing is written when the model got no test case wrong."""
    sel = worst_cases(prob, y, threshold, k)
    if sel.empty:
        return {}
    out.mkdir(parents=True, exist_ok=True)
    idx = sel["index"].to_numpy(dtype=int)
    ids = [str(case_ids[i]) for i in idx]
    labels = np.where(np.asarray(y)[idx] == 1, "malignant", "benign")
    table = pd.DataFrame({"case_id": ids, "kind": sel["kind"], "prob": np.asarray(prob, dtype=float)[idx],
                          "threshold": float(threshold), "label": labels, "confidence": sel["confidence"]})
    values = clinical.iloc[idx].reset_index(drop=True)
    table = pd.concat([table, values.drop(columns=[c for c in values.columns if c in GALLERY_COLUMNS])], axis=1)
    written: dict[str, Path] = {}
    if crops is not None and maps is not None:
        pictures = np.asarray(crops)[idx]
        pictures = pictures[:, 0] if pictures.ndim == 4 else pictures
        sign = np.where(table["prob"].to_numpy() >= threshold, 1.0, -1.0)
        heat = maps(idx, sign)
        folder = out / "gallery"
        folder.mkdir(parents=True, exist_ok=True)
        titles = [case_title(c, p, lab, threshold) for c, p, lab in zip(ids, table["prob"], labels, strict=True)]
        names = []
        rank = table.groupby("kind", sort=False).cumcount() + 1
        stems = [f"{kind.replace(' ', '_')}_{r}" for kind, r in zip(table["kind"], rank, strict=True)]
        for crop, h, text, stem in zip(pictures, heat, titles, stems, strict=True):
            overlay_figure(crop, h, text).savefig(folder / f"{stem}.png")
            names.append(f"gallery/{stem}.png")
        table["image"] = names
        short = [f"{c}: p={p:.2f}" for c, p in zip(ids, table["prob"], strict=True)]  # the kind names the label
        montage_figure(pictures, heat, short, list(table["kind"]),
                       f"{title}most confident errors: false negatives, then false positives").savefig(
            out / "gallery.png")
        written |= {"gallery": folder, "gallery.png": out / "gallery.png"}
    atomic_to_csv(table, out / "gallery.csv", index=False)
    return written | {"gallery.csv": out / "gallery.csv"}
