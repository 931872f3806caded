"""Tuning end to end: a cross-validated study with ``tune.trials`` (each fold job searches on its own training
part, its trials nested under its fold run, the report names the chosen settings per fold, a rerun trains
nothing), and ``liver-mm tune`` on its own inside its Hydra app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from liver_mm.cli import main

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))
TINY = ["data=synthetic", "data.n=120", "image_size=32", "image_encoder=mobilenetv2_050", "loader.batch_size=16",
        "tune.trials=2", "tune.space.network={trainer.max_epochs: 'choice(1, 2)'}"]

pytestmark = pytest.mark.slow


def _study(root: Path) -> subprocess.CompletedProcess:
    args = ["study", *TINY, "cv.folds=2", "study.arms=[m2,tab_logreg]", "study.reference=m2",
            "study.name=tune-tiny", f"study.out_dir={root / 'report'}", f"cache_dir={root / 'cache'}",
            f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"logger.artifact_root={root / 'mlartifacts'}",
            f"hydra.sweep.dir={root / 'multirun'}"]
    return subprocess.run([LIVER_MM, *args], cwd=root, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tuned_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-study")
    done = _study(root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return root, client, client.get_experiment_by_name("liver-mm").experiment_id


def test_each_fold_searched_its_own_training_part_and_the_report_names_its_choice(tuned_study):
    root, client, exp = tuned_study
    table = pd.read_csv(root / "report" / "tuning.csv", dtype=str)
    assert table[["arm", "repeat", "fold"]].values.tolist() == [["m2", "0", "0"], ["m2", "0", "1"],
                                                                 ["tab_logreg", "0", "0"], ["tab_logreg", "0", "1"]]
    report = (root / "report" / "report.md").read_text()
    assert "## Tuning (nested in the training data)" in report and "the test fold was never passed" in report
    folds = client.search_runs([exp], "tags.study_level = 'fold'")
    assert len(folds) == 4
    for run in folds:
        row = table[(table["arm"] == run.data.tags["arm"]) & (table["fold"] == run.data.tags["fold"])].iloc[0]
        chosen = {k.removeprefix("tune.chosen."): v for k, v in run.data.params.items() if k.startswith("tune.chosen.")}
        assert chosen and all(row[k] == v for k, v in chosen.items())
        assert all(run.data.params[k] == str(yaml.safe_load(v)) for k, v in chosen.items())  # trained with them
        trials = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        assert len(trials) == 2 and {t.data.tags["study_level"] for t in trials} == {"tuning_trial"}
        assert all("study_key" not in t.data.tags and t.data.tags["fold"] == run.data.tags["fold"] for t in trials)
        best = max(trials, key=lambda t: (t.data.metrics["objective"], -int(t.data.tags["tune_trial"])))
        assert run.data.metrics["tune_best_objective"] == best.data.metrics["objective"] == float(
            row["best_objective"])
        assert run.data.metrics["tune_best_dev_auc"] == best.data.metrics["kept_dev_auc"] == float(row["best_dev_auc"])


def test_a_rerun_of_the_tuned_study_trains_nothing(tuned_study):
    root, client, exp = tuned_study
    before = {r.info.run_id for r in client.search_runs([exp], "")}
    again = _study(root)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {r.info.run_id for r in client.search_runs([exp], "")} == before


def test_liver_mm_tune_searches_one_arm_alone(tmp_path, capsys):
    args = ["tune", "arm=m5", *TINY, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    trials = pd.read_csv(tmp_path / "run" / "tuning" / "trials.csv", dtype=str)
    chosen = trials[trials["chosen"] == "True"].iloc[0]
    assert f"trainer.max_epochs={chosen['trainer.max_epochs']}" in out and "liver-mm train " in out
    assert "+arm=m5" in out and "the test split was not used" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm").experiment_id
    (parent,) = client.search_runs([exp], "tags.study_level = 'tuning'")
    assert parent.info.run_name == "tune:m5" and parent.info.status == "FINISHED"
    assert parent.data.params["tune.chosen.model.optimizer.lr"] == chosen["model.optimizer.lr"]
    nested = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.info.run_id for r in nested) == sorted(trials["run_id"])
    assert not any("test_auc" in r.data.metrics for r in [parent, *nested])  # nothing is tested
