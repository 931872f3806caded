"""The cross-validated study on a real local SLURM cluster, logging to a real MLflow server on PostgreSQL:
one job per (arm, repeat, fold), the same out-of-fold predictions as the joblib run, a job cancelled with
``scancel`` retrained on rerun, concurrent ``liver-mm train`` processes, and a server that goes away mid-study."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))
TINY = ["image_size=32", "trainer.max_epochs=1", "image_encoder=mobilenetv2_050"]


def _study(root: Path, cohort: Path, *extra: str) -> list[str]:
    return [LIVER_MM, "study", "data=manifest", f"data.manifest={cohort}", *TINY, "cv.folds=3",
            "study.arms=[tab_logreg]", "study.reference=tab_logreg", "study.name=scale",
            f"study.out_dir={root / 'report'}", f"cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'multirun'}",
            *extra]


def _env(uri: str | None = None, **more: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **more}
    env.pop("MLFLOW_TRACKING_URI", None)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def _runs(client: MlflowClient, query: str = "") -> list:
    exp = client.get_experiment_by_name("liver-mm")
    return [] if exp is None else client.search_runs([exp.experiment_id], query, max_results=1000)


def _running_task(study: subprocess.Popen, task: int, after: int) -> str | None:
    """``ARRAY_TASK`` of the study's job ``task`` (a job array with an id above ``after``) once SLURM runs it
    (squeue), None if the study ended first."""
    t0 = time.time()
    while study.poll() is None and time.time() - t0 < 300:
        out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True,
                             timeout=30).stdout.split()
        mine = [j for j in out if j.endswith(f"_{task}") and int(j.split("_")[0]) > after]
        if mine:
            return mine[0]
        time.sleep(0.2)
    return None


@pytest.fixture(scope="module")
def slurm_study(slurm_cluster, mlflow_server, tiny_cohort, tmp_path_factory):
    """SLURM study against the server; the job of fold 0 scancelled as soon as it runs (the study fails), the
    same command rerun (it completes); then the joblib run of the same command on a sqlite store."""
    root = tmp_path_factory.mktemp("slurm")
    client = MlflowClient(mlflow_server.uri)
    env = _env(mlflow_server.uri)
    cmd = _study(root, tiny_cohort, "hydra/launcher=slurm_local")
    last = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw"], capture_output=True, text=True,
                          timeout=30).stdout.split()
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = _running_task(proc, 0, max([int(j) for j in last if j.isdigit()], default=0))
    if cancelled is not None:
        subprocess.run(["scancel", cancelled], check=True, timeout=30)
    first_out = proc.communicate(timeout=600)[0]
    assert cancelled is not None, "the fold-0 job was never seen running:\n" + first_out[-3000:]
    t1 = time.time()
    rerun = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    t2 = time.time()
    jroot = root / "joblib"
    jcmd = _study(jroot, tiny_cohort, "hydra/launcher=joblib_local", "trainer.num_threads=1",
                  f"logger.tracking_uri=sqlite:///{jroot / 'mlflow.db'}", f"logger.artifact_root={jroot / 'art'}")
    jrun = subprocess.run(jcmd, cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
    assert jrun.returncode == 0, jrun.stdout[-3000:] + jrun.stderr[-3000:]
    print(f"\nslurm study (fold 0 scancelled) {t1 - t0:.1f} s, rerun {t2 - t1:.1f} s, joblib {time.time() - t2:.1f} s")
    return root, jroot, client, cancelled, proc.returncode, first_out


def test_slurm_study_has_the_joblib_out_of_fold_predictions(slurm_study, tiny_cohort):
    root, jroot, *_ = slurm_study
    slurm = pd.read_csv(root / "report" / "oof_predictions.csv")
    joblib = pd.read_csv(jroot / "report" / "oof_predictions.csv")
    cases = sorted(pd.read_csv(tiny_cohort)["case_id"].astype(str))
    keys = ["arm", "repeat", "fold", "case_id"]
    for oof in (slurm, joblib):  # every case once per arm
        assert list(oof["arm"].unique()) == ["tab_logreg"]
        for arm, part in oof.groupby("arm"):
            assert sorted(part["case_id"].astype(str)) == cases, arm
    a = slurm[slurm["arm"] == "tab_logreg"].sort_values(keys).reset_index(drop=True)
    b = joblib[joblib["arm"] == "tab_logreg"].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[*keys, "label", "prob"]], b[[*keys, "label", "prob"]], check_exact=True)


def test_scancelled_job_fails_the_study_and_is_retrained_on_rerun(slurm_study):
    _root, _j, client, cancelled, first_rc, first_out = slurm_study
    assert first_rc != 0, first_out[-2000:]
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", cancelled, "-o", "JobID,State"], capture_output=True,
                          text=True, timeout=30).stdout
    assert acct.startswith(f"{cancelled}|CANCELLED"), acct
    fold0 = [r for r in _runs(client, "tags.study_level = 'fold' and tags.study = 'scale'")
             if (r.data.tags["repeat"], r.data.tags["fold"]) == ("0", "0")]
    assert [r.info.status for r in fold0] == ["FINISHED"]
    assert fold0[0].data.tags["slurm_job_id"].split("_") [0] != cancelled.split("_")[0]  # trained by the rerun


def test_server_holds_every_run_finished_with_parent_links(slurm_study):
    _root, _j, client, *_ = slurm_study
    parent = _runs(client, "tags.is_study_parent = 'true' and tags.study = 'scale'")
    arms = _runs(client, "tags.study_level = 'arm' and tags.study = 'scale'")
    folds = _runs(client, "tags.study_level = 'fold' and tags.study = 'scale'")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert [r.data.tags["arm"] for r in arms] == ["tab_logreg"]
    assert {r.data.tags["mlflow.parentRunId"] for r in arms} == {parent[0].info.run_id}
    assert len(folds) == 3 and {r.info.status for r in folds + arms} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == {r.info.run_id for r in arms}
    # one SLURM job per (arm, repeat, fold), each a job of its own
    assert len({r.data.tags["slurm_job_id"] for r in folds}) == 3
    # each job asked one CPU (slurm_local: cpus_per_task 1) on a node that does not bind tasks to cores: one thread
    assert [r.data.tags["intra_op_threads"] for r in folds] == ["1"] * 3


def test_four_concurrent_train_processes_log_to_the_server(mlflow_server, tiny_cohort, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    procs = [subprocess.Popen([LIVER_MM, "train", "data=manifest", f"data.manifest={tiny_cohort}", *TINY,
                               "modalities=tabular_only", "model=logreg", "explain.enabled=false",
                               f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / str(i)}",
                               f"+study.run_name=concurrent-{i}"], cwd=tmp_path, env=_env(mlflow_server.uri),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-1500:] for o in outs)
    runs = [r for r in _runs(client) if r.data.tags.get("mlflow.runName", "").startswith("concurrent-")]
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert not list(tmp_path.glob("*.lock")) and not (tmp_path / "mlflow.db").exists()


def test_server_gone_mid_study_fails_clearly_and_a_rerun_resumes(mlflow_server, tiny_cohort, tmp_path):
    """Last in this module (it stops the server): the tracking server stops while arm m1 trains, after
    tab_logreg finished; the study exits 1 naming the server; once it is back, a rerun keeps tab_logreg's run."""
    client = MlflowClient(mlflow_server.uri)
    cmd = [LIVER_MM, "study", "data=manifest", f"data.manifest={tiny_cohort}", *TINY, "study.arms=[tab_logreg,m1]",
           "study.reference=tab_logreg", "study.name=gone", "explain.enabled=false",
           f"study.out_dir={tmp_path / 'report'}", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    env = _env(mlflow_server.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logreg = []
    t0 = time.time()
    while not logreg and proc.poll() is None and time.time() - t0 < 300:
        logreg = [r for r in _runs(client, "tags.study = 'gone' and tags.arm = 'tab_logreg'")
                  if r.info.status == "FINISHED"]
        time.sleep(0.2)
    assert logreg and proc.poll() is None, "tab_logreg did not finish while the study ran"
    mlflow_server.down()
    out = proc.communicate(timeout=300)[0]
    mlflow_server.up()
    assert proc.returncode == 1, out[-3000:]
    assert f"MLflow tracking server {mlflow_server.uri} does not answer" in out, out[-3000:]
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"arm tab_logreg already finished in this study (run {logreg[0].info.run_id}): skipped" in (
        rerun.stdout + rerun.stderr)
    arms = _runs(client, "tags.study = 'gone' and tags.study_level = 'arm'")
    assert sorted((r.data.tags["arm"], r.info.status) for r in arms) == [("m1", "FINISHED"),
                                                                          ("tab_logreg", "FINISHED")]
