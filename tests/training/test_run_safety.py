"""A run never logs a useless or untrained model, names what is wrong, and ends KILLED when interrupted."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from liver_mm.cli import main
from liver_mm.training.evaluate import DegenerateThresholdError, run_metrics
from liver_mm.training.run import train
from tests.training.conftest import compose_train

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("liver-mm")
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _cli(tmp_path: Path, cohort: Path, *extra: str) -> list[str]:
    return ["train", "data=manifest", f"data.manifest={cohort}", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'out'}",
            f"logger.artifact_root={tmp_path / 'art'}", *extra]


@pytest.mark.parametrize("override,message", [
    ("trainer.max_epochs=0", "trainer.max_epochs=0: at least 1 epoch"),
    ("image_size=7", "image_size=7: crops must be at least 32 px"),
    ("loader.batch_size=1", "loader.batch_size=1: at least 2"),
])
def test_impossible_settings_are_refused_before_anything_runs(tmp_path, tiny_cohort, capfd, override, message):
    with pytest.raises(SystemExit) as exc:
        main(_cli(tmp_path, tiny_cohort, override))
    assert exc.value.code == 1
    text = "".join(capfd.readouterr())
    assert message in text and "Traceback" not in text
    assert not (tmp_path / "mlflow.db").exists()  # no run was even created


def test_degenerate_threshold_is_an_error():
    pred = pd.DataFrame({"case_id": list("abcdefgh"), "split": ["dev"] * 4 + ["test"] * 4,
                         "label": ["benign", "malignant"] * 4, "prob": [0.5] * 4 + [0.1, 0.9, 0.2, 0.8]})
    with pytest.raises(DegenerateThresholdError, match="calls every case malignant"):
        run_metrics(pred)  # constant dev score: pROC's best cut is -inf


def test_run_with_degenerate_threshold_fails(tmp_path, small_overrides):
    """A model with constant output (sklearn's DummyClassifier) must not be saved as FINISHED."""
    cfg = compose_train([*small_overrides, "modalities=tabular_only", "model=logreg",
                         "model.estimator._target_=sklearn.dummy.DummyClassifier", "~model.estimator.C",
                         "~model.estimator.max_iter", "+model.estimator.strategy=prior"], tmp_path)
    with pytest.raises(DegenerateThresholdError):
        train(cfg)
    (run,) = _runs(cfg.logger.tracking_uri)
    assert run.info.status == "FAILED"
    assert "outputs_logged" not in run.data.tags


def test_a_split_with_one_class_is_named(tmp_path, tiny_cohort, capfd):
    """Two malignant nodules among 30: the computed 80/10/10 split leaves dev or test without one."""
    df = pd.read_csv(tiny_cohort)
    keep = list(df.index[df["label"] == "benign"][:28]) + list(df.index[df["label"] == "malignant"][:2])
    shutil.copytree(tiny_cohort.parent, tmp_path / "c")
    df.loc[keep].to_csv(tmp_path / "c" / "manifest.csv", index=False)
    with pytest.raises(SystemExit):
        main(_cli(tmp_path, tmp_path / "c" / "manifest.csv", "image_size=32", "image_encoder=mobilenetv2_050"))
    text = "".join(capfd.readouterr())
    assert re.search(r"the (dev|test) part has \d+ benign and 0 malignant case\(s\)", text), text[-2000:]
    assert "Traceback" not in text


def test_unwritable_output_folder_is_a_message(tmp_path, tiny_cohort, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = _cli(tmp_path, tiny_cohort, "image_size=32")
    args = [a for a in args if not a.startswith("hydra.run.dir")] + [f"hydra.run.dir={blocker / 'out'}"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    text = "".join(capfd.readouterr())
    assert str(blocker) in text and "Traceback" not in text


def _make_store(uri: str) -> str:
    from liver_mm.tracking.store import experiment_id, open_client

    return experiment_id(open_client(uri), "liver-mm")


@pytest.mark.slow  # two training processes (about 22 s)
def test_two_processes_create_one_new_store(tmp_path):
    """Parallel arms starting on a fresh sqlite store: one creates the schema, the others wait."""
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    with mp.get_context("spawn").Pool(4) as pool:
        ids = pool.map(_make_store, [uri] * 4)
    assert len(set(ids)) == 1


def _status(db: Path) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select r.status, (select count(*) from metrics m where m.run_uuid = r.run_uuid "
                               "and m.key = 'dev_auc') from runs r").fetchall()
        except sqlite3.OperationalError:
            return []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_is_killed_not_failed(tmp_path, tiny_cohort, sig):
    """A real `liver-mm train` process, interrupted by a real signal after its first epochs."""
    db = tmp_path / "mlflow.db"
    cmd = [LIVER_MM, *_cli(tmp_path, tiny_cohort, "image_size=32", "image_encoder=mobilenetv2_050",
                           "trainer.max_epochs=200", "loader.batch_size=8",
                           "logger.log_model=false")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and not any(n >= 2 for _, n in _status(db)):
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.5)
    proc.send_signal(sig)
    out = proc.communicate(timeout=120)[0].decode()
    assert [s for s, _ in _status(db)] == ["KILLED"], out[-3000:]
