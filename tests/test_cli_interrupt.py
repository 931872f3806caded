"""Ctrl-C ends any ``liver-mm`` command with one line on stderr and exit status 130, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from liver_mm.cli import INTERRUPTED_STATUS, main
from tests.training.test_run_safety import _status as _runs  # (status, dev_auc count) of every run

TRAIN_LINE = ("liver-mm train: stopped (Ctrl-C); the run in progress is marked KILLED; rerun the same command "
              "to train it again")


@pytest.mark.slow
def test_sigint_during_training_is_one_line_and_status_130(tmp_path, tiny_cohort):
    """A real ``python -m liver_mm.cli train``, sent a real SIGINT once it has logged an epoch."""
    db = tmp_path / "mlflow.db"
    cmd = [sys.executable, "-m", "liver_mm.cli", "train", "data=manifest", f"data.manifest={tiny_cohort}",
           f"logger.tracking_uri=sqlite:///{db}", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'out'}",
           f"logger.artifact_root={tmp_path / 'art'}", "image_size=32", "image_encoder=mobilenetv2_050",
           "trainer.max_epochs=300", "loader.batch_size=8", "logger.log_model=false",
           "+trainer.enable_progress_bar=false"]
    with (tmp_path / "stderr.txt").open("w+") as err, (tmp_path / "stdout.txt").open("w+") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            deadline = time.monotonic() + 240
            while not any(n >= 1 for _, n in _runs(db)):  # training has started: an epoch's dev AUC is logged
                err.seek(0)
                assert proc.poll() is None and time.monotonic() < deadline, err.read()[-3000:]
                time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        err.seek(0)
        text = err.read()
    assert code == INTERRUPTED_STATUS == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # the one line, once (a library's deprecation warning may still be printed around it at exit)
    assert TRAIN_LINE in text.splitlines() and text.count("stopped (Ctrl-C)") == 1, text[-3000:]
    assert text.count("stopped (Ctrl-C)") == 1
    assert [s for s, _ in _runs(db)] == ["KILLED"]  # what liver_mm.training.run does on an interrupt: kept


def test_every_other_command_ends_with_one_line(monkeypatch, capsys, tmp_path):
    import liver_mm.synth.cohort as synth

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "generate_cohort", interrupted)
    previous = signal.getsignal(signal.SIGINT)
    try:
        code = main(["synth", "--out", str(tmp_path / "c"), "--n", "20"])
    except KeyboardInterrupt:  # would also stop pytest itself
        pytest.fail("KeyboardInterrupt escaped liver_mm.cli.main")
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert code == 130
    assert err == ("liver-mm synth: stopped (Ctrl-C); nothing was finished; rerun the same command to start "
                   "again\n")
