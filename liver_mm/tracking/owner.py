"""Who owns a RUNNING run, and whether that process still lives.

A run names its owner in tags: ``owner_host``, ``owner_space`` (the kernel boot id and the pid namespace: two
containers or cloned VMs that share a hostname differ there), ``owner_pid``, ``owner_start`` (the process's
creation time, from psutil: with the pid it names one process even after the pid is reused) and
``owner_heartbeat`` (unix time), which a thread of the owner renews every :data:`HEARTBEAT_S` seconds for the whole
life of the run (:func:`heartbeat`).

Liveness: an owner in this very process space (same host, boot and pid namespace) is alive exactly while psutil
finds its pid with the same creation time -- a certain answer either way, so a killed study's run is freed at
once. Any other owner (another host, container or VM, or a run that names no space) is judged by its heartbeat's
age alone: alive while younger than :data:`STALE_S`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import psutil
from mlflow.tracking import MlflowClient

#: seconds between two heartbeats of a RUNNING run (tag ``owner_heartbeat``, unix time)
HEARTBEAT_S = 60.0
#: an owner outside this process space counts as gone when its heartbeat is older than this (seconds)
STALE_S = 10 * HEARTBEAT_S
log = logging.getLogger(__name__)


@cache
def process_space() -> str:
    """This machine's boot and pid namespace as one string: equal only between processes whose pids can be looked
    up in one another's process table (Linux: ``boot_id`` + ``/proc/self/ns/pid``; elsewhere psutil's boot time)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = f"boot-{psutil.boot_time():.0f}"
    try:
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return boot


def process_start(pid: int) -> str | None:
    """When process ``pid`` was created (psutil, seconds since the epoch, 2 decimals); None when it is gone or a
    zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{proc.create_time():.2f}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's process: it exists, its start is unknown
        return ""


def owner_tags() -> dict[str, str]:
    """Tags naming this process as a run's owner, with a first heartbeat."""
    tags = {"owner_pid": str(os.getpid()), "owner_host": socket.gethostname(), "owner_space": process_space(),
            "owner_heartbeat": str(time.time())}
    start = process_start(os.getpid())
    if start:
        tags["owner_start"] = start
    job = slurm_job_id()
    if job:
        tags["slurm_job_id"] = job
    return tags


def slurm_job_id() -> str | None:
    """This process's SLURM job as ``scancel`` and ``sacct`` name it: ``ARRAYID_TASK`` for a task of a job array
    (its raw id is refused by scancel), else ``$SLURM_JOB_ID``; None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def in_this_space(tags: Mapping[str, str]) -> bool:
    """The owner's pid can be looked up here: same host, boot and pid namespace, and a recorded start time."""
    return (tags.get("owner_host") == socket.gethostname() and tags.get("owner_space") == process_space()
            and bool(tags.get("owner_start")))


def beat_age(tags: Mapping[str, str]) -> float:
    """Seconds since the owner's last heartbeat (infinite when it never beat)."""
    try:
        return time.time() - float(tags["owner_heartbeat"])
    except (KeyError, ValueError):
        return float("inf")


def owner_alive(tags: Mapping[str, str]) -> bool:
    """Whether the process the tags name still lives (see the module's note)."""
    if in_this_space(tags):
        start = process_start(int(tags["owner_pid"]))
        return start == "" or (start is not None and abs(float(start) - float(tags["owner_start"])) < 0.05)
    return beat_age(tags) < STALE_S


def is_me(tags: Mapping[str, str]) -> bool:
    """The tags name this process."""
    return (tags.get("owner_pid") == str(os.getpid()) and tags.get("owner_host") == socket.gethostname()
            and tags.get("owner_space", process_space()) == process_space())


def describe(tags: Mapping[str, str]) -> str:
    """``pid N on HOST`` (plus ``, SLURM job J`` in a SLURM job)."""
    job = f", SLURM job {tags['slurm_job_id']}" if tags.get("slurm_job_id") else ""
    return f"pid {tags.get('owner_pid', '?')} on {tags.get('owner_host', '?')}{job}"


def start_heartbeat(client: MlflowClient, run_id: str, every: float | None = None) -> Callable[[], None]:
    """Start a daemon thread that sets the run's ``owner_heartbeat`` tag now and every ``every`` seconds (default
    :data:`HEARTBEAT_S`; a study elsewhere then tells a live run, fresh heartbeat, from one whose process died);
    returns the function that stops it."""
    every = HEARTBEAT_S if every is None else every
    stop = threading.Event()
    thread = threading.Thread(target=_beat, args=(client, run_id, every, stop), name=f"heartbeat-{run_id[:8]}",
                              daemon=True)
    thread.start()

    def stop_beating() -> None:
        stop.set()
        thread.join(timeout=5)

    return stop_beating


@contextmanager
def heartbeat(client: MlflowClient, run_id: str, every: float | None = None) -> Iterator[None]:
    """The run beats (:func:`start_heartbeat`) while the block runs."""
    stop_beating = start_heartbeat(client, run_id, every)
    try:
        yield
    finally:
        stop_beating()


def _beat(client: MlflowClient, run_id: str, every: float, stop: threading.Event) -> None:
    told = False
    while True:
        try:
            client.set_tag(run_id, "owner_heartbeat", str(time.time()))
        except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the run
            if not told:
                log.warning("heartbeat of run %s failed (retried every %.0f s): %s", run_id, every, exc)
                told = True
        if stop.wait(every):
            return
