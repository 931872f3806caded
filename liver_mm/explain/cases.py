"""A manifest's cases as a saved model sees them, for ``liver-mm explain``: crops, preprocessed labs, labels.

The crops are those of ``liver-mm predict``'s own path (:func:`liver_mm.serve.predict.predict_frame`, which
reads each frame and crops it with :meth:`Predictor.crop`): a recording :class:`Predictor` keeps each crop it
makes, so the pictures and probabilities are exactly predict's, with no second copy of its reading code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liver_mm.cohort.labels import parse_labels
from liver_mm.io.schema import line_numbers
from liver_mm.serve.inference import Predictor
from liver_mm.serve.predict import predict_frame

log = logging.getLogger(__name__)


@dataclass
class _CropRecorder(Predictor):
    """A :class:`Predictor` that keeps every crop it makes, in the order made (case order)."""

    crops: list[np.ndarray] = field(default_factory=list)

    def crop(self, frame: np.ndarray, bbox) -> np.ndarray:
        out = super().crop(frame, bbox)
        self.crops.append(out)
        return out


@dataclass(frozen=True)
class Cases:
    """N cases of a validated manifest: ids, crops (N, S, S) uint8 or None (no image branch), labs (N, F)
    float32 after the model's preprocessing, labels (N,) 0/1 or None, and predict's probabilities (N,)."""

    case_ids: list[str]
    crops: np.ndarray | None
    tabular: np.ndarray
    labels: np.ndarray | None
    prob: np.ndarray


def manifest_labels(df: pd.DataFrame, source: str) -> np.ndarray | None:
    """(N,) 0/1 from the ``label`` column (benign / malignant, any case); None when there is no such column
    or a row has none (a warning names them). An unknown label is a ValueError naming file, line, case, column."""
    if "label" not in df.columns:
        return None
    return parse_labels(df["label"], source, lines=line_numbers(df), case_ids=df.get("case_id"),
                        if_missing="explaining without labels (no correct/wrong montage, no permutation importance)")


def prepare_cases(predictor: Predictor, df: pd.DataFrame, source: str) -> Cases:
    """Score a validated manifest frame as ``liver-mm predict`` does, keeping its crops and preprocessed labs."""
    recorder = _CropRecorder(predictor.bundle, predictor.preprocessor, predictor.batch_size)
    pred = predict_frame(recorder, df)
    crops = np.stack(recorder.crops) if predictor.use_image else None
    if crops is not None and len(crops) != len(df):
        raise RuntimeError(f"recorded {len(crops)} crops for {len(df)} cases")
    tabular = predictor.tabular(df[predictor.features].reset_index(drop=True))
    return Cases(pred["case_id"].astype(str).tolist(), crops, tabular, manifest_labels(df, source),
                 pred["prob"].to_numpy(dtype=np.float64))
