"""The study's runs: one parent run per study key, one child per arm (and, cross-validated, one
grandchild per (arm, repeat, fold)), found again by tags so that a rerun resumes.

A run counts as finished only when its status is FINISHED *and* it carries the tag
``outputs_logged=true`` (the last thing a run writes). A RUNNING run names the process that owns it and beats
while it lives (:mod:`liver_mm.tracking.owner`); it is removed as a killed leftover only once that process is gone.
Only one live process runs a study key (:mod:`liver_mm.tracking.claim`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from mlflow.entities import Run, RunTag
from mlflow.tracking import MlflowClient

from liver_mm.tracking.claim import StudyBusy, claim_study, release
from liver_mm.tracking.owner import STALE_S, beat_age, describe, is_me, owner_alive, owner_tags
from liver_mm.tracking.runs import create_run, set_status

log = logging.getLogger(__name__)
#: seconds between two looks at a run another live study is training
POLL_S = 5.0
#: the longest wait for a run another live process holds (``logger.wait_timeout_s``): 6 hours
WAIT_S = 6 * 3600.0
OUTPUTS_LOGGED = "outputs_logged"
__all__ = ["POLL_S", "STALE_S", "WAIT_S", "StudyBusy", "ensure_parent", "find_parent", "finished_by",
           "is_finished", "live_owner", "remove_unfinished", "run_or_none", "study_runs", "wait_until_free"]


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
    """``pid N on HOST`` when ``run`` is RUNNING and the process that owns it lives
    (:func:`~liver_mm.tracking.owner.owner_alive`); None for a run no live process holds (ended, killed, or made
    before runs named their owner)."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or "owner_pid" not in tags:
        return None
    return describe(tags) if owner_alive(tags) else None


def remove_unfinished(client: MlflowClient, runs: list[Run], what: str) -> list[tuple[Run, str]]:
    """Delete runs left unfinished by a killed or failed attempt (they are retrained); a RUNNING run that a live
    process still owns (another study training it) is left alone and returned with its owner."""
    busy = []
    for run in runs:
        if is_finished(run):
            continue
        owner = live_owner(run)
        if owner is not None and not is_me(run.data.tags):
            busy.append((run, owner))
            continue
        log.warning("removing unfinished run %s of %s (status %s)", run.info.run_id, what, run.info.status)
        for trial in client.search_runs([run.info.experiment_id], "tags.study_level = 'tuning_trial' and "
                                        f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"):
            client.delete_run(trial.info.run_id)  # its tuning trials go with it
        client.delete_run(run.info.run_id)
    return busy


def wait_until_free(client: MlflowClient, find: Callable[[], list[Run]], what: str,
                    poll_s: float = POLL_S, wait_s: float | None = None) -> list[Run]:
    """``find()``'s runs once none is held by another live process: leftovers of dead processes are removed
    (:func:`remove_unfinished`); while another live study trains one, wait (one warning, a look every ``poll_s``
    seconds) at most ``wait_s`` seconds (default :data:`WAIT_S`), then raise :class:`StudyBusy` naming the run,
    its owner and its last heartbeat. Returns the runs of the last look, the removed ones left out."""
    wait_s = WAIT_S if wait_s is None else float(wait_s)
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        runs = find()
        busy = remove_unfinished(client, runs, what)
        if not busy:
            return [r for r in runs if is_finished(r)]
        run, owner = busy[0]
        if time.monotonic() >= deadline:
            raise StudyBusy(f"{what}: run {run.info.run_id} is still held by another study ({owner}, last heartbeat "
                            f"{beat_age(run.data.tags):.0f} s ago) after waiting {wait_s:.0f} s "
                            "(logger.wait_timeout_s); if that process hangs, stop it, then rerun this command")
        if not told:
            log.warning("%s: another study (%s) is training run %s; waiting up to %.0f s for it to finish (stop that "
                        "process to train it here)", what, owner, run.info.run_id, wait_s)
            told = True
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def ensure_parent(client: MlflowClient, exp_id: str, key: str, name: str, tags: Mapping[str, str],
                  params: Mapping[str, object], claim: bool = False) -> str:
    """The study's parent run id: found by ``key`` (reopened as RUNNING) or created with ``tags``/``params``.

    ``claim`` (the study's own process): the study key is claimed first (:func:`~liver_mm.tracking.claim.claim_study`:
    another live study of the key raises :class:`StudyBusy`, also one started at the same moment); then the parent's
    owner tags name this process, and it beats until the claim is released."""
    held = claim_study(client, exp_id, key, name) if claim else None
    parent = find_parent(client, exp_id, key)
    if parent is not None:
        owner = live_owner(parent)
        if held is not None and owner is not None and not is_me(parent.data.tags):
            release(client, key)
            raise StudyBusy(f"another study ({owner}) is running study {name} (parent run {parent.info.run_id}); "
                            "wait for it to finish or stop it, then rerun this command")
        if held is not None:
            client.log_batch(parent.info.run_id, tags=[RunTag(k, v) for k, v in owner_tags().items()],
                             synchronous=True)
        log.info("resuming study %s (parent run %s)", name, parent.info.run_id)
        if parent.info.status != "RUNNING":
            set_status(client, parent.info.run_id, "RUNNING")
        parent_id = parent.info.run_id
    else:
        parent_id = create_run(client, exp_id, f"study:{name}",
                               {**tags, "study": name, "study_key": key, "is_study_parent": "true"}, params)
    if held is not None:
        held.beat(parent_id)
    return parent_id
