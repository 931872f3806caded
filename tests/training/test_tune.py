"""The nested search never sees a test case: a flipped test label changes no trial's objective (equality, not a
tolerance) and no trial is given a test row; every trial is an MLflow run nested under the job's run with its
settings and objective; the job trains again with the chosen settings and records them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import open_dict
from sklearn.metrics import roc_auc_score

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.tracking.runs import create_run
from liver_mm.tracking.store import connect
from liver_mm.training import estimators
from liver_mm.training.run import train
from liver_mm.training.tune import run_search, training_part
from tests.training.conftest import compose_train

TRIALS = 3
FIT = estimators.SklearnEstimator.fit


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One MLflow store (and cache) for the module, created here once: creating one costs seconds."""
    folder = tmp_path_factory.mktemp("tune-store")
    connect(_cfg(folder).logger)
    return folder


def _cfg(store: Path, overrides: list[str] = ()):
    cfg = compose_train(["modalities=tabular_only", "model=logreg", f"tune.trials={TRIALS}", *overrides], store)
    with open_dict(cfg):
        cfg.study.arm = "tab_logreg"
    return cfg


def _cohort(n: int = 120, seed: int = 1) -> tuple[PreparedCohort, Features]:
    """Six labs that carry the label weakly (the dev AUC then depends on C), split 80/10/10 in blocks."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], n // 2)
    split = np.array(["train"] * (n * 8 // 10) + ["dev"] * (n // 10) + ["test"] * (n - n * 9 // 10))
    df = pd.DataFrame({"case_id": [f"C{i:04d}" for i in range(n)], "split": split,
                       "label": np.where(labels == 1, "malignant", "benign")})
    weights = rng.normal(size=6) * 0.4
    tab = (rng.normal(size=(n, 6)) + labels[:, None] * weights).astype(np.float32)
    cohort = PreparedCohort(df, Path("mem"), Path("mem"), "mem", "mem", True)
    return cohort, Features(None, tab, labels, SimpleNamespace(n_features_out=6), None)  # type: ignore[arg-type]


def _flipped(cohort: PreparedCohort, feats: Features, case: int) -> tuple[PreparedCohort, Features]:
    """The same cohort with test case ``case``'s label flipped (in the table and in the model's labels)."""
    df = cohort.df.copy()
    assert df.at[case, "split"] == "test"
    df.at[case, "label"] = {"benign": "malignant", "malignant": "benign"}[df.at[case, "label"]]
    labels = feats.labels.copy()
    labels[case] = 1 - labels[case]
    return PreparedCohort(df, *list(vars(cohort).values())[1:]), Features(None, feats.tabular, labels,
                                                                          feats.preprocessor, None)


def _search(cfg, cohort, feats, tmp: Path, monkeypatch):
    """run_search under a fresh parent run; records the case ids each trial's fit was given."""
    seen: list[set[str]] = []

    def spy(self, c, f, callbacks=()):
        assert len(c.df) == len(f.labels) == len(f.tabular)
        seen.append(set(c.df["case_id"]))
        return FIT(self, c, f, callbacks)

    monkeypatch.setattr(estimators.SklearnEstimator, "fit", spy)
    client, exp_id = connect(cfg.logger)
    parent = create_run(client, exp_id, "job", {"test": "true"})
    return run_search(cfg, cohort, feats, client, exp_id, parent, tmp, "tab_logreg"), seen, parent


def test_a_flipped_test_label_changes_no_trial_and_no_trial_sees_a_test_case(store, tmp_path, monkeypatch):
    cfg = _cfg(store)
    cohort, feats = _cohort()
    test_ids = set(cohort.df.loc[cohort.df["split"] == "test", "case_id"])
    plain, seen, _ = _search(cfg, cohort, feats, tmp_path / "a", monkeypatch)
    flipped, seen_flipped, _ = _search(cfg, *_flipped(cohort, feats, int(np.flatnonzero(
        cohort.df["split"] == "test")[0])), tmp_path / "b", monkeypatch)
    objectives = [t.objective for t in plain.trials]
    assert len(objectives) == TRIALS and len(set(objectives)) > 1  # the settings matter on this cohort
    assert [t.objective for t in flipped.trials] == objectives
    assert [t.settings for t in flipped.trials] == [t.settings for t in plain.trials]
    assert len(seen) == len(seen_flipped) == TRIALS
    assert all(not (ids & test_ids) for ids in seen + seen_flipped)
    assert all(ids == set(cohort.df.loc[cohort.df["split"] != "test", "case_id"]) for ids in seen)
    # the objective is the dev AUC of the trial's own model, recomputed here
    c = plain.chosen.settings["model.estimator.C"]
    dev = (cohort.df["split"] == "dev").to_numpy()
    train_rows = (cohort.df["split"] == "train").to_numpy()
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=float(c), max_iter=2000).fit(feats.tabular[train_rows], feats.labels[train_rows])
    auc = roc_auc_score(feats.labels[dev], model.predict_proba(feats.tabular[dev])[:, 1])
    assert plain.chosen.objective == plain.chosen.dev_auc == auc  # no epochs: the objective is the dev AUC
    assert plain.chosen.objective == max(objectives) and plain.chosen.epoch is None
    assert plain.chosen.number == objectives.index(max(objectives))  # the sweeper's rule: the first best


def test_every_trial_is_a_run_nested_under_the_job_with_its_settings_and_objective(store, tmp_path, monkeypatch):
    cfg = _cfg(store)
    result, _, parent = _search(cfg, *_cohort(), tmp_path, monkeypatch)
    client = MlflowClient(cfg.logger.tracking_uri)
    for trial in result.trials:
        run = client.get_run(trial.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["study_level"] == "tuning_trial" and "study_key" not in run.data.tags
        assert run.data.tags["tune_trial"] == str(trial.number) and run.data.tags["arm"] == "tab_logreg"
        assert run.data.params["model.estimator.C"] == trial.settings["model.estimator.C"]
        assert run.data.metrics["objective"] == trial.objective and run.data.metrics["kept_dev_auc"] == trial.dev_auc
        assert run.info.status == "FINISHED"
    results = (tmp_path / "optimization_results.yaml").read_text()
    assert f"best_value: {result.chosen.objective}" in results and result.overrides[0].startswith("model.estimator.C=")


def test_a_dev_part_of_one_class_cannot_score_a_trial():
    cohort, feats = _cohort()
    df = cohort.df.copy()
    df.loc[(df["split"] == "dev") & (df["label"] == "benign"), "split"] = "train"
    with pytest.raises(ValueError, match="dev rows of both classes; this job's dev part has 6 rows of 1 class"):
        training_part(PreparedCohort(df, *list(vars(cohort).values())[1:]), feats)


def test_the_job_trains_with_the_chosen_settings_and_records_them(store, small_overrides):
    cfg = _cfg(store, [*small_overrides, "explain.enabled=false"])
    res = train(cfg)
    client = MlflowClient(cfg.logger.tracking_uri)
    run = client.get_run(res.run_id)
    trials = pd.read_csv(res.output_dir / "tuning" / "trials.csv", dtype={"model.estimator.C": str})
    assert len(trials) == TRIALS and trials["chosen"].sum() == 1
    chosen = trials[trials["chosen"]].iloc[0]
    assert run.data.params["tune.chosen.model.estimator.C"] == run.data.params["model.estimator.C"] == chosen[
        "model.estimator.C"]
    assert run.data.metrics["tune_best_dev_auc"] == chosen["kept_dev_auc"]
    assert run.data.metrics["tune_best_objective"] == chosen["objective"]
    dev = res.predictions[res.predictions["split"] == "dev"]
    assert roc_auc_score(dev["label"] == "malignant", dev["prob"]) == chosen["kept_dev_auc"]  # the trial again
    nested = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{res.run_id}'")
    assert sorted(r.info.run_id for r in nested) == sorted(trials["run_id"])
    assert {"tuning/trials.csv", "tuning/optimization_results.yaml"} <= {
        f.path for f in client.list_artifacts(res.run_id, "tuning")}
