"""The study's runs: one parent run per study key, one child per arm (and, cross-validated, one
grandchild per (arm, repeat, fold)), found again by tags so that a rerun resumes.

A run counts as finished only when its status is FINISHED *and* it carries the tag
``outputs_logged=true`` (the last thing a run writes). A RUNNING run names the process that owns it
(:func:`liver_mm.tracking.runs.owner_tags`); it is removed as a killed leftover only once that process is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

from mlflow.entities import Run, RunTag
from mlflow.tracking import MlflowClient

from liver_mm.tracking.runs import HEARTBEAT_S, create_run, owner_tags, process_start, set_status

log = logging.getLogger(__name__)
#: seconds between two looks at a run another live study is training
POLL_S = 5.0
OUTPUTS_LOGGED = "outputs_logged"
#: a run owned on another host counts as abandoned when its heartbeat is older than this (seconds)
STALE_S = 10 * HEARTBEAT_S


class StudyBusy(RuntimeError):
    """Another live process runs this study."""


def is_finished(run: Run) -> bool:
    return run.info.status == "FINISHED" and run.data.tags.get(OUTPUTS_LOGGED) == "true"


def find_parent(client: MlflowClient, exp_id: str, key: str) -> Run | None:
    runs = client.search_runs([exp_id], f"tags.study_key = '{key}' and tags.is_study_parent = 'true'",
                              order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def study_runs(client: MlflowClient, exp_id: str, key: str, level: str = "arm") -> list[Run]:
    """All non-deleted runs of the study at ``level`` (``arm``: children; ``fold``: per-fold runs)."""
    runs: list[Run] = []
    token = None
    query = f"tags.study_key = '{key}' and tags.is_study_parent = 'false' and tags.study_level = '{level}'"
    while True:
        page = client.search_runs([exp_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def run_or_none(client: MlflowClient, run_id: str) -> Run | None:
    """The run ``run_id`` of the client's store, or None when the store has no such run (or it was deleted)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return None if run.info.lifecycle_stage == "deleted" else run


def finished_by(runs: list[Run], *tag_names: str) -> dict[tuple[str, ...], Run]:
    """(tag values) -> the latest finished run among ``runs``."""
    out: dict[tuple[str, ...], Run] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        if is_finished(run):
            out[tuple(run.data.tags.get(t, "") for t in tag_names)] = run
    return out


def live_owner(run: Run) -> str | None:
    """``pid N on HOST`` when ``run`` is RUNNING and the process that owns it is alive (on this host: that
    process, same pid and start time, exists; on another host: its heartbeat is younger than :data:`STALE_S`);
    None for a run no live process holds (ended, killed, or made before runs named their owner)."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or "owner_pid" not in tags:
        return None
    pid, host = int(tags["owner_pid"]), tags.get("owner_host", "")
    if host == socket.gethostname():
        alive = _pid_alive(pid) and tags.get("owner_start") in (None, process_start(pid))
    else:
        alive = time.time() - float(tags.get("owner_heartbeat", 0)) < STALE_S
    return f"pid {pid} on {host}" if alive else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_unfinished(client: MlflowClient, runs: list[Run], what: str) -> list[tuple[Run, str]]:
    """Delete runs left unfinished by a killed or failed attempt (they are retrained); a RUNNING run that a live
    process still owns (another study training it) is left alone and returned with its owner."""
    busy = []
    for run in runs:
        if is_finished(run):
            continue
        owner = live_owner(run)
        if owner is not None and not _is_me(run):
            busy.append((run, owner))
            continue
        log.warning("removing unfinished run %s of %s (status %s)", run.info.run_id, what, run.info.status)
        for trial in client.search_runs([run.info.experiment_id], "tags.study_level = 'tuning_trial' and "
                                        f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"):
            client.delete_run(trial.info.run_id)  # its tuning trials go with it
        client.delete_run(run.info.run_id)
    return busy


def wait_until_free(client: MlflowClient, find: Callable[[], list[Run]], what: str,
                    poll_s: float = POLL_S) -> list[Run]:
    """``find()``'s runs once none is held by another live process: leftovers of dead processes are removed
    (:func:`remove_unfinished`); while another live study trains one, wait (one warning, a look every ``poll_s``
    seconds). Returns the runs of the last look, the removed ones left out."""
    told = False
    while True:
        runs = find()
        busy = remove_unfinished(client, runs, what)
        if not busy:
            return [r for r in runs if is_finished(r)]
        if not told:
            run, owner = busy[0]
            log.warning("%s: another study (%s) is training run %s; waiting for it to finish (stop that process "
                        "to train it here)", what, owner, run.info.run_id)
            told = True
        time.sleep(poll_s)


def _is_me(run: Run) -> bool:
    tags = run.data.tags
    return tags.get("owner_pid") == str(os.getpid()) and tags.get("owner_host") == socket.gethostname()


def ensure_parent(client: MlflowClient, exp_id: str, key: str, name: str, tags: Mapping[str, str],
                  params: Mapping[str, object], claim: bool = False) -> str:
    """The study's parent run id: found by ``key`` (reopened as RUNNING) or created with ``tags``/``params``.

    ``claim`` (the study's own process): a parent another live process holds raises :class:`StudyBusy`;
    otherwise the parent's owner tags name this process."""
    parent = find_parent(client, exp_id, key)
    if parent is not None:
        owner = live_owner(parent)
        if claim and owner is not None and not _is_me(parent):
            raise StudyBusy(f"another study ({owner}) is running study {name} (parent run {parent.info.run_id}); "
                            "wait for it to finish or stop it, then rerun this command")
        if claim:
            client.log_batch(parent.info.run_id, tags=[RunTag(k, v) for k, v in owner_tags().items()],
                             synchronous=True)
        log.info("resuming study %s (parent run %s)", name, parent.info.run_id)
        if parent.info.status != "RUNNING":
            set_status(client, parent.info.run_id, "RUNNING")
        return parent.info.run_id
    tags = {**tags, "study": name, "study_key": key, "is_study_parent": "true"}
    return create_run(client, exp_id, f"study:{name}", tags, params)
