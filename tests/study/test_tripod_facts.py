"""Each TRIPOD+AI answer states what this study did, from its records, not what liver-mm does by default: a
manifest's own split column (12a, 13), a tuned ``trainer.max_epochs`` (12c), cross-validation folds that ignored a
split column (12a, 13), settings a separate ``liver-mm tune`` chose (12c and the reports' warning), and nothing
asserted when the record is missing. The records themselves (:mod:`liver_mm.study.tripod.records`) come from a
real manifest file and a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.study.compare import compare_study
from liver_mm.study.tripod.checklist import cv_evidence, split_evidence, tripod_rows
from liver_mm.study.tripod.evidence import ANSWERED, PARTLY
from liver_mm.study.tripod.records import (
    FOLDS_IGNORING,
    FOLDS_MADE,
    OWN_ROWS,
    SPLIT_GIVEN,
    SPLIT_MADE,
    TEST_ROWS,
    settings_sources,
    split_source,
    tuned_outside_warning,
)
from liver_mm.tracking.runs import create_run, log_params, set_status
from liver_mm.tracking.store import connect
from tests.study.test_compare import make_predictions
from tests.study.test_tripod import COMMAND, PROVENANCE

ARMS = ["m1", "tab_logreg"]
SPACE = {"network": {"model.optimizer.lr": "tag(log, interval(1e-4, 3e-3))",
                     "trainer.max_epochs": "int(interval(10, 40))"},
         "LogisticRegression": {"model.estimator.C": "tag(log, interval(1e-3, 1e2))"}}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """60 nodules of 30 patients; a hand-made split whose malignant share differs by part (train 40%, dev 50%,
    test 20%): not what a stratified split gives."""
    i = np.arange(60)
    split = np.where(i < 40, "train", np.where(i < 50, "dev", "test"))
    mal = np.where(i < 40, i % 5 < 2, np.where(i < 50, i % 2 == 0, i % 5 == 0))
    return pd.DataFrame({"case_id": [f"c{k:02d}" for k in i], "patient_id": [f"p{k // 2:02d}" for k in i],
                         "label": np.where(mal, "malignant", "benign"), "split": split})


def _prov(**extra) -> dict:
    settings = {a: PROVENANCE["model_settings"][a] for a in ARMS}
    return {**PROVENANCE, "child_runs": {a: f"run-{a}" for a in ARMS}, "model_settings": settings, **extra}


def _split_rows(tmp_path, cohort, provenance) -> pd.DataFrame:
    comparison = compare_study(make_predictions(cohort["case_id"], cohort["label"], cohort["split"], seed=3,
                                                arms=ARMS), ARMS, reference="m1")
    return tripod_rows(split_evidence(tmp_path, comparison, cohort, provenance, True, COMMAND, None)).set_index("item")


def _cv_rows(tmp_path, cohort, provenance) -> pd.DataFrame:
    fold_preds = {}
    for fold in (0, 1):
        test = cohort.index % 2 == fold
        part = np.where(test, "test", "dev")
        fold_preds[("m1", 0, fold)] = pd.DataFrame({"case_id": cohort["case_id"], "label": cohort["label"],
                                                    "prob": 0.5, "split": part})
    summary = pd.DataFrame({"arm": ["m1"], "n_folds": [2], "n": [60], "pooled_auc": [0.7], "pooled_auc_ci_low": [0.6],
                            "pooled_auc_ci_high": [0.8], "auc_mean": [0.7], "auc_sd": [0.05]})
    ev = cv_evidence(tmp_path, cohort, fold_preds, summary, "m1", provenance, True, COMMAND)
    return tripod_rows(ev).set_index("item")


def test_a_manifest_split_is_reported_as_given_and_unstratified(tmp_path, cohort):
    given = _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_GIVEN))
    text = given.at["12a", "text"]
    assert "The split is the manifest's own split column, used as given" in text
    assert "liver-mm did not make it (split.fractions and split.seed unused)" in text
    assert "liver-mm made it" not in text and "[0.8, 0.1, 0.1]" not in text
    assert given.at["12a", "status"] == ANSWERED
    assert ("The split is the manifest's own split column, not stratified by liver-mm: malignant share train 40.0%, "
            "dev 50.0%, test 20.0%.") in given.at["13", "text"]
    assert "stratified by label" not in given.at["13", "text"] + text
    made = _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_MADE))
    assert "liver-mm made it with fractions [0.8, 0.1, 0.1] and seed 7, grouped by patient and identical image, " \
           "stratified by label." in made.at["12a", "text"]
    assert "The split is stratified by label (made by liver-mm)." in made.at["13", "text"]


def test_an_unrecorded_split_source_is_not_guessed(tmp_path, cohort):
    bare = _prov()
    bare.pop("split_source")
    rows = _split_rows(tmp_path, cohort, bare)
    assert rows.at["12a", "status"] == PARTLY
    assert "Whether liver-mm made the split or the manifest's split column gave it is not recorded" in rows.at[
        "12a", "text"]
    assert "stratified" not in rows.at["12a", "text"]
    assert "Whether the split is stratified by label is not recorded." in rows.at["13", "text"]
    assert "only with logger.log_model=true (not recorded in this report)" in rows.at["12g", "text"]


def test_a_tuned_max_epochs_is_not_reported_as_the_starting_value(tmp_path, cohort):
    config = {**PROVENANCE["config"], "trainer": {"max_epochs": 15}, "tune": {"trials": 8, "sampler": "tpe",
                                                                              "space": SPACE}}
    tuned = _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_MADE, config=config)).at["12c", "text"]
    assert ("Networks train for the number of epochs each job's search chose (trainer.max_epochs searched over "
            "int(interval(10, 40)); the configured 15 was only the starting value)") in tuned
    assert "for 15 epochs" not in tuned
    assert "the guard: no trial is given a test row" in tuned
    fixed = {**config, "tune": {"trials": 8, "sampler": "tpe",
                                "space": {**SPACE, "network": {**SPACE["network"], "trainer.max_epochs": None}}}}
    assert "Networks train for 15 epochs" in _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_MADE,
                                                                                 config=fixed)).at["12c", "text"]


def test_the_dev_part_role_follows_the_epoch_rule(tmp_path, cohort):
    config = {**PROVENANCE["config"], "checkpoint": {"select": "last"}}
    text = _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_MADE, config=config)).at["12a", "text"]
    assert "dev chooses the classification threshold, test" in text and "epoch" not in text
    assert "keeping the last epoch" in _split_rows(tmp_path, cohort, _prov(split_source=SPLIT_MADE, config=config)
                                                   ).at["12c", "text"]


def test_cross_validation_says_its_folds_ignored_the_split_column(tmp_path, cohort):
    rows = _cv_rows(tmp_path, cohort, _prov(split_source=FOLDS_IGNORING))
    assert "folds made by liver-mm" in rows.at["12a", "text"]
    assert "The manifest's split column was ignored: cross-validation makes its own parts." in rows.at["12a", "text"]
    assert "The folds and each fold's dev part are stratified by label" in rows.at["13", "text"]
    plain = _cv_rows(tmp_path, cohort, _prov(split_source=FOLDS_MADE)).at["12a", "text"]
    assert "ignored" not in plain


def test_settings_tuned_on_a_single_split_are_flagged_in_a_cv_study(tmp_path, cohort):
    source = {"m1": {"tune_run": "tune9", "tuned_arm": "m1", "split_hash": "ab" * 32, "tuned_on": TEST_ROWS}}
    prov = _prov(split_source=FOLDS_MADE, settings_source=source)
    text = _cv_rows(tmp_path, cohort, prov).at["12c", "text"]
    assert ("Settings chosen by a separate `liver-mm tune` search on a single split (m1: run tune9 on split sha256 "
            "abababababab): for m1 that search's train and dev rows are test rows of this study") in text
    (warning, blank) = tuned_outside_warning(prov)
    assert warning.startswith("**Warning: settings tuned outside this study's training data.** m1: `liver-mm tune` "
                              "run tune9 (arm m1, split sha256 abababababab).")
    assert "every nodule is a test case of some fold" in warning and blank == ""
    inside = _prov(split_source=SPLIT_MADE, settings_source={"m1": {**source["m1"], "tuned_on": OWN_ROWS}})
    assert tuned_outside_warning(inside) == [] and tuned_outside_warning(_prov()) == []
    assert "on this split's train and dev rows; the test part was not used" in _split_rows(
        tmp_path, cohort, inside).at["12c", "text"]


def _prepared(tmp_path: Path, cohort: pd.DataFrame, with_split: bool) -> PreparedCohort:
    path = tmp_path / ("given.csv" if with_split else "plain.csv")
    (cohort if with_split else cohort.drop(columns="split")).to_csv(path, index=False)
    return PreparedCohort(cohort, path, path, "mh", "sh", False)


def test_split_source_reads_the_source_manifest(tmp_path, cohort):
    given, plain = _prepared(tmp_path, cohort, True), _prepared(tmp_path, cohort, False)
    data = {"kind": "manifest"}
    assert split_source(given, data, cv=False) == SPLIT_GIVEN and split_source(plain, data, cv=False) == SPLIT_MADE
    assert split_source(given, data, cv=True) == FOLDS_IGNORING and split_source(plain, data, cv=True) == FOLDS_MADE
    blank = tmp_path / "blank.csv"
    cohort.assign(split="").to_csv(blank, index=False)
    assert split_source(PreparedCohort(cohort, blank, blank, "mh", "sh", False), data, cv=False) == SPLIT_MADE


def test_settings_sources_match_a_finished_tune_run_by_its_chosen_values(tmp_path):
    """A real store: a tune run (tags as ``liver-mm tune`` writes them) whose chosen C the logreg arm uses."""
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        used = compose("study", overrides=["arm=tab_logreg", "model.estimator.C=0.5547119471592125"])
        other = compose("study", overrides=["arm=tab_logreg"])
        nested = compose("study", overrides=["arm=tab_logreg", "model.estimator.C=0.5547119471592125",
                                             "tune.trials=2"])
    used.logger.tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    used.logger.artifact_root = str(tmp_path / "art")
    client, exp = connect(used.logger)
    run = create_run(client, exp, "tune:tab_logreg", {"study_level": "tuning", "manifest_hash": "mh",
                                                       "split_hash": "s1", "arm": "tab_logreg"})
    log_params(client, run, {"tune.chosen.model.estimator.C": "0.5547119471592125"})
    set_status(client, run, "FINISHED")
    cohort = PreparedCohort(pd.DataFrame(), Path("m"), Path("m"), "mh", "s1", False)
    found = settings_sources(client, exp, {"a": used, "b": other, "c": nested}, cohort, cv=True)
    assert found == {"a": {"tune_run": run, "tuned_arm": "tab_logreg", "split_hash": "s1", "tuned_on": TEST_ROWS}}
    same_split = settings_sources(client, exp, {"a": used}, cohort, cv=False)
    assert same_split["a"]["tuned_on"] == OWN_ROWS
    other_cohort = PreparedCohort(pd.DataFrame(), Path("m"), Path("m"), "another", "s1", False)
    assert settings_sources(client, exp, {"a": used}, other_cohort, cv=True) == {}
