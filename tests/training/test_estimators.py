"""The estimator of each model kind: chosen by ``model._target_``, agreeing with ``model.kind`` (the model_kind
tag), refusing a contradiction or a class that is no estimator; its ``predict_proba`` rescores the fitted model
exactly as ``fit`` scored the dev and test rows."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import open_dict

from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.features.inputs import build_features
from liver_mm.training.estimators import NetworkEstimator, ScoreEstimator, SklearnEstimator, estimator_for
from tests.training.conftest import compose_train

KINDS = {"fusion": (NetworkEstimator, "lightning"), "logreg": (SklearnEstimator, "sklearn"),
         "gbm": (SklearnEstimator, "sklearn"), "fib4": (ScoreEstimator, "score"), "apri": (ScoreEstimator, "score")}


@pytest.mark.parametrize("model", list(KINDS))
def test_each_model_file_names_its_estimator(tmp_path, model):
    cfg = compose_train([f"model={model}", "modalities=tabular_only"], tmp_path)
    est = estimator_for(cfg)
    cls, kind = KINDS[model]
    assert type(est) is cls and est.kind == kind == cfg.model.kind
    assert est.has_network is (kind == "lightning")


def test_a_config_without_target_is_read_by_its_kind(tmp_path):
    cfg = compose_train(["model=gbm", "modalities=tabular_only"], tmp_path)
    with open_dict(cfg):
        del cfg.model["_target_"]
    assert type(estimator_for(cfg)) is SklearnEstimator


def test_a_kind_that_contradicts_the_class_is_refused(tmp_path):
    cfg = compose_train(["model=logreg", "modalities=tabular_only",
                         "model._target_=liver_mm.training.estimators.NetworkEstimator"], tmp_path)
    with pytest.raises(ValueError, match="model.kind=sklearn contradicts model._target_=liver_mm.training.estimators"
                                         ".NetworkEstimator \\(kind 'lightning'\\)"):
        estimator_for(cfg)


@pytest.mark.parametrize(("target", "message"), [
    ("liver_mm.training.nowhere.Nothing", "model._target_=liver_mm.training.nowhere.Nothing: not an importable"),
    ("collections.OrderedDict", "model._target_=collections.OrderedDict: not an estimator (needs fit"),
])
def test_a_target_that_is_no_estimator_is_refused(tmp_path, target, message):
    cfg = compose_train(["model=fib4", "modalities=tabular_only", f"model._target_={target}", "~model.kind"],
                        tmp_path)
    with pytest.raises(ValueError, match=message.replace("(", "\\(")):
        estimator_for(cfg)


@pytest.mark.parametrize(("model", "modalities"), [("logreg", "tabular_only"), ("gbm", "tabular_only"),
                                                   ("fib4", "tabular_only"), ("apri", "tabular_only"),
                                                   ("fusion", "m2")])
def test_predict_proba_rescores_what_fit_scored(tmp_path, small_overrides, model, modalities):
    cfg = compose_train([*small_overrides, f"model={model}", f"modalities={modalities}"], tmp_path)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    est = estimator_for(cfg)
    fitted = est.fit(cohort, feats)
    assert fitted is not None
    again = est.predict_proba(fitted.model, cohort, feats)
    assert again.dtype == np.float64 and again.shape == fitted.probs.shape == (int(cohort.df["split"]
                                                                                   .isin(["dev", "test"]).sum()),)
    np.testing.assert_array_equal(again, fitted.probs)
    test = est.predict_proba(fitted.model, cohort, feats, ["test"])  # float32 labs: fewer rows, other BLAS sums
    in_test = cohort.df.loc[cohort.df["split"].isin(["dev", "test"]), "split"].to_numpy() == "test"
    np.testing.assert_allclose(test, fitted.probs[in_test], rtol=1e-6)
