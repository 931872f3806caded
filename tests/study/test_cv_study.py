"""`liver-mm study cv.folds=K cv.repeats=R` end to end: every case tested once per repeat, grouped folds,
parent metrics that a recomputation reproduces, resume at fold granularity, a clear error for a small cohort."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from liver_mm.cli import main
from liver_mm.stats import compare_fold_aucs
from liver_mm.study.cv.report import verdicts

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))
ARMS = ["m1", "m5", "tab_logreg"]


def _args(root: Path, *extra: str) -> list[str]:
    return ["study", "data=synthetic", "data.n=200", "image_size=48", "trainer.max_epochs=1", "cv.folds=3",
            "cv.repeats=2", "study.arms=[m1,m5,tab_logreg]", "study.name=cv-tiny",
            f"study.out_dir={root / 'report'}", f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}",
            f"logger.artifact_root={root / 'mlartifacts'}", f"cache_dir={root / 'cache'}",
            f"hydra.sweep.dir={root / 'multirun'}", *extra]


def _fold_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid where "
                               "t.key = 'study_level' and t.value = 'fold' and r.status = 'FINISHED' "
                               "and r.lifecycle_stage = 'active'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.fixture(scope="module")
def cv_study(tmp_path_factory):
    """Start the study, SIGKILL it after four fold runs finished, then rerun it with parallel fold jobs
    (joblib launcher: execution settings, the same study)."""
    root = tmp_path_factory.mktemp("cv")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([LIVER_MM, *_args(root)], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while _fold_runs(root / "mlflow.db") < 4:
        assert proc.poll() is None and time.time() < deadline, "the study ended before it could be killed"
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    before = {r.info.run_id for r in client.search_runs([exp.experiment_id], "tags.study_level = 'fold'")
              if r.info.status == "FINISHED"}
    parallel = ["hydra/launcher=joblib_local", "trainer.num_threads=1"]
    done = subprocess.run([LIVER_MM, *_args(root, *parallel)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, client, exp.experiment_id, before


@pytest.mark.slow  # a real 2-fold study (about 110 s on 2 cores)
def test_every_case_once_per_arm_and_repeat(cv_study):
    root, *_ = cv_study
    oof = pd.read_csv(root / "report" / "oof_predictions.csv")
    assert list(oof.columns[:7]) == ["case_id", "patient_id", "arm", "repeat", "fold", "label", "prob"]
    manifest = pd.read_csv(next((root / "cache" / "cohorts").glob("synthetic-n200*/manifest.csv")))
    for (arm, rep), part in oof.groupby(["arm", "repeat"]):
        assert sorted(part["case_id"]) == sorted(manifest["case_id"]), (arm, rep)
    # no patient in two folds of one repeat
    assert (oof.groupby(["arm", "repeat", "patient_id"])["fold"].nunique() == 1).all()
    assert set(oof["arm"]) == set(ARMS) and set(oof["repeat"]) == {0, 1} and set(oof["fold"]) == {0, 1, 2}


@pytest.mark.slow  # a real 2-fold study (about 110 s on 2 cores)
def test_parent_metrics_equal_a_recomputation(cv_study):
    root, client, exp_id, _ = cv_study
    parent = client.search_runs([exp_id], "tags.is_study_parent = 'true'")[0]
    assert parent.info.status == "FINISHED"
    m = parent.data.metrics
    cv_auc = pd.read_csv(root / "report" / "cv_auc.csv")
    sizes = pd.read_csv(root / "report" / "cv_fold_sizes.csv")
    for arm in ARMS:
        aucs = cv_auc.loc[cv_auc["arm"] == arm].sort_values(["repeat", "fold"])["auc"].to_numpy()
        assert len(aucs) == 6
        assert m[f"cv_auc_mean_{arm}"] == pytest.approx(aucs.mean(), abs=1e-12)
        assert m[f"cv_auc_sd_{arm}"] == pytest.approx(aucs.std(ddof=1), abs=1e-12)
    oof = pd.read_csv(root / "report" / "oof_predictions.csv")
    from sklearn.metrics import roc_auc_score

    for (arm, rep, fold), part in oof.groupby(["arm", "repeat", "fold"]):
        row = cv_auc[(cv_auc["arm"] == arm) & (cv_auc["repeat"] == rep) & (cv_auc["fold"] == fold)]
        assert row["auc"].item() == pytest.approx(roc_auc_score(part["label"] == "malignant", part["prob"]), abs=1e-12)
    a = cv_auc[cv_auc["arm"] == "m1"].sort_values(["repeat", "fold"])
    b = cv_auc[cv_auc["arm"] == "m5"].sort_values(["repeat", "fold"])
    s = sizes.sort_values(["repeat", "fold"])
    t = compare_fold_aucs(a["auc"], b["auc"], s["n_test"], s["n_train"] + s["n_dev"])
    assert m["cv_p_m1_vs_m5"] == pytest.approx(t.p_value, abs=1e-12)
    comp = pd.read_csv(root / "report" / "cv_comparisons.csv").set_index(["a", "b"])
    assert comp.at[("m1", "m5"), "df"] == 5 and comp.at[("m1", "m5"), "family"] == "seed"
    assert comp.at[("m1", "tab_logreg"), "family"] == "controls"


@pytest.mark.slow  # a real 2-fold study (about 110 s on 2 cores)
def test_mlflow_holds_parent_arm_children_and_fold_runs(cv_study):
    _root, client, exp_id, before = cv_study
    runs = client.search_runs([exp_id])
    parent = [r for r in runs if r.data.tags.get("is_study_parent") == "true"]
    arms = [r for r in runs if r.data.tags.get("study_level") == "arm"]
    folds = [r for r in runs if r.data.tags.get("study_level") == "fold"]
    assert len(parent) == 1 and sorted(r.data.tags["arm"] for r in arms) == sorted(ARMS)
    assert len(folds) == 18 and all(r.info.status == "FINISHED" for r in folds + arms)
    arm_ids = {r.info.run_id for r in arms}
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == arm_ids
    assert before <= {r.info.run_id for r in folds}  # resumed: the folds finished before the kill were kept
    assert len(before) >= 4


@pytest.mark.slow  # a real 2-fold study (about 110 s on 2 cores)
def test_report_files(cv_study):
    root, *_ = cv_study
    out = root / "report"
    for name in ("oof_predictions.csv", "cv_auc.csv", "cv_summary.csv", "cv_summary.md", "cv_comparisons.csv",
                 "cv_comparisons.md", "cv_fold_aucs.png", "cv_roc.png", "report.md", ".liver-mm-study"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "## Cross-validation" in report and "Which differences hold up" in report and "SYNTHETIC" in report
    assert report.count("## TRIPOD+AI checklist") == 1
    # results first: the synthetic label, the answer (the m1 -> m5 step's verdict), ..., provenance last
    assert report.splitlines()[2].startswith("**These numbers come from a SYNTHETIC cohort")
    marks = ["## Question and answer", "## Cohort", "## Cross-validation", "](cv_roc.png)", "## TRIPOD+AI checklist",
             "## Appendix: How this was produced", "## Files"]
    at = [report.index(m) for m in marks]
    assert at == sorted(at)
    comp = pd.read_csv(out / "cv_comparisons.csv")
    assert verdicts(comp[(comp["a"] == "m1") & (comp["b"] == "m5")])[0] in report[:report.index("## Cohort")]  # m1 -> m5
    assert "](cv_roc.png)" in report and (out / "report.html").stat().st_size > 10_000  # figures embedded
    tripod = pd.read_csv(out / "tripod.csv", keep_default_na=False).set_index("item")
    sizes = pd.read_csv(out / "cv_fold_sizes.csv")
    for r in sizes.itertuples():  # every fold model's parts, sized as cv_fold_sizes.csv says
        assert f"r{r.repeat}f{r.fold}: train {r.n_train} (" in tripod.at["21", "text"]
        assert f"dev {r.n_dev} (" in tripod.at["21", "text"] and f"test {r.n_test} (" in tripod.at["21", "text"]
    assert tripod.at["5a", "text"].startswith("The SYNTHETIC cohort generated by liver-mm (data.kind synthetic, "
                                              "n 200")
    summary = pd.read_csv(out / "cv_summary.csv")
    assert list(summary["arm"]) == ARMS and np.isfinite(summary["pooled_auc"]).all()


def test_too_small_cohort_for_k_folds_is_refused_before_training(tmp_path, tiny_cohort, capfd):
    with pytest.raises(SystemExit) as exc:
        main(["study", "data=manifest", f"data.manifest={tiny_cohort}", "cv.folds=40", "study.arms=[tab_logreg]",
              "study.reference=tab_logreg",
              f"study.out_dir={tmp_path / 'r'}", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
              f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"])
    assert exc.value.code == 1
    text = "".join(capfd.readouterr())
    assert "40" in text and "folds" in text and "Traceback" not in text
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    assert exp is None or not client.search_runs([exp.experiment_id], "tags.is_study_parent = 'false'")
