"""Score arms (``model.kind: score``): FIB-4 and APRI as study arms, nothing trained but a monotone calibration.

The raw score of each case comes from :mod:`liver_mm.features.scores` on the prepared cohort (labs in the
manifest's canonical units: a manifest in other units declares them with ``data.units``, converted when it
is read). Its probability of malignancy is a *monotone increasing* transform of the raw score: a logistic
regression of the label on log(score), fitted on the training rows (no penalty). Ranks are therefore the
score's own: AUC, DeLong tests and the dev-Youden operating point are those of FIB-4 / APRI themselves; the
probability only puts the score on the scale Table 3 and the calibration plot use. If the fitted slope is not
positive (the score is not higher in malignant training cases) a warning is logged and a tiny positive slope
keeps the published direction (higher score = more likely malignant).

The published cut-offs (FIB-4 1.45 / 3.25, APRI 0.5 / 1.5) are applied to the raw test scores
(:func:`cutoff_table`, :func:`cutoff_metrics`), to be reported beside the dev-Youden threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.features.scores import DEFAULT_AST_ULN, PUBLISHED_CUTOFFS, SCORE_INPUTS, clinical_score
from liver_mm.stats import binary_metrics, encode_labels
from liver_mm.training.fit import EVAL_SPLITS, Fitted

log = logging.getLogger(__name__)
MIN_SLOPE = 1e-6


@dataclass(frozen=True)
class ScoreModel:
    """A clinical score and its calibration prob = expit(intercept + slope * log(score)).

    raw: the raw score (n,) of the dev+test rows in cohort order (what ``Fitted.probs`` is the transform of);
    cutoffs: :func:`cutoff_table` of the test rows; metrics: :func:`cutoff_metrics` of it.
    """

    name: str
    intercept: float
    slope: float
    raw: np.ndarray
    cutoffs: pd.DataFrame = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)

    def predict_proba(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities (n,) of raw scores (n,) > 0."""
        return expit(self.intercept + self.slope * np.log(np.asarray(raw, dtype=np.float64)))

    def raw_threshold(self, prob_threshold: float) -> float:
        """The raw score at which the probability equals ``prob_threshold`` (e.g. the dev-Youden threshold)."""
        if not 0.0 < prob_threshold < 1.0:
            return float("inf") if prob_threshold >= 1.0 else 0.0
        return float(np.exp((logit(prob_threshold) - self.intercept) / self.slope))


def _check_scores(name: str, cohort: PreparedCohort, raw: np.ndarray, rows: np.ndarray) -> None:
    """Every evaluated case needs a positive, finite score: else a ValueError naming the cases and inputs."""
    bad = rows & ~(np.isfinite(raw) & (raw > 0))
    if not bad.any():
        return
    df = cohort.df
    inputs = SCORE_INPUTS[name]
    cases = []
    for i in np.flatnonzero(bad)[:5]:
        empty = [c for c in inputs if pd.isna(pd.to_numeric(df[c].iloc[i], errors="coerce"))]
        what = f"empty {', '.join(empty)}" if empty else "score " + repr(float(raw[i]))
        cases.append(f"row {i + 2} case {df['case_id'].iloc[i]} ({what})")
    raise ValueError(f"{cohort.manifest_path}: model={name} cannot score {int(bad.sum())} dev/test case(s) "
                     f"(columns {', '.join(inputs)}): {'; '.join(cases)}")


def calibrate(name: str, raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the logistic regression of y (n,) 0/1 on log(raw) (n,), unpenalised; slope > 0."""
    x = np.log(raw)[:, None]
    lr = LogisticRegression(penalty=None, max_iter=1000).fit(x, y)
    a, b = float(lr.intercept_[0]), float(lr.coef_[0, 0])
    if b > 0:
        return a, b
    log.warning("%s is not higher in malignant than in benign training cases (logistic slope %.3g on log score): "
                "its probabilities keep the published direction with a near-zero slope", name, b)
    return float(logit(np.clip(y.mean(), 1e-6, 1 - 1e-6)) - MIN_SLOPE * x.mean()), MIN_SLOPE


def cutoff_table(name: str, y: np.ndarray, raw: np.ndarray, cutoffs: Sequence[float],
                 alpha: float = 0.05) -> pd.DataFrame:
    """Operating points of the raw score (n,) against labels y (n,) 0/1 at each cut-off (malignant when
    score >= cut-off): one row per cut-off with columns score, cutoff and every
    :func:`liver_mm.stats.binary_metrics` key (sensitivity, sensitivity_k, _n, _ci_low, _ci_high, specificity...,
    accuracy...)."""
    rows = []
    for c in cutoffs:
        m = binary_metrics(y, raw, float(c), alpha=alpha)
        m.pop("threshold")
        rows.append({"score": name, "cutoff": float(c), **m})
    return pd.DataFrame(rows)


def cutoff_metrics(table: pd.DataFrame, split: str = "test") -> dict[str, float]:
    """MLflow-ready metrics of a :func:`cutoff_table`: ``{split}_{metric}_at_{cutoff}`` for sensitivity,
    specificity and accuracy with their Wilson bounds (e.g. ``test_sensitivity_at_1.45``)."""
    out: dict[str, float] = {}
    for _, r in table.iterrows():
        for metric in ("sensitivity", "specificity", "accuracy"):
            for suffix in ("", "_ci_low", "_ci_high"):
                out[f"{split}_{metric}{suffix}_at_{r['cutoff']:g}"] = float(r[f"{metric}{suffix}"])
    return out


def fit_score(cfg: DictConfig, cohort: PreparedCohort, feats: Features) -> Fitted:
    """``model.score`` (fib4 | apri) as a study arm: probabilities (n,) of the dev+test rows in cohort order
    (monotone in the raw score, calibrated on the training rows) and a :class:`ScoreModel` with the raw scores
    and the published cut-offs' operating points on the test rows."""
    name = str(cfg.model.score)
    raw = clinical_score(name, cohort.df, ast_uln=float(cfg.model.get("ast_uln") or DEFAULT_AST_ULN)).to_numpy()
    split = cohort.df["split"].to_numpy()
    rows = np.isin(split, EVAL_SPLITS)
    _check_scores(name, cohort, raw, rows)
    train = (split == "train") & np.isfinite(raw) & (raw > 0)
    if (split == "train").sum() > train.sum():
        log.warning("%s: %d training case(s) without a score (empty inputs) are left out of the calibration",
                    name, int((split == "train").sum() - train.sum()))
    a, b = calibrate(name, raw[train], feats.labels[train].astype(int))
    test = split == "test"
    cut = cfg.model.get("cutoffs")
    cutoffs = PUBLISHED_CUTOFFS[name] if cut is None else tuple(float(c) for c in cut)
    table = cutoff_table(name, encode_labels(cohort.df["label"].to_numpy(dtype=object)[test]), raw[test], cutoffs)
    model = ScoreModel(name, a, b, raw[rows].astype(np.float64), table, cutoff_metrics(table))
    log.info("%s: probability = expit(%.3f + %.3f log score), fitted on %d training cases", name, a, b,
             int(train.sum()))
    return Fitted(model.predict_proba(model.raw), model)
