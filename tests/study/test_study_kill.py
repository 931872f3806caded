"""A study process killed with SIGKILL in the middle of an arm resumes to exactly one finished child per arm."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


def _running_with_epochs(db: Path) -> bool:
    """True once a child run is RUNNING and has logged at least one epoch."""
    if not db.exists():
        return False
    with sqlite3.connect(db) as con:
        try:
            rows = con.execute(
                "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'arm' "
                "where r.status = 'RUNNING' and exists (select 1 from metrics m where m.run_uuid = r.run_uuid "
                "and m.key = 'dev_auc')").fetchone()
        except sqlite3.OperationalError:
            return False
    return rows[0] > 0


@pytest.mark.slow
def test_sigkill_mid_arm_then_resume(tmp_path, tiny_cohort):
    args = [LIVER_MM, "study", "data=manifest", f"data.manifest={tiny_cohort}", "image_size=32",
            "image_encoder=mobilenetv2_050", "trainer.max_epochs=6", "loader.batch_size=4", "logger.log_model=false",
            "study.arms=[m1,tab_logreg]", "study.name=kill", f"study.out_dir={tmp_path / 'report'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}",
            f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not _running_with_epochs(tmp_path / "mlflow.db"):
        assert proc.poll() is None and time.time() < deadline, "the study ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no handler runs: the child stays RUNNING in the store
    proc.wait()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    killed = client.search_runs([exp.experiment_id], "tags.arm = 'm1'")
    assert [r.info.status for r in killed] == ["RUNNING"]

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("is_study_parent") == "false"]
    assert sorted(r.data.tags["arm"] for r in children) == ["m1", "tab_logreg"]
    assert all(r.info.status == "FINISHED" for r in runs) and len(runs) == 3
    assert killed[0].info.run_id not in {r.info.run_id for r in children}  # the killed attempt was removed
    assert (tmp_path / "report" / "report.md").is_file()
