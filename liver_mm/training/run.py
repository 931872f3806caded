"""One ``liver-mm train`` run: cohort -> features -> fit -> evaluate -> MLflow.

The run is created in MLflow first, marked FINISHED only when everything is logged, and
FAILED/KILLED otherwise; every file it logs is also kept in the run's output folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from liver_mm.data.crops import build_crop_cache
from liver_mm.data.tabular import TabularPreprocessor
from liver_mm.training import fit
from liver_mm.training.cohort import PreparedCohort, prepare_cohort
from liver_mm.training.evaluate import labels01, test_metrics
from liver_mm.training.logging_mlflow import log_run_outputs, open_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    predictions: pd.DataFrame
    output_dir: Path


def output_dir(cfg: DictConfig) -> Path:
    """Hydra's run folder when running under Hydra, else a fresh temporary folder."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(tempfile.mkdtemp(prefix="liver-mm-run-"))


@dataclass(frozen=True)
class Features:
    """Model inputs aligned with ``cohort.df`` rows: crops (N, S, S) uint8 or None, labs (N, F) float32."""

    images: np.ndarray | None
    tabular: np.ndarray
    labels: np.ndarray
    preprocessor: TabularPreprocessor
    crop_key: str | None


def build_features(cfg: DictConfig, cohort: PreparedCohort) -> Features:
    """Fit the lab preprocessing on the training split only; crop (cached) when the model sees images."""
    df = cohort.df
    prep = TabularPreprocessor(list(cfg.modalities.features)).fit(df[df["split"] == "train"])
    tabular = prep.transform(df)
    images, key = None, None
    if cfg.modalities.image:
        cache = build_crop_cache(df, int(cfg.image_size), float(cfg.crop.margin), Path(cfg.cache_dir) / "crops")
        images, key = cache.crops, cache.key
    return Features(images, tabular, labels01(df["label"]), prep, key)


def train(cfg: DictConfig) -> TrainResult | None:
    """Train and evaluate one model; returns None on non-zero DDP ranks."""
    import pytorch_lightning as pl

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    configure_threads(cfg.trainer.get("num_threads"))
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    if process_rank() != 0:  # a DDP worker started by Lightning's launcher: rank 0 owns the MLflow run
        fit.fit_lightning(cfg, cohort, feats, run_id=None)
        return None
    client, run_id = open_run(cfg, cohort, crop_key=feats.crop_key)
    status = "FAILED"
    try:
        if cfg.model.kind == "sklearn":
            probs, fitted_model = fit.fit_sklearn(cfg, cohort, feats)
        else:
            fitted = fit.fit_lightning(cfg, cohort, feats, run_id)
            if fitted is None:  # defensive: only rank 0 gets here
                status = "RUNNING"
                return None
            probs, fitted_model = fitted
        pred = cohort.df.loc[cohort.df["split"].isin(["dev", "test"]), ["case_id", "split", "label"]].copy()
        pred["prob"] = probs
        pred = pred.reset_index(drop=True)
        metrics = test_metrics(pred)
        log_run_outputs(client, run_id, cfg, cohort, feats, pred, metrics, fitted_model, out)
        status = "FINISHED"
        log.info("run %s: test AUC %.3f (%.3f-%.3f)", run_id, metrics["test_auc"],
                 metrics["test_auc_ci_low"], metrics["test_auc_ci_high"])
        return TrainResult(run_id, metrics, pred, out)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if status != "RUNNING":
            client.set_terminated(run_id, status)


def process_rank() -> int:
    """Global rank of this process as Lightning's launchers set it (0 outside distributed runs)."""
    from pytorch_lightning.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def configure_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (default: all cores of this machine)."""
    import torch

    torch.set_num_threads(int(n or os.cpu_count() or 1))
