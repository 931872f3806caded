"""A study's identity: the parent key holds the cohort, split and folds (and their content), each arm's key its
result-defining settings, both from resolved values (the sweep's callbacks and its jobs agree whatever the
spelling); a changed model setting or ``fusion=`` retrains the arm (new children, tables built from them) and the
report lists each arm's model settings; comparison, report and execution settings retrain nothing."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from liver_mm.cli import main
from liver_mm.study.parent import arm_key, study_key

COHORT = SimpleNamespace(manifest_hash="m" * 12, split_hash="s" * 12, content_hash="c" * 12)
#: every spelling of a model setting the README gives for a study command
README_SPELLINGS = ("++model.net.tta_hflip=true", "model.net.tta_hflip=true", "model.ema.enabled=true",
                    "model.optimizer.lr=3e-4", "++model.optimizer.lr=0.5", "model.label_smoothing=0.1",
                    "fusion=film", "model.scheduler=null")


def _compose(overrides: list[str]):
    return _composed(tuple(overrides)).copy()


@functools.cache
def _composed(overrides: tuple[str, ...]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=list(overrides), return_hydra_config=True)


def _as_the_sweep_passes_it(override: str) -> str:
    """The override as Hydra's basic sweeper hands it to each job (``true`` -> ``True``, ``3e-4`` -> ``0.0003``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (parsed,) = OverridesParser.create().parse_overrides([override])
    return f"{parsed.get_key_element()}={parsed.get_value_element_as_str()}"


def _job(overrides: list[str], arm: str = "m1"):
    """A sweep job's config and study key: the sweeper's rewritten overrides, Hydra's global config set, the
    job's config without its hydra node."""
    cfg = _compose([*(_as_the_sweep_passes_it(o) for o in overrides), f"arm={arm}"])
    HydraConfig.instance().set_config(cfg)
    try:
        job = cfg.copy()
        with open_dict(job):
            del job["hydra"]
        return job, study_key(job, COHORT)
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize("override", README_SPELLINGS)
def test_the_callbacks_and_the_jobs_agree_on_both_keys_for_every_readme_spelling(override):
    """Item 0: the callbacks see the command as typed (``true``), the jobs Hydra's rewritten form (``True``):
    the keys come from resolved values, so both find the same parent and the same arm runs."""
    callbacks = _compose([override])
    job, job_key = _job([override], arm="m5")
    assert study_key(callbacks, COHORT) == job_key
    assert arm_key(_compose([override, "arm=m5"])) == arm_key(job)


@pytest.mark.parametrize("override", README_SPELLINGS)
def test_a_model_setting_keeps_the_study_and_retrains_the_arm(override):
    base = _compose(["arm=m5"])
    changed = _compose([override, "arm=m5"])
    assert study_key(changed, COHORT) == study_key(base, COHORT)  # the same parent: same cohort, split, folds
    assert arm_key(changed) != arm_key(base)  # another model: trained again


REPORT_OR_EXECUTION = ("study.reference=m2", "study.holm_families=[]", "study.arms=[m1,m2]", "explain.enabled=false",
                       "explain.cases=4", "explain.importance_repeats=2", "trainer.log_every_n_steps=1",
                       "trainer.enable_model_summary=true", "cv.log_models=true", "logger.log_model=false",
                       "trainer.num_threads=1", "loader.num_workers=2", "study.out_dir=/tmp/x",
                       "cache_dir=/tmp/c", "logger.tracking_uri=sqlite:///x.db")


@pytest.mark.parametrize("arm", ["m1", "tab_logreg"])
@pytest.mark.parametrize("override", REPORT_OR_EXECUTION)
def test_what_is_only_compared_reported_or_executed_keeps_both_keys(override, arm):
    """Item 1: comparison, report and execution settings neither start a new parent nor retrain an arm."""
    base = _compose([f"arm={arm}"])
    changed = _compose([override, f"arm={arm}"])
    assert study_key(changed, COHORT) == study_key(base, COHORT)
    assert arm_key(changed) == arm_key(base)


@pytest.mark.parametrize("override", ["data.n=300", "data.seed=1", "split.seed=3", "split.fractions=[0.7,0.15,0.15]",
                                      "seed=1", "cv.folds=5", "cv.repeats=2", "cv.dev_fraction=0.25",
                                      "study.name=other"])
def test_the_cohort_split_and_folds_define_the_parent(override):
    assert study_key(_compose([override]), COHORT) != study_key(_compose([]), COHORT)


@pytest.mark.parametrize("field", ["manifest_hash", "content_hash", "split_hash"])
def test_the_cohorts_content_defines_the_parent(field):
    """Item 2: an image replaced under the same path changes ``content_hash`` only: another study."""
    other = SimpleNamespace(**{**vars(COHORT), field: "x" * 12})
    assert study_key(_compose([]), other) != study_key(_compose([]), COHORT)


@pytest.mark.parametrize("override", ["image_size=64", "crop.margin=0.1", "trainer.max_epochs=3", "augment.hflip=0",
                                      "image_encoder=resnet18", "loader.batch_size=8", "checkpoint.select=last"])
def test_result_settings_shared_by_the_arms_retrain_them_under_the_same_parent(override):
    base, changed = _compose(["arm=m1"]), _compose([override, "arm=m1"])
    assert study_key(changed, COHORT) == study_key(base, COHORT)
    assert arm_key(changed) != arm_key(base)


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
