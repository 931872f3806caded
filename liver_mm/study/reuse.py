"""When a finished run of an arm is reused: its arm key is the one the arm's settings give now
(:func:`liver_mm.study.parent.arm_key`) and it holds the outputs this command asks for.

Logging a model and explaining are execution and report settings (they never enter a key), but a run made
without them lacks what a command with them asks for. So a finished run is not reused, and the arm is trained
again, when

* ``logger.log_model=true`` (a cross-validated study: ``cv.log_models=true``, per fold run) and a model kind that
  logs one (a network, a scikit-learn control) logged no MLflow model: ``liver-mm evaluate``'s advice "rerun the
  study with logger.log_model=true" then logs it;
* ``explain.enabled=true`` (single split) and the run was trained with explanations off.

Other report settings (``explain.cases``, ``study.reference``, ...) reuse the run as it is.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _asks_model(cfg: DictConfig, cross_validated: bool) -> bool:
    if cross_validated:
        return bool(cfg.cv.get("log_models", False))
    return bool(cfg.logger.get("log_model", True))


def missing_outputs(client, run, cfg: DictConfig) -> list[str]:
    """What ``cfg`` asks of the finished ``run`` (an arm's child, or one of its fold runs) that it lacks, as
    phrases naming the setting ([] when it can be reused). A cross-validated arm's container run holds no model
    of its own: its fold runs are checked instead."""
    from liver_mm.study.checks import check_cv
    from liver_mm.tracking.models import run_models
    from liver_mm.training.estimators import estimator_for

    cross_validated = check_cv(cfg) is not None
    fold = run.data.tags.get("study_level") == "fold"
    if cross_validated and not fold:
        return []
    trained = estimator_for(cfg).kind != "score"  # a clinical score logs no model and explains nothing
    missing = []
    if trained and _asks_model(cfg, cross_validated) and "model" not in run_models(client, run):
        setting = "cv.log_models=true" if cross_validated else "logger.log_model=true"
        missing.append(f"no logged model ({setting} asks for one)")
    explained = str(run.data.params.get("explain.enabled", "true")).lower() != "false"
    if trained and not cross_validated and bool(cfg.explain.get("enabled", False)) and not explained:
        missing.append("no explanations (trained with explain.enabled=false; explain.enabled=true asks for them)")
    return missing


def reusable(client, runs: list, cfg: DictConfig | None, what: str) -> list:
    """``runs`` less the finished ones lacking an output ``cfg`` asks for (:func:`missing_outputs`; each logged
    as trained again); all of them when ``cfg`` is None."""
    from liver_mm.tracking.registry import is_finished

    if cfg is None:
        return list(runs)
    out = []
    for run in runs:
        missing = missing_outputs(client, run, cfg) if is_finished(run) else []
        if missing:
            log.info("%s: finished run %s has %s: not reused, trained again", what, run.info.run_id,
                     "; ".join(missing))
        else:
            out.append(run)
    return out
