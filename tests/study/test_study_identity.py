"""A study's identity: a changed model setting or ``fusion=`` is another study (new children, tables built from
them), the sweep's callbacks and jobs agree on the key, and the report lists each arm's model settings."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from liver_mm.cli import main
from liver_mm.study.parent import arm_key, study_key

COHORT = SimpleNamespace(manifest_hash="m" * 12, split_hash="s" * 12)


def _compose(overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=overrides, return_hydra_config=True)


def _job_key(overrides: list[str]) -> str:
    """The key a sweep job computes: Hydra's global config set, the job's config without its hydra node."""
    cfg = _compose([*overrides, "arm=m1"])
    HydraConfig.instance().set_config(cfg)
    try:
        job = cfg.copy()
        with open_dict(job):
            del job["hydra"]
        return study_key(job, COHORT)
    finally:
        HydraConfig.instance().cfg = None


def test_a_model_override_for_all_arms_is_another_study():
    base = study_key(_compose([]), COHORT)
    for override in ("++model.optimizer.lr=0.5", "model.ema.enabled=true", "model.net.tta_hflip=true",
                     "model.label_smoothing=0.1", "fusion=film"):
        assert study_key(_compose([override]), COHORT) != base, override
    # execution-only settings keep the study (a resume with other threads or another report folder)
    assert study_key(_compose(["trainer.num_threads=1", "study.out_dir=/tmp/x"]), COHORT) == base


def test_the_sweep_callbacks_and_its_jobs_compute_the_same_key():
    """The callbacks see the command in cfg.hydra (Hydra's global config is not set there); jobs in HydraConfig."""
    for overrides in ([], ["fusion=film"], ["++model.optimizer.lr=0.5", "study.arms=[m1,m5]"]):
        assert study_key(_compose(overrides), COHORT) == _job_key(overrides), overrides


def test_the_arm_key_follows_result_settings_only():
    cfg = _compose(["arm=tab_logreg"])
    assert arm_key(_compose(["arm=tab_logreg", "model.estimator.C=0.1"])) != arm_key(cfg)
    assert arm_key(_compose(["arm=tab_logreg", "trainer.num_threads=1", "loader.num_workers=2",
                             "logger.tracking_uri=sqlite:///x.db", "cache_dir=/tmp/c"])) == arm_key(cfg)


def _args(tmp_path, cohort, *extra: str) -> list[str]:
    return ["study", "data=manifest", f"data.manifest={cohort}", "study.arms=[tab_logreg]",
            "study.reference=tab_logreg", f"study.out_dir={tmp_path / 'report'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}",
            f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}", *extra]


def _children(tmp_path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    return client.search_runs([exp.experiment_id], "tags.is_study_parent = 'false'",
                               order_by=["attributes.start_time ASC"])


@pytest.mark.slow
def test_changed_model_settings_retrain_and_the_report_lists_them(tmp_path, tiny_cohort):
    """Item 1: the logistic control's C changed -> a new child is trained and Table 3 comes from it."""
    assert main(_args(tmp_path, tiny_cohort)) == 0
    table_before = pd.read_csv(tmp_path / "report" / "table3.csv")
    assert main(_args(tmp_path, tiny_cohort, "++model.estimator.C=0.001")) == 0
    children = _children(tmp_path)
    assert len(children) == 2 and children[1].data.params["model.estimator.C"] == "0.001"
    report = (tmp_path / "report" / "report.md").read_text()
    assert children[1].info.run_id in report and children[0].info.run_id not in report
    assert "| model.estimator.C | 0.001 |" in report and "### Model settings of each arm" in report
    assert not pd.read_csv(tmp_path / "report" / "table3.csv").equals(table_before)


@pytest.mark.slow
def test_fusion_on_the_command_line_builds_the_tables_from_its_own_runs(tmp_path, tiny_cohort):
    """Item 2: after a concat study, ``fusion=film`` trains and reports its own child; on a fresh store it finishes."""
    assert main(_args(tmp_path, tiny_cohort)) == 0
    assert main(_args(tmp_path, tiny_cohort, "fusion=film")) == 0
    concat, film = _children(tmp_path)
    report = (tmp_path / "report" / "report.md").read_text()
    assert film.info.run_id in report and concat.info.run_id not in report  # old code: the concat child
    assert "fusion=film" in (tmp_path / "report" / "command.txt").read_text()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert main(_args(fresh, tiny_cohort, "fusion=film")) == 0  # old code: "arms did not finish", exit 1
    assert [r.data.tags["arm"] for r in _children(fresh)] == ["tab_logreg"]


@pytest.mark.parametrize("arm", ["m1", "tab_logreg", "fib4"])
def test_another_estimator_class_is_another_arm(arm):
    """The class that fits the model (``model._target_``) changes results: a finished arm of another class is
    not reused."""
    assert arm_key(_compose([f"arm={arm}"])) != arm_key(_compose([f"arm={arm}", "model._target_=my_lab.MyEstimator"]))
