"""A study rerun end to end: the README's override spellings find their parent and reuse every arm (single split
and cross-validated); comparison and report settings retrain nothing; ``logger.log_model=true``, as
``liver-mm evaluate`` advises, trains again the arm that logged no model."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from liver_mm.cli import main
from liver_mm.synth.cohort import generate_cohort

pytestmark = pytest.mark.slow
#: the README's spellings of model settings (Hydra hands them to each job as True / 0.0003)
SPELLINGS = ["++model.net.tta_hflip=true", "model.ema.enabled=true", "model.optimizer.lr=3e-4"]


def _base(root: Path, cohort: Path, *extra: str) -> list[str]:
    return ["study", "data=manifest", f"data.manifest={cohort}", "image_size=32", "trainer.max_epochs=1",
            "loader.batch_size=16", "image_encoder=mobilenetv2_050", "explain.enabled=false", "study.name=tiny",
            f"study.out_dir={root / 'report'}", f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}",
            f"logger.artifact_root={root / 'art'}", f"cache_dir={root / 'cache'}",
            f"hydra.sweep.dir={root / 'multirun'}", *extra]


def _run(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # the study's callbacks exit 1 when an arm did not finish
        return int(exc.code or 0)


def _runs(root: Path, query: str) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    return client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time ASC"])


def test_readme_spellings_find_their_parent_and_a_rerun_reuses_every_arm(tmp_path, tiny_cohort):
    args = _base(tmp_path, tiny_cohort, "study.arms=[m1,m2]", "logger.log_model=false", *SPELLINGS)
    assert _run(args) == 0  # old code: "arms m1, m2 did not finish; rerun the same command", exit 1
    children = _runs(tmp_path, "tags.is_study_parent = 'false'")
    assert sorted(r.data.tags["arm"] for r in children) == ["m1", "m2"]
    params = children[0].data.params
    assert (params["model.net.tta_hflip"], params["model.ema.enabled"], params["model.optimizer.lr"]) == (
        "True", "True", "0.0003")
    assert _run(args) == 0  # the same command: every arm reused
    assert [r.info.run_id for r in _runs(tmp_path, "tags.is_study_parent = 'false'")] == [
        r.info.run_id for r in children]
    # only what is compared or reported changes: the same parent, nothing retrained, the report recomputed
    report_only = [*args, "study.reference=m2", "study.arms=[m2]", "explain.cases=4",
                   "trainer.log_every_n_steps=1", "trainer.enable_model_summary=true", "cv.log_models=true",
                   "study.holm_families=[]"]
    assert _run(report_only) == 0
    assert len(_runs(tmp_path, "tags.is_study_parent = 'false'")) == 2
    assert len(_runs(tmp_path, "tags.is_study_parent = 'true'")) == 1
    report = (tmp_path / "report" / "report.md").read_text()
    m2 = next(r for r in children if r.data.tags["arm"] == "m2")
    assert m2.info.run_id in report and "m1" not in (tmp_path / "report" / "table3.csv").read_text()


def test_readme_spellings_cross_validated(tmp_path, tiny_cohort):
    args = _base(tmp_path, tiny_cohort, "study.arms=[m1]", "study.reference=m1", "cv.folds=2", "cv.dev_fraction=0.25",
                 "logger.log_model=false", *SPELLINGS)
    assert _run(args) == 0  # old code: exit 1, the report step looked under another parent
    folds = _runs(tmp_path, "tags.study_level = 'fold'")
    assert len(folds) == 2 and all(r.data.params["model.ema.enabled"] == "True" for r in folds)
    assert _run(args) == 0
    assert [r.info.run_id for r in _runs(tmp_path, "tags.study_level = 'fold'")] == [r.info.run_id for r in folds]


def test_the_evaluate_advice_logger_log_model_true_logs_the_missing_model(tmp_path, tiny_cohort, capsys):
    """Item 3: a study without logged models; evaluate says "rerun the study with logger.log_model=true"; that
    rerun trains the arm again with its model, and evaluate then applies it."""
    site_b = generate_cohort(tmp_path / "site_b", n=60, seed=5, frame_size=(128, 160), progress=False, site="b")
    args = _base(tmp_path, tiny_cohort, "study.arms=[tab_logreg]", "study.reference=tab_logreg")
    evaluate = ["evaluate", "--study", str(tmp_path / "report"), "--manifest", str(site_b),
                "--out", str(tmp_path / "ev")]
    assert _run([*args, "logger.log_model=false"]) == 0
    capsys.readouterr()
    assert main(evaluate) == 1
    assert "rerun the study with logger.log_model=true" in capsys.readouterr().err
    assert _run([*args, "logger.log_model=true"]) == 0  # old code: "already finished", still no model
    first, second = _runs(tmp_path, "tags.is_study_parent = 'false'")
    assert (first.data.params["logger.log_model"], second.data.params["logger.log_model"]) == ("False", "True")
    assert main(evaluate) == 0
    assert _run([*args, "logger.log_model=true"]) == 0  # it has its model now: reused
    assert _run([*args, "logger.log_model=false"]) == 0  # a model it need not log: reused too
    assert len(_runs(tmp_path, "tags.is_study_parent = 'false'")) == 2
