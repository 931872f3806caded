"""Item 3 of issue 21: a second identical study started while the first trains never removes the first's running
run; it says another study is running and stops, and the first finishes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.study.test_study_kill import _running_with_epochs

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


@pytest.mark.slow
def test_a_second_study_leaves_the_running_one_alone(tmp_path, tiny_cohort):
    args = [LIVER_MM, "study", "data=manifest", f"data.manifest={tiny_cohort}", "image_size=32",
            "image_encoder=mobilenetv2_050", "trainer.max_epochs=6", "loader.batch_size=4", "logger.log_model=false",
            "study.arms=[m1,tab_logreg]", "study.name=twice", f"study.out_dir={tmp_path / 'report'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}",
            f"cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([*args, f"hydra.sweep.dir={tmp_path / 'multirun1'}"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not _running_with_epochs(tmp_path / "mlflow.db"):
        assert first.poll() is None and time.time() < deadline, "the first study ended before the second started"
        time.sleep(0.1)
    second = subprocess.run([*args, f"hydra.sweep.dir={tmp_path / 'multirun2'}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 1
    assert (f"another study (pid {first.pid} on {socket.gethostname()}) is running study twice"
            in second.stdout + second.stderr)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert "MlflowException" not in out + err and "Traceback" not in out + err
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    children = client.search_runs([exp.experiment_id], "tags.is_study_parent = 'false'")
    assert sorted(r.data.tags["arm"] for r in children) == ["m1", "tab_logreg"]
    assert all(r.info.status == "FINISHED" for r in children)
