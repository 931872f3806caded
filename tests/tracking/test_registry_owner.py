"""A RUNNING run names its owner process; only a run whose owner is gone is removed as a killed leftover, and a
study whose parent another live process holds is refused."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from liver_mm.tracking import registry
from liver_mm.tracking.owner import process_start
from liver_mm.tracking.registry import StudyBusy, ensure_parent, remove_unfinished
from liver_mm.tracking.runs import create_run


@pytest.fixture
def store(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.create_experiment("t", artifact_location=str(tmp_path / "art"))


@pytest.fixture
def other_process():
    """A live process that is not this one (a study in another terminal)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _owned(client, exp_id: str, name: str, pid: int, host: str | None = None, beat: float | None = None) -> str:
    run_id = create_run(client, exp_id, name, {"arm": "m1"})
    start = process_start(pid)
    tags = {"owner_pid": str(pid), "owner_host": host or socket.gethostname(),
            "owner_heartbeat": str(time.time() if beat is None else beat)}
    if start is not None and host is None:
        tags["owner_start"] = start
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    return run_id


def test_only_runs_of_dead_owners_are_removed(store, other_process):
    client, exp_id = store
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live = _owned(client, exp_id, "live", other_process.pid)
    gone = _owned(client, exp_id, "gone", int(dead.stdout))
    remote_fresh = _owned(client, exp_id, "remote-fresh", 4242, host="elsewhere")
    remote_stale = _owned(client, exp_id, "remote-stale", 4242, host="elsewhere",
                          beat=time.time() - registry.STALE_S - 1)
    failed = _owned(client, exp_id, "failed", other_process.pid)
    client.set_terminated(failed, "FAILED")  # an ended run: its process is done with it
    runs = client.search_runs([exp_id])
    busy = remove_unfinished(client, runs, "arm m1")
    assert sorted(r.info.run_id for r, _ in busy) == sorted([live, remote_fresh])
    assert dict((r.info.run_id, o) for r, o in busy)[live] == f"pid {other_process.pid} on {socket.gethostname()}"
    left = {r.info.run_id for r in client.search_runs([exp_id])}
    assert left == {live, remote_fresh}
    assert {gone, remote_stale, failed}.isdisjoint(left)


def test_a_study_held_by_a_live_process_is_refused(store, other_process):
    client, exp_id = store
    parent = ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True)
    client.set_tag(parent, "owner_pid", str(other_process.pid))
    start = process_start(other_process.pid)
    if start is not None:
        client.set_tag(parent, "owner_start", start)
    with pytest.raises(StudyBusy, match=f"another study \\(pid {other_process.pid} on "
                                        f"{socket.gethostname()}\\) is running study s"):
        ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True)
    assert ensure_parent(client, exp_id, "k1", "s", {}, {}) == parent  # a job of that study: no claim
    other_process.kill()
    other_process.wait()
    assert ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True) == parent  # its owner died: taken over
    assert client.get_run(parent).data.tags["owner_pid"] != str(other_process.pid)


def test_an_arm_another_study_trains_is_waited_for_not_removed(store, other_process, monkeypatch):
    from liver_mm.study.sweep import _finished_or_free

    client, exp_id = store
    run_id = _owned(client, exp_id, "m1", other_process.pid)
    for k, v in {"study_key": "k", "is_study_parent": "false", "study_level": "arm", "arm_key": "a1"}.items():
        client.set_tag(run_id, k, v)

    def finish_later():
        time.sleep(1.0)
        client.set_tag(run_id, "outputs_logged", "true")
        client.set_terminated(run_id, "FINISHED")

    threading.Thread(target=finish_later, daemon=True).start()
    done = _finished_or_free(client, exp_id, "k", "m1", "a1", poll_s=0.2)
    assert done is not None and done.info.run_id == run_id


def test_a_removed_job_takes_its_tuning_trials_with_it(store):
    client, exp_id = store
    job = create_run(client, exp_id, "m1 r0 f0", {"arm": "m1"})
    client.set_terminated(job, "FAILED")
    trials = [create_run(client, exp_id, f"m1 r0 f0 trial {i}", {"study_level": "tuning_trial",
                                                                  "mlflow.parentRunId": job}) for i in range(2)]
    other = create_run(client, exp_id, "not a trial", {"study_level": "fold", "mlflow.parentRunId": job})
    assert remove_unfinished(client, [client.get_run(job)], "arm m1") == []
    assert {r.info.run_id for r in client.search_runs([exp_id])} == {other}
    assert {client.get_run(r).info.lifecycle_stage for r in [job, *trials]} == {"deleted"}
