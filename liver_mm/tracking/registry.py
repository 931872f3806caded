"""The study's runs: one parent run per study key, one child per arm (and, cross-validated, one
grandchild per (arm, repeat, fold)), found again by tags so that a rerun resumes.

A run counts as finished only when its status is FINISHED *and* it carries the tag
``outputs_logged=true`` (the last thing a run writes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from liver_mm.tracking.runs import create_run, set_status

log = logging.getLogger(__name__)
OUTPUTS_LOGGED = "outputs_logged"


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


def finished_by(runs: list[Run], *tag_names: str) -> dict[tuple[str, ...], Run]:
    """(tag values) -> the latest finished run among ``runs``."""
    out: dict[tuple[str, ...], Run] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        if is_finished(run):
            out[tuple(run.data.tags.get(t, "") for t in tag_names)] = run
    return out


def remove_unfinished(client: MlflowClient, runs: list[Run], what: str) -> None:
    """Delete runs left unfinished by a killed or failed attempt (they are retrained)."""
    for run in runs:
        if not is_finished(run):
            log.warning("removing unfinished run %s of %s (status %s)", run.info.run_id, what, run.info.status)
            client.delete_run(run.info.run_id)


def ensure_parent(client: MlflowClient, exp_id: str, key: str, name: str, tags: Mapping[str, str],
                  params: Mapping[str, object]) -> str:
    """The study's parent run id: found by ``key`` (reopened as RUNNING) or created with ``tags``/``params``."""
    parent = find_parent(client, exp_id, key)
    if parent is not None:
        log.info("resuming study %s (parent run %s)", name, parent.info.run_id)
        if parent.info.status != "RUNNING":
            set_status(client, parent.info.run_id, "RUNNING")
        return parent.info.run_id
    tags = {**tags, "study": name, "study_key": key, "is_study_parent": "true"}
    return create_run(client, exp_id, f"study:{name}", tags, params)
