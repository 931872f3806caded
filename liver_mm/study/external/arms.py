"""Each arm of a finished study as a frozen scorer of new cases: exactly the model its child run saved.

* a network (``lightning``): the bundle in the run's pyfunc ``model`` (or ``model_bundle`` when the study ran with
  ``logger.log_model=false``), scored as ``liver-mm predict`` scores it; its ``spec.json`` threshold must equal the
  run's ``threshold`` metric;
* a scikit-learn control (``sklearn``): the run's skops ``model`` on its ``preprocessing.json`` (the lab
  preprocessing fitted on the study's training rows); a study run with ``logger.log_model=false`` kept none;
* a clinical score (``score``): the published formula, then the run's monotone calibration
  ``prob = expit(a + b log score)``; a score arm logs no model, so (a, b) are read back from its
  ``predictions.csv`` (``score`` and ``prob`` columns: logit(prob) is exactly linear in log(score)).

Nothing is refitted and no threshold is chosen here: each arm's threshold is its run's (:mod:`.external_source`).
A loaded arm carries its clinical preprocessing (fitted on the study's training rows), so ``evaluate`` can refuse
categories the model never saw before any prediction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logit

from liver_mm.features.scores import DEFAULT_AST_ULN, clinical_score
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.serve.predict import ModelLoadError, load_predictor, predict_frame
from liver_mm.study.external.source import ArmRun
from liver_mm.training.scores import ScoreModel

#: a validated manifest frame (N rows) -> probabilities of malignancy (N,) float64
Scorer = Callable[[pd.DataFrame], np.ndarray]
_LINEAR_TOL = 1e-6  # max |logit(prob) - (a + b log score)| of a score arm's own predictions


@dataclass(frozen=True)
class ArmModel:
    """One arm's saved model: ``score`` (a :data:`Scorer`) and the clinical preprocessing it was trained with
    (None for a score arm: a formula)."""

    score: Scorer
    preprocessor: TabularPreprocessor | None = None


def load_scorer(client, run: ArmRun, dst: Path, batch_size: int = 32) -> ArmModel:
    """The saved model of ``run`` as an :class:`ArmModel` (files downloaded into ``dst``); ``ModelLoadError``
    naming the arm, its run and what is wrong when it cannot be loaded."""
    loaders = {"lightning": _network, "sklearn": _sklearn, "score": _score}
    try:
        return loaders[run.kind](client, run, dst, batch_size)
    except ModelLoadError as exc:
        raise ModelLoadError(f"arm {run.arm} (run {run.run_id}): {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"arm {run.arm} (run {run.run_id}): cannot load its saved model ({exc})") from None


def _network(client, run: ArmRun, dst: Path, batch_size: int) -> ArmModel:
    from liver_mm.tracking.models import download_run_model

    if "model" in run.models:
        local = download_run_model(client, run.run_id, "model", dst)
    elif "model_bundle" in run.artifacts:
        local = client.download_artifacts(run.run_id, "model_bundle", str(dst))
    else:
        raise ModelLoadError("the run saved no network (no logged model 'model', no model_bundle artifact)")
    predictor = load_predictor(str(local), batch_size=batch_size)
    if not math.isclose(predictor.threshold, run.threshold, rel_tol=1e-9, abs_tol=1e-12):
        raise ModelLoadError(f"the bundle's threshold {predictor.threshold} is not the run's {run.threshold}")
    return ArmModel(lambda df: predict_frame(predictor, df)["prob"].to_numpy(dtype=np.float64), predictor.preprocessor)


def _sklearn(client, run: ArmRun, dst: Path, batch_size: int) -> ArmModel:
    from liver_mm.tracking.models import load_sklearn_model

    if "model" not in run.models:
        raise ModelLoadError("the run logged no scikit-learn model (the study ran with logger.log_model=false, "
                             "which keeps none): rerun the study with logger.log_model=true to evaluate this arm")
    estimator = load_sklearn_model(client, run.run_id, dst)
    path = client.download_artifacts(run.run_id, "preprocessing.json", str(dst / "prep"))
    prep = TabularPreprocessor.from_dict(json.loads(Path(path).read_text()))
    if int(getattr(estimator, "n_features_in_", prep.n_features_out)) != prep.n_features_out:
        raise ModelLoadError(f"the model takes {estimator.n_features_in_} inputs, its preprocessing.json gives "
                             f"{prep.n_features_out}")
    return ArmModel(lambda df: estimator.predict_proba(prep.transform(df))[:, 1].astype(np.float64), prep)


def score_calibration(score: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """(a, b) of ``prob = expit(a + b log score)`` read back from a score arm's predictions (n,) each: the least
    squares line of logit(prob) on log(score), which fits them exactly (``ValueError`` when it does not)."""
    score, prob = np.asarray(score, dtype=np.float64), np.asarray(prob, dtype=np.float64)
    ok = np.isfinite(score) & (score > 0) & (prob > 1e-12) & (prob < 1 - 1e-12)
    x, y = np.log(score[ok]), logit(prob[ok])
    if ok.sum() < 2 or np.ptp(x) == 0:
        raise ValueError("predictions.csv holds fewer than two distinct scores: the calibration cannot be read back")
    b, a = np.polyfit(x, y, 1)
    worst = float(np.max(np.abs(y - (a + b * x))))
    if worst > _LINEAR_TOL:
        raise ValueError(f"logit(prob) is not linear in log(score) (max deviation {worst:.2g}): not a score arm's "
                         "predictions")
    return float(a), float(b)


def _score(client, run: ArmRun, dst: Path, batch_size: int) -> ArmModel:
    path = client.download_artifacts(run.run_id, "predictions.csv", str(dst))
    pred = pd.read_csv(path)
    if "score" not in pred.columns:
        raise ModelLoadError("predictions.csv has no score column: the calibration cannot be read back")
    name, cfg = str(run.config.model.score), run.config.model
    a, b = score_calibration(pred["score"].to_numpy(), pred["prob"].to_numpy())
    model = ScoreModel(name, a, b, np.empty(0), pd.DataFrame())
    uln = float(cfg.get("ast_uln") or DEFAULT_AST_ULN)

    def scorer(df: pd.DataFrame) -> np.ndarray:
        raw = clinical_score(name, df, ast_uln=uln).to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(raw) & (raw > 0))
        if bad.any():
            cases = ", ".join(map(str, df["case_id"].to_numpy()[bad][:5]))
            raise ValueError(f"{name} is not a positive number for {int(bad.sum())} case(s) ({cases})")
        return model.predict_proba(raw)

    return ArmModel(scorer)
