"""Everything explain writes for one model on one set of cases (a run's test split, or ``liver-mm explain``).

Files in ``out_dir``: ``overlays/<case>.png`` (one per explained case), ``gradcam_montage.png`` and
``gradcam_cases.csv`` when the network has an image branch; ``importance.csv`` and ``importance.png`` when it
has a clinical branch and labels of both classes are given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from liver_mm.explain.gallery import write_gallery
from liver_mm.explain.gradcam import gradcam_maps
from liver_mm.explain.importance import permutation_importance
from liver_mm.explain.network import has_image, has_tabular, probabilities, tabular_predictor
from liver_mm.explain.overlays import case_title, montage_figure, overlay_figure, safe_names
from liver_mm.figures import importance_figure
from liver_mm.fileio import atomic_to_csv

log = logging.getLogger(__name__)
LABEL_NAMES = ("benign", "malignant")


def select_cases(prob: np.ndarray, y: np.ndarray | None, threshold: float, n_cases: int) -> pd.DataFrame:
    """The cases to draw: DataFrame(index, group, confidence), most confident first within each group.

    Confidence is the probability of the called class (p when p >= threshold, else 1 - p). With labels: up to
    half ``wrong`` (the most confident errors), the rest ``correct``; without: half ``called malignant``, half
    ``called benign``. A short group leaves its places to the other.
    """
    prob = np.asarray(prob, dtype=float)
    called = prob >= threshold
    conf = np.where(called, prob, 1.0 - prob)
    if y is None:
        names, member = ("called malignant", "called benign"), (called, ~called)
    else:
        right = called == np.asarray(y, dtype=bool)
        names, member = ("wrong", "correct"), (~right, right)
    order = [np.flatnonzero(m)[np.argsort(-conf[m], kind="stable")] for m in member]
    first = min(len(order[0]), n_cases // 2)
    second = min(len(order[1]), n_cases - first)
    first = min(len(order[0]), n_cases - second)
    picked = [(int(i), names[0]) for i in order[0][:first]] + [(int(i), names[1]) for i in order[1][:second]]
    return pd.DataFrame({"index": [i for i, _ in picked], "group": [g for _, g in picked],
                         "confidence": [float(conf[i]) for i, _ in picked]})


def _gradcam_outputs(net: nn.Module, images: np.ndarray, tabular: np.ndarray | None, prob: np.ndarray,
                     y: np.ndarray | None, case_ids: Sequence[str], threshold: float, n_cases: int, out: Path,
                     title: str) -> dict[str, Path]:
    sel = select_cases(prob, y, threshold, n_cases)
    idx = sel["index"].to_numpy(dtype=int)
    crops = np.asarray(images)[idx]
    crops = crops[:, 0] if crops.ndim == 4 else crops
    sign = np.where(prob[idx] >= threshold, 1.0, -1.0)
    maps = gradcam_maps(net, crops, None if tabular is None else np.asarray(tabular)[idx], sign)
    folder = out / "overlays"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(case_ids[i]) for i in idx]
    labels = [None if y is None else LABEL_NAMES[int(y[i])] for i in idx]
    titles = [case_title(c, float(prob[i]), lab, threshold) for c, i, lab in zip(ids, idx, labels, strict=True)]
    files = []
    for crop, heat, text, stem in zip(crops, maps, titles, safe_names(ids), strict=True):
        path = folder / f"{stem}.png"
        overlay_figure(crop, heat, text).savefig(path)
        files.append(path.name)
    what = "most confident correct and wrong" if y is not None else "most confident calls"
    montage_figure(crops, maps, titles, list(sel["group"]),
                   f"{title}Grad-CAM: {what} (map of the called class)").savefig(out / "gradcam_montage.png")
    table = pd.DataFrame({"case_id": ids, "prob": prob[idx], "called": np.where(sign > 0, "malignant", "benign"),
                          "label": labels, "group": sel["group"], "confidence": sel["confidence"],
                          "overlay": [f"overlays/{f}" for f in files]})
    atomic_to_csv(table, out / "gradcam_cases.csv", index=False)
    return {"overlays": folder, "gradcam_montage.png": out / "gradcam_montage.png",
            "gradcam_cases.csv": out / "gradcam_cases.csv"}


def _gallery(net: nn.Module, images: np.ndarray | None, tabular: np.ndarray | None, prob: np.ndarray,
             labels: np.ndarray, case_ids: Sequence[str], clinical: pd.DataFrame, threshold: float, k: int, out: Path,
             title: str) -> dict[str, Path]:
    """The case gallery, its pictures with Grad-CAM maps when the network has an image branch."""
    if not (has_image(net) and images is not None):
        return write_gallery(out, prob, labels, threshold, case_ids, clinical, k, title=title)
    tab = None if tabular is None else np.asarray(tabular)

    def maps(idx: np.ndarray, sign: np.ndarray) -> np.ndarray:
        return gradcam_maps(net, np.asarray(images)[idx], None if tab is None else tab[idx], sign)

    return write_gallery(out, prob, labels, threshold, case_ids, clinical, k, crops=images, maps=maps, title=title)


def explain_run(net: nn.Module, images: np.ndarray | None, tabular: np.ndarray | None,
                feature_groups: Mapping[str, Sequence[int]], y: np.ndarray | None, case_ids: Sequence[str],
                out_dir: str | Path, threshold: float = 0.5, n_cases: int = 16, n_repeats: int = 10, seed: int = 0,
                title: str = "", clinical: pd.DataFrame | None = None, gallery_cases: int = 0) -> dict[str, Path]:
    """Grad-CAM overlays and montage (image branch) and permutation importance (clinical branch, labels of both
    classes) of ``net`` on N cases; returns {output name: path} of what was written (see the module docstring).

    ``images``: crops (N, S, S) uint8 or (N, 1, S, S) float in [0, 1]; ``tabular``: preprocessed labs (N, F);
    ``feature_groups``: feature -> its columns of ``tabular`` (:func:`~liver_mm.explain.importance.feature_groups`);
    ``y``: (N,) 0/1 or None; ``threshold``: the model's frozen one (decides the called class and correct/wrong);
    ``n_cases``: cases drawn; ``n_repeats``, ``seed``: of the permutation importance; ``title``: prefix of the
    figure titles (e.g. the arm and "[synthetic] "); ``clinical``: the raw clinical values the model saw (N rows)
    and ``gallery_cases``: false negatives and false positives per kind in the case gallery
    (:func:`~liver_mm.explain.gallery.write_gallery`; needs labels, 0 = none).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = None if y is None else np.asarray(y).astype(int)
    prob = probabilities(net, images, tabular)
    if labels is not None and len(labels) != len(prob):
        raise ValueError(f"{len(labels)} labels for {len(prob)} cases")
    if len(case_ids) != len(prob):
        raise ValueError(f"{len(case_ids)} case ids for {len(prob)} cases")
    written: dict[str, Path] = {}
    if has_image(net) and n_cases > 0 and len(prob):
        written |= _gradcam_outputs(net, images, tabular, prob, labels, case_ids, threshold, n_cases, out, title)
    if labels is not None and clinical is not None and gallery_cases > 0:
        written |= _gallery(net, images, tabular, prob, labels, case_ids, clinical, threshold, gallery_cases, out,
                            title)
    if has_tabular(net) and labels is not None and len(np.unique(labels)) == 2:
        table = permutation_importance(tabular_predictor(net, images), np.asarray(tabular), labels,
                                       feature_groups, n_repeats=n_repeats, seed=seed)
        atomic_to_csv(table, out / "importance.csv", index=False)
        fig = importance_figure(table, f"{title}permutation importance\n(drop in AUC; n={len(prob)}, "
                                       f"{n_repeats} repeats)")
        fig.savefig(out / "importance.png")
        import matplotlib.pyplot as plt  # after liver_mm.figures chose the Agg backend

        plt.close(fig)  # a pyplot figure (the overlays and the montage are plain Figures)
        written |= {"importance.csv": out / "importance.csv", "importance.png": out / "importance.png"}
    elif has_tabular(net):
        log.warning("permutation importance skipped: it needs labels of both classes")
    return written
