"""When a finished arm run is reused: only while it holds the outputs the command asks for (a logged model when
``logger.log_model=true``, explanations when ``explain.enabled=true``); a clinical score asks for neither."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from mlflow.tracking import MlflowClient

from liver_mm.study.reuse import missing_outputs, reusable


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")


def _cfg(*overrides: str):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=list(overrides))


def _finished(client: MlflowClient, **params: str):
    exp = client.get_experiment_by_name("Default").experiment_id
    run_id = client.create_run(exp, tags={"study_level": "arm", "outputs_logged": "true"}).info.run_id
    for k, v in params.items():
        client.log_param(run_id, k, v)
    client.set_terminated(run_id, "FINISHED")
    return client.get_run(run_id)


def test_a_run_without_a_logged_model_is_not_reused_when_one_is_asked_for(client):
    run = _finished(client, **{"logger.log_model": "False", "explain.enabled": "True"})
    asked = _cfg("arm=tab_logreg", "logger.log_model=true")
    assert missing_outputs(client, run, asked) == ["no logged model (logger.log_model=true asks for one)"]
    assert reusable(client, [run], asked, "arm tab_logreg") == []
    assert missing_outputs(client, run, _cfg("arm=tab_logreg", "logger.log_model=false")) == []
    assert missing_outputs(client, run, _cfg("arm=fib4", "logger.log_model=true")) == []  # a score logs none


def test_a_run_trained_without_explanations_is_not_reused_when_they_are_asked_for(client):
    run = _finished(client, **{"logger.log_model": "False", "explain.enabled": "False"})
    (msg,) = missing_outputs(client, run, _cfg("arm=m1", "logger.log_model=false"))
    assert msg.startswith("no explanations (trained with explain.enabled=false")
    assert missing_outputs(client, run, _cfg("arm=m1", "logger.log_model=false", "explain.enabled=false")) == []
    assert missing_outputs(client, run, _cfg("arm=m1", "logger.log_model=false", "explain.enabled=false",
                                             "explain.cases=4")) == []


def test_a_cross_validated_arms_fold_runs_answer_to_cv_log_models(client):
    run = _finished(client, **{"logger.log_model": "False"})
    client.set_tag(run.info.run_id, "study_level", "fold")
    fold = client.get_run(run.info.run_id)
    cv = ("arm=m1", "cv.folds=3", "logger.log_model=true")
    assert missing_outputs(client, fold, _cfg(*cv)) == []  # cv.log_models=false: folds keep no MLflow model
    assert missing_outputs(client, fold, _cfg(*cv, "cv.log_models=true")) == [
        "no logged model (cv.log_models=true asks for one)"]
