"""A run beats for its whole life (the study's parent too), liveness goes by heartbeat unless the owner's pid can be
looked up here, one study key has one live study even when two start at the same moment, and waiting for a run
another study holds ends with a message."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from liver_mm.tracking import claim, owner
from liver_mm.tracking.registry import (
    StudyBusy,
    ensure_parent,
    live_owner,
    remove_unfinished,
    wait_until_free,
)
from tests.tracking.test_registry_owner import _owned, other_process, store  # noqa: F401 - fixtures
from tests.training.conftest import small_overrides  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, *args: str) -> subprocess.Popen:
    """A real second process running ``code`` (stdout piped)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def _wait_for_line(proc: subprocess.Popen, timeout: float = 120) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"the second process said nothing (exit {proc.poll()})"
    return line


def _beat(client, run_id: str) -> float:
    return float(client.get_run(run_id).data.tags["owner_heartbeat"])


def _parents(client, exp_id: str, key: str) -> list:
    return client.search_runs([exp_id], f"tags.study_key = '{key}' and tags.is_study_parent = 'true'")


@pytest.fixture
def fast_beats(monkeypatch):
    monkeypatch.setattr(owner, "HEARTBEAT_S", 0.2)
    yield
    claim.release()


def test_the_parent_beats_from_claim_until_release(store, fast_beats):  # noqa: F811
    client, exp_id = store
    parent = ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True)
    first = _beat(client, parent)
    time.sleep(1.5)
    second = _beat(client, parent)
    assert second - first > 0.8  # it beat while the study ran
    claim.release()
    time.sleep(0.5)
    third = _beat(client, parent)
    time.sleep(1.0)
    assert _beat(client, parent) == third  # released: no more beats
    assert client.search_runs([exp_id], f"tags.{claim.CLAIM_TAG} = 'k1'") == []  # the claim run is gone


CLAIM_ELSEWHERE = """
    import socket, sys, time
    from mlflow.tracking import MlflowClient
    from liver_mm.tracking import owner
    from liver_mm.tracking.registry import ensure_parent

    socket.gethostname = lambda: "login2"  # the same study started on another login node
    owner.HEARTBEAT_S = 0.2
    client = MlflowClient(sys.argv[1])
    print(ensure_parent(client, sys.argv[2], "k1", "s", {}, {}, claim=True), flush=True)
    time.sleep(120)
"""


@pytest.mark.slow  # a real second study process
def test_a_second_copy_is_refused_while_the_first_beats_on_another_host(store, fast_beats, monkeypatch):  # noqa: F811
    client, exp_id = store
    first = _python(CLAIM_ELSEWHERE, str(client.tracking_uri), exp_id)
    try:
        parent = _wait_for_line(first)
        monkeypatch.setattr(owner, "STALE_S", 3.0)  # "10 minutes", shortened
        time.sleep(4.5)  # past STALE_S since the parent was created
        assert client.get_run(parent).data.tags["owner_host"] == "login2"
        with pytest.raises(StudyBusy, match=f"another study \\(pid {first.pid} on login2\\) is running study s "
                                            "\\(claim run [0-9a-f]+, last heartbeat [0-2] s ago\\)"):
            ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True)
        assert [r.info.run_id for r in _parents(client, exp_id, "k1")] == [parent]
    finally:
        first.kill()
        first.wait()
    time.sleep(3.5)  # its heartbeat goes stale: the study is free again
    assert ensure_parent(client, exp_id, "k1", "s", {}, {}, claim=True) == parent


RACE = """
    import sys, time
    from pathlib import Path
    from mlflow.tracking import MlflowClient
    from liver_mm.tracking.registry import StudyBusy, ensure_parent

    client = MlflowClient(sys.argv[1])
    client.search_experiments(max_results=1)
    go, done = Path(sys.argv[3]), Path(sys.argv[4])
    Path(sys.argv[5]).touch()  # ready
    while not go.exists():
        time.sleep(0.001)
    try:
        print("parent", ensure_parent(client, sys.argv[2], "k1", "s", {}, {}, claim=True), flush=True)
    except StudyBusy as exc:
        print("busy", exc, flush=True)
    while not done.exists():  # the study runs on until every process has answered
        time.sleep(0.05)
"""


@pytest.mark.slow  # three real study processes
def test_studies_started_at_the_same_moment_make_one_parent(tmp_path, store):  # noqa: F811
    """Three processes look for the parent while the store's write lock is held (a sqlite RESERVED lock: reads
    go on, writes wait): each finds none and waits to create; then all write at once."""
    client, exp_id = store
    go, done = tmp_path / "go", tmp_path / "done"
    procs = [_python(RACE, str(client.tracking_uri), exp_id, str(go), str(done), str(tmp_path / f"ready{i}"))
             for i in range(3)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(3)) and time.monotonic() < deadline:
        time.sleep(0.01)
    lock = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    go.touch()
    time.sleep(6)  # each has looked and waits to write (MLflow's sqlite busy timeout: 20 s)
    lock.execute("ROLLBACK")
    lock.close()
    outs = sorted(_wait_for_line(p) for p in procs)
    done.touch()
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert [o.split()[0] for o in outs] == ["busy", "busy", "parent"], outs
    (parent,) = _parents(client, exp_id, "k1")
    assert outs[2] == f"parent {parent.info.run_id}"
    assert all("is running study s" in o for o in outs[:2]), outs
    assert client.search_runs([exp_id], f"tags.{claim.CLAIM_TAG} = 'k1'") == []  # every claim gone at exit


def test_liveness_by_heartbeat_for_an_owner_in_another_pid_namespace(store, other_process):  # noqa: F811
    """Containers or cloned VMs share a hostname: a pid recorded in another namespace says nothing here."""
    client, exp_id = store
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    fresh = _owned(client, exp_id, "fresh", dead)  # its pid is free here, its heartbeat is fresh
    stale = _owned(client, exp_id, "stale", other_process.pid, beat=time.time() - owner.STALE_S - 1)  # pid taken here
    for run_id in (fresh, stale):
        client.set_tag(run_id, "owner_space", "other-boot/pid:[4026532999]")
    busy = remove_unfinished(client, [client.get_run(fresh), client.get_run(stale)], "arm m1")
    assert [(r.info.run_id, o) for r, o in busy] == [(fresh, f"pid {dead} on {socket.gethostname()}")]
    assert client.get_run(stale).info.lifecycle_stage == "deleted"


OWN_A_RUN = """
    import sys, time
    from mlflow.tracking import MlflowClient
    from liver_mm.tracking.owner import heartbeat
    from liver_mm.tracking.runs import create_run

    client = MlflowClient(sys.argv[1])
    run_id = create_run(client, sys.argv[2], "m1", {"arm": "m1"})
    with heartbeat(client, run_id, 0.2):
        print(run_id, flush=True)
        time.sleep(120)
"""


@pytest.mark.slow  # a real process, killed
def test_a_run_of_a_killed_process_is_freed_at_once(store):  # noqa: F811
    client, exp_id = store
    proc = _python(OWN_A_RUN, str(client.tracking_uri), exp_id)
    run_id = _wait_for_line(proc)
    assert live_owner(client.get_run(run_id)) == f"pid {proc.pid} on {socket.gethostname()}"
    assert remove_unfinished(client, [client.get_run(run_id)], "arm m1") != []  # alive: kept
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = client.get_run(run_id)
    assert owner.beat_age(run.data.tags) < 5  # fresh, but its process is provably gone
    assert live_owner(run) is None
    assert remove_unfinished(client, [run], "arm m1") == []
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"


@pytest.mark.slow  # waits out a real timeout
def test_waiting_for_a_hung_owner_ends_with_a_message(store, other_process):  # noqa: F811
    client, exp_id = store
    run_id = _owned(client, exp_id, "m1", other_process.pid)  # alive, never finishes
    start = time.monotonic()
    with pytest.raises(StudyBusy) as exc:
        wait_until_free(client, lambda: [client.get_run(run_id)], "arm m1", poll_s=0.1, wait_s=1.0)
    assert 1.0 <= time.monotonic() - start < 10
    text = re.fullmatch(f"arm m1: run {run_id} is still held by another study \\(pid {other_process.pid} on "
                        f"{re.escape(socket.gethostname())}, last heartbeat (\\d+) s ago\\) after waiting 1 s "
                        "\\(logger.wait_timeout_s\\); if that process hangs, stop it, then rerun this command",
                        str(exc.value))
    assert text is not None, str(exc.value)
    assert abs(int(text[1]) - owner.beat_age(client.get_run(run_id).data.tags)) <= 1


@pytest.mark.slow  # a real training run
def test_a_run_beats_while_its_outputs_are_logged(tmp_path, small_overrides, monkeypatch):  # noqa: F811
    """Model logging (here made slow) runs after fit: the run still beats, a study elsewhere keeps off it."""
    from liver_mm.training import estimators
    from liver_mm.training.run import train
    from tests.training.conftest import compose_train

    monkeypatch.setattr(owner, "HEARTBEAT_S", 0.2)
    seen: list[float] = []
    log_model = estimators.SklearnEstimator.log_model

    def slow_log_model(self, client, run_id, *args, **kwargs):
        seen.append(_beat(client, run_id))
        time.sleep(1.5)
        seen.append(_beat(client, run_id))
        return log_model(self, client, run_id, *args, **kwargs)

    monkeypatch.setattr(estimators.SklearnEstimator, "log_model", slow_log_model)
    cfg = compose_train([*small_overrides, "modalities=tabular_only", "model=logreg"], tmp_path)
    res = train(cfg)
    assert res is not None and len(seen) == 2
    assert seen[1] - seen[0] > 0.8
