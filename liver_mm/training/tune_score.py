"""A trial's score at the epoch rule the final model uses, without the selection bias of that rule.

A network keeps the epoch with the best dev AUC (``checkpoint.select=best``). Scoring a trial by that same dev
AUC rewards a long noisy schedule: the more epochs, the higher the maximum of noisy dev AUCs, so a searched
``trainer.max_epochs`` drifts to its top by selection alone. Here the dev rows are cut into two halves (grouped
by patient, stratified by label, seeded by ``tune.seed``); the rule picks the epoch on one half and the other
half scores it, both ways, and the trial's objective is the mean of the two scores
(:func:`epoch_rule_score`). With ``checkpoint.select=last`` nothing is picked and the objective is the last
epoch's dev AUC; a scikit-learn model has no epochs and is scored by its dev AUC.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold


class DevEpochProbs(pl.Callback):
    """The dev rows' probabilities of every validated epoch (the sanity check left out), in the dev loader's
    order (cohort order), and their labels; read by the trial after the fit."""

    def __init__(self) -> None:
        self.epochs: list[np.ndarray] = []
        self.labels: np.ndarray | None = None
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._probs, self._labels = [], []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch: dict,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking:
            return
        self._probs.append(pl_module.predict_step(batch, batch_idx).detach())  # the evaluated (EMA) network
        self._labels.append(batch["label"].detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._probs:
            return
        self.epochs.append(torch.cat(self._probs).float().cpu().numpy().astype(np.float64))
        self.labels = torch.cat(self._labels).cpu().numpy().astype(int)


def dev_halves(dev: pd.DataFrame, y: np.ndarray, seed: int) -> np.ndarray:
    """0/1 per dev row: two halves grouped by ``patient_id`` (``case_id`` without it) and stratified by label.
    ValueError when a half would miss a class (the trial could not be scored)."""
    groups = (dev["patient_id"] if "patient_id" in dev.columns else dev["case_id"]).astype(str).to_numpy()
    if len(set(groups)) < 2:
        raise ValueError(f"tuning a network that keeps its best dev epoch needs dev rows of 2 patients or more; this "
                         f"job's dev part has {len(set(groups))}")
    _, second = next(StratifiedGroupKFold(2, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups))
    half = np.zeros(len(y), dtype=int)
    half[second] = 1
    for h in (0, 1):
        if len(set(y[half == h])) < 2:
            raise ValueError(f"tuning a network that keeps its best dev epoch scores each trial on two halves of "
                             f"the dev part; half {h + 1} of this job's {len(y)} dev rows ({int(y.sum())} "
                             "malignant) has one class: more dev rows are needed (split.fractions or cv.dev_fraction)")
    return half


def best_epoch(epoch_probs: list[np.ndarray], y: np.ndarray, rows: np.ndarray) -> int:
    """The rule of :class:`~liver_mm.training.callbacks.BestWeights` on ``rows`` (bool): the first epoch with the
    highest AUC (a NaN counts as -inf), 0-based."""
    best, score = 0, -math.inf
    for epoch, prob in enumerate(epoch_probs):
        auc = float(roc_auc_score(y[rows], prob[rows]))
        auc = -math.inf if math.isnan(auc) else auc
        if epoch == 0 or auc > score:
            best, score = epoch, auc
    return best


def epoch_rule_score(epoch_probs: list[np.ndarray], y: np.ndarray, halves: np.ndarray) -> float:
    """The mean over the two dev halves of the AUC, on that half, of the epoch the best-dev-AUC rule picks on the
    other half."""
    scores = []
    for h in (0, 1):
        pick = best_epoch(epoch_probs, y, halves != h)
        rows = halves == h
        scores.append(float(roc_auc_score(y[rows], epoch_probs[pick][rows])))
    return float(np.mean(scores))
