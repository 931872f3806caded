"""Logistic recalibration of a study's arms on a declared part of an external cohort (``evaluate --recalibrate``).

The model is kept; only its probabilities are mapped (Steyerberg, *Clinical Prediction Models*, ch. 20; Van Calster
et al. 2019), with L = logit(p) clipped as :func:`liver_mm.stats.calibration.clipped_logit`:

* ``intercept`` (recalibration in the large): ``logit p' = a + L``, a = the calibration intercept of the fit part
  (:func:`liver_mm.stats.calibration_in_the_large`, slope fixed at 1);
* ``logistic``: ``logit p' = a + b L``, (a, b) the logistic recalibration of the fit part
  (:func:`liver_mm.stats.recalibration_fit`, ``rms::val.prob``'s Intercept and Slope).

Both keep the ranking (AUCs unchanged): a logistic fit with b <= 0 is refused with its value, since the model then
ranks the new site's cases backwards or not at all, which no recalibration can fix. The frozen threshold is a probability: applied to p' it keeps
the study's cut-off on the risk scale, so the calls, sensitivity and specificity may change.

The fit part is declared, never chosen after seeing results: a manifest column (``fit`` / ``eval`` per row, e.g. a
site's first months) or a seeded fraction, stratified by label and grouped by patient and pixel-identical image
(``liver-mm split``'s rule, :func:`liver_mm.cohort.split.assign_split`). Everything recalibrated is evaluated on
the other rows only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit

from liver_mm.cohort.split import assign_split
from liver_mm.stats import calibration_in_the_large, encode_labels, recalibration_fit
from liver_mm.stats.calibration import clipped_logit

METHODS = ("intercept", "logistic")
FIT, EVAL = "fit", "eval"
PARTS = (FIT, EVAL)


def fraction_parts(df: pd.DataFrame, fraction: float, seed: int) -> pd.Series:
    """``fit`` / ``eval`` per row of a validated manifest frame (index-aligned): about ``fraction`` of the rows
    fit, stratified by ``label``, grouped by ``patient_id`` (each row its own patient without one) and identical
    image, shuffled by ``seed``. ``ValueError`` when a part lacks a class."""
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"--recal-fraction {fraction}: must lie strictly between 0 and 1")
    view = df.drop(columns=["split"], errors="ignore")
    if "patient_id" not in view.columns:
        view = view.assign(patient_id=view["case_id"].astype(str))
    part = assign_split(view, (float(fraction), 1.0 - float(fraction), 0.0), int(seed))
    return check_parts(part.map({"train": FIT, "dev": EVAL}).rename("recal_part"), df["label"])


def column_parts(df: pd.DataFrame, column: str) -> pd.Series:
    """``fit`` / ``eval`` per row from a manifest column (checked by the validation: every cell fit or eval)."""
    part = df[column].astype("string").str.strip().str.lower()
    return check_parts(part.astype(object).rename("recal_part"), df["label"])


def check_parts(part: pd.Series, labels: pd.Series) -> pd.Series:
    """``part`` after checking both the fit and the eval part hold benign and malignant cases."""
    y = encode_labels(labels.to_numpy(dtype=object))
    for name in PARTS:
        rows = (part == name).to_numpy()
        if len(set(y[rows])) < 2:
            raise ValueError(f"the recalibration's {name} part has {int(rows.sum())} case(s) and not both classes: "
                             "declare another part (--recal-column) or fraction")
    return part


def fit_recalibration(y: np.ndarray, prob: np.ndarray, method: str) -> tuple[float, float]:
    """(a, b) of ``method`` (see the module docstring) fitted on labels (n,) 0/1 and probabilities (n,);
    ``ValueError`` when the fit does not exist (e.g. perfect separation) or its slope b is not positive."""
    if method == "intercept":
        a, b = calibration_in_the_large(y, prob), 1.0
    elif method == "logistic":
        a, b = recalibration_fit(y, prob)
    else:
        raise ValueError(f"unknown recalibration {method!r}; expected one of {', '.join(METHODS)}")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"the {method} recalibration has no finite fit on the fit part (perfect separation?)")
    if b <= 0:
        raise ValueError(f"the logistic recalibration's slope on the fit part is b = {b:.4g} (<= 0): the model ranks "
                         "the new site's cases backwards (or not at all), which recalibration cannot fix (it would "
                         "reverse the calls and the AUC); evaluate without --recalibrate, or with --recalibrate "
                         "intercept to correct the calibration in the large only")
    return float(a), float(b)


def recalibrate(prob: np.ndarray, a: float, b: float) -> np.ndarray:
    """Recalibrated probabilities (n,): expit(a + b * logit(prob)) with the clipped logit."""
    return expit(a + b * clipped_logit(prob))
