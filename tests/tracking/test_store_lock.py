"""The store's file lock is a real inter-process lock: another process holding it makes an acquire wait (or
time out), and a new sqlite store is created only once ``<db>.lock`` is free."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import Timeout

from liver_mm.tracking.store import file_lock, open_client

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from filelock import FileLock  # not liver_mm's wrapper: it imports mlflow, seconds on a busy machine
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
"""


@pytest.fixture
def holder():
    """Start a process that holds a lock on ``path`` until released; yields (start, release)."""
    procs: list[subprocess.Popen] = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    def release(proc: subprocess.Popen) -> None:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0

    yield start, release
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lock_held_by_another_process_times_out_then_frees(tmp_path, holder):
    start, release = holder
    path = tmp_path / "x.lock"
    proc = start(path)
    t0 = time.monotonic()
    with pytest.raises(Timeout), file_lock(path, timeout=0.3):
        pass
    assert time.monotonic() - t0 >= 0.3
    release(proc)
    with file_lock(tmp_path / "sub" / "x.lock", timeout=0):  # creates the folder
        pass
    with file_lock(path, timeout=5):
        assert path.exists()
    assert path.exists()  # the lock file stays, as with the hand-written flock


def test_open_client_waits_for_the_db_lock(tmp_path, holder):
    start, release = holder
    db = tmp_path / "store" / "mlflow.db"
    proc = start(db.with_name("mlflow.db.lock"))
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(open_client(f"sqlite:///{db}")), daemon=True)
    worker.start()
    worker.join(1.5)
    assert worker.is_alive() and not done and not db.exists()  # blocked on <db>.lock, store not yet created
    release(proc)
    worker.join(60)
    assert not worker.is_alive() and len(done) == 1
    assert db.exists()
