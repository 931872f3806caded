"""One class per kind of model a run trains: the fusion network, a scikit-learn control, a clinical score.

``conf/model/*.yaml`` names its class with ``_target_`` (:func:`estimator_for` builds it with the run's config);
``model.kind`` stays a descriptive key (the ``model_kind`` tag: lightning | sklearn | score) and must agree with
the class. Each class answers what :func:`liver_mm.training.run._tracked_fit` used to ask ``model.kind``: how to fit
(:meth:`Estimator.fit`, returning :class:`~liver_mm.training.fit.Fitted`), how to score rows again
(:meth:`Estimator.predict_proba`), what the run adds to its predictions, metrics and files, how it is explained
and how its model is logged (:meth:`Estimator.log_model`: MLflow-specific, so there is no separate save/load; the
network's bundle is the one file it writes, by :func:`liver_mm.training.outputs.write_bundle`, never by the
LightningModule).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.training import fit
from liver_mm.training.fit import EVAL_SPLITS, Fitted


class Estimator(Protocol):
    """What a run needs of its model, whatever the kind."""

    kind: ClassVar[str]  # the ``model_kind`` tag and ``model.kind``: lightning | sklearn | score
    has_network: ClassVar[bool]  # a fusion network is built: fusion params, bundle, torch model

    def fit(self, cohort: PreparedCohort, feats: Features, callbacks: Sequence[object] = ()) -> Fitted | None:
        """Fit on the training rows; dev+test probabilities in cohort order (None on a DDP worker)."""
        ...

    def predict_proba(self, model: Any, cohort: PreparedCohort, feats: Features,
                      splits: Sequence[str] = EVAL_SPLITS) -> np.ndarray:
        """Probabilities (n,) of ``model`` (``Fitted.model``) for the rows of ``splits`` in cohort order."""
        ...

    def add_outputs(self, fitted: Fitted, pred: pd.DataFrame, metrics: dict[str, float] | None = None) -> None:
        """Add the kind's own prediction columns (``metrics`` None) or metrics (after evaluation), in place."""
        ...

    def write_files(self, fitted: Fitted, out: Path) -> list[Path]:
        """The kind's own files in the run folder (logged with the others)."""
        ...

    def explain(self, cohort: PreparedCohort, feats: Features, fitted: Fitted, threshold: float,
                out: Path) -> list[Path]:
        """Explanations on the test rows, written under ``out/explain``; [] when there are none."""
        ...

    def log_model(self, client, run_id: str, fitted: Fitted, feats: Features, metrics: dict[str, float],
                  synthetic: bool, out: Path) -> None:
        """Keep the trained model: in the run folder and/or MLflow (``logger.log_model``)."""
        ...


class _Base:
    """The defaults: nothing added to predictions, metrics or files, nothing explained or logged."""

    kind: ClassVar[str] = ""
    has_network: ClassVar[bool] = False

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def add_outputs(self, fitted: Fitted, pred: pd.DataFrame, metrics: dict[str, float] | None = None) -> None:
        return None

    def write_files(self, fitted: Fitted, out: Path) -> list[Path]:
        return []

    def explain(self, cohort: PreparedCohort, feats: Features, fitted: Fitted, threshold: float,
                out: Path) -> list[Path]:
        return []

    def log_model(self, client, run_id: str, fitted: Fitted, feats: Features, metrics: dict[str, float],
                  synthetic: bool, out: Path) -> None:
        return None

    @property
    def log_models(self) -> bool:
        return bool(self.cfg.logger.get("log_model", True))


class NetworkEstimator(_Base):
    """The fusion network (image and/or labs) trained by Lightning (``model: fusion``)."""

    kind: ClassVar[str] = "lightning"
    has_network: ClassVar[bool] = True

    def fit(self, cohort: PreparedCohort, feats: Features, callbacks: Sequence[object] = ()) -> Fitted | None:
        return fit.fit_lightning(self.cfg, cohort, feats, callbacks=callbacks)

    def predict_proba(self, model: Any, cohort: PreparedCohort, feats: Features,
                      splits: Sequence[str] = EVAL_SPLITS) -> np.ndarray:
        return fit.predict(model, fit.datamodule(self.cfg, cohort, feats), splits)

    def explain(self, cohort: PreparedCohort, feats: Features, fitted: Fitted, threshold: float,
                out: Path) -> list[Path]:
        from liver_mm.training.explanations import explain_network

        return explain_network(self.cfg, cohort, feats, fitted.model.inference_net, threshold, out)

    def log_model(self, client, run_id: str, fitted: Fitted, feats: Features, metrics: dict[str, float],
                  synthetic: bool, out: Path) -> None:
        """The bundle in ``out/model_bundle``; logged as the pyfunc ``model`` and ``torch_model``, or (without
        ``logger.log_model``) as the plain ``model_bundle`` folder."""
        from liver_mm.tracking import artifacts, models
        from liver_mm.training.outputs import write_bundle

        net = fitted.model.inference_net
        bundle = write_bundle(self.cfg, feats, metrics, synthetic, net, out)
        if self.log_models:  # the pyfunc carries the bundle: the weights are stored once more only as torch_model
            models.log_network_models(client, run_id, bundle, net,
                                      int(self.cfg.image_size) if self.cfg.modalities.image else None,
                                      feats.preprocessor.n_features_out)
        else:
            artifacts.log_folder(client, run_id, bundle, "model_bundle")


class SklearnEstimator(_Base):
    """A scikit-learn control on the preprocessed labs (``model.estimator``: logreg, gbm)."""

    kind: ClassVar[str] = "sklearn"

    def fit(self, cohort: PreparedCohort, feats: Features, callbacks: Sequence[object] = ()) -> Fitted:
        return fit.fit_sklearn(self.cfg, cohort, feats)

    def predict_proba(self, model: Any, cohort: PreparedCohort, feats: Features,
                      splits: Sequence[str] = EVAL_SPLITS) -> np.ndarray:
        rows = np.isin(cohort.df["split"].to_numpy(), list(splits))
        return model.predict_proba(feats.tabular[rows])[:, 1].astype(np.float64)

    def explain(self, cohort: PreparedCohort, feats: Features, fitted: Fitted, threshold: float,
                out: Path) -> list[Path]:
        from liver_mm.training.explanations import explain_estimator

        return explain_estimator(self.cfg, cohort, feats, fitted.model, out, threshold)

    def log_model(self, client, run_id: str, fitted: Fitted, feats: Features, metrics: dict[str, float],
                  synthetic: bool, out: Path) -> None:
        """The fitted estimator as MLflow's scikit-learn ``model`` (skops); nothing without ``logger.log_model``."""
        from liver_mm.tracking import models

        if self.log_models:
            models.log_sklearn_model(client, run_id, fitted.model, feats.tabular.shape[1])


class ScoreEstimator(_Base):
    """FIB-4 / APRI (``model.score``): a published formula, calibrated monotonically on the training rows.
    Its raw score goes beside the probability, its published cut-offs beside the dev-Youden threshold; nothing
    trained is logged and nothing is explained."""

    kind: ClassVar[str] = "score"

    def fit(self, cohort: PreparedCohort, feats: Features, callbacks: Sequence[object] = ()) -> Fitted:
        from liver_mm.training.scores import fit_score

        return fit_score(self.cfg, cohort, feats)

    def predict_proba(self, model: Any, cohort: PreparedCohort, feats: Features,
                      splits: Sequence[str] = EVAL_SPLITS) -> np.ndarray:
        from liver_mm.features.scores import DEFAULT_AST_ULN, clinical_score

        rows = np.isin(cohort.df["split"].to_numpy(), list(splits))
        raw = clinical_score(model.name, cohort.df, ast_uln=float(self.cfg.model.get("ast_uln") or DEFAULT_AST_ULN))
        return model.predict_proba(raw.to_numpy()[rows])

    def add_outputs(self, fitted: Fitted, pred: pd.DataFrame, metrics: dict[str, float] | None = None) -> None:
        if metrics is None:
            pred["score"] = fitted.model.raw  # the published formula's value (prob is its monotone calibration)
            return
        metrics.update(fitted.model.metrics)
        metrics["threshold_score"] = fitted.model.raw_threshold(metrics["threshold"])

    def write_files(self, fitted: Fitted, out: Path) -> list[Path]:
        fitted.model.cutoffs.to_csv(out / "cutoffs.csv", index=False)
        return [out / "cutoffs.csv"]


#: the shipped kinds (a config without ``model._target_`` is read by its ``model.kind``)
ESTIMATORS: tuple[type[_Base], ...] = (NetworkEstimator, SklearnEstimator, ScoreEstimator)


def estimator_for(cfg: DictConfig) -> Estimator:
    """The estimator ``model._target_`` names, built with the run's config; ``model.kind`` must agree with it."""
    from hydra.utils import get_class

    target = cfg.model.get("_target_")
    kind = cfg.model.get("kind")
    if target is None:
        by_kind = {c.kind: c for c in ESTIMATORS}
        if kind not in by_kind:
            raise ValueError(f"model._target_ is missing and model.kind={kind!r} is none of "
                             f"{', '.join(by_kind)}: name the estimator class, e.g. "
                             f"model._target_={NetworkEstimator.__module__}.NetworkEstimator")
        cls: type = by_kind[kind]
    else:
        try:
            cls = get_class(str(target))
        except Exception as exc:
            raise ValueError(f"model._target_={target}: not an importable estimator class ({exc})") from exc
        if not all(callable(getattr(cls, m, None)) for m in ("fit", "predict_proba", "log_model")):
            raise ValueError(f"model._target_={target}: not an estimator (needs fit, predict_proba, log_model; "
                             f"see {__name__}.Estimator)")
    if kind is not None and str(kind) != getattr(cls, "kind", None):
        raise ValueError(f"model.kind={kind} contradicts model._target_={cls.__module__}.{cls.__qualname__} "
                         f"(kind {getattr(cls, 'kind', None)!r}): the model_kind tag would be wrong")
    return cls(cfg)
