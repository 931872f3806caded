"""Model inputs of a prepared cohort: cached crops and preprocessed labs, fitted on the training rows only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.crops import build_crop_cache
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.stats import encode_labels


@dataclass(frozen=True)
class Features:
    """Inputs aligned with ``cohort.df`` rows: crops (N, S, S) uint8 or None, labs (N, F) float32,
    labels (N,) 0/1 (malignant = 1), the fitted lab preprocessor and the crop cache key."""

    images: np.ndarray | None
    tabular: np.ndarray
    labels: np.ndarray
    preprocessor: TabularPreprocessor
    crop_key: str | None


def build_features(cfg: DictConfig, cohort: PreparedCohort) -> Features:
    """Fit the lab preprocessing on the ``train`` rows only; crop (cached) when the model sees images."""
    df = cohort.df
    prep = TabularPreprocessor(list(cfg.modalities.features)).fit(df[df["split"] == "train"])
    images, key = None, None
    if cfg.modalities.image:
        cache = build_crop_cache(df, int(cfg.image_size), float(cfg.crop.margin), Path(cfg.cache_dir) / "crops")
        images, key = cache.crops, cache.key
    return Features(images, prep.transform(df), encode_labels(df["label"].to_numpy(dtype=object)), prep, key)
