"""The stepwise study as a Hydra multirun: one parent MLflow run, one child run per arm, resumable.

* :class:`StudyCallback` (Hydra callback) prepares the shared cohort, split and crop cache once,
  finds or creates the parent run before any child starts, and writes the comparison after all.
* :func:`run_arm` is each job's task: it skips an arm already FINISHED in this study, removes a
  leftover unfinished run of it (killed mid-way), and trains it as a child of the parent.

A study is identified by its *study key*: its name, the cohort and split hashes and every
setting the arms share (all but ``arm``, ``modalities`` and ``model``). Rerunning the same
study with the same cohort finds the same key, hence the same parent and finished children.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from liver_mm.training.cohort import PreparedCohort, prepare_cohort
from liver_mm.training.tracking import get_or_create_experiment, provenance, tracking_uri

log = logging.getLogger(__name__)
ARM_SPECIFIC = ("modalities", "model", "hydra")


def study_key(cfg: DictConfig, cohort: PreparedCohort) -> str:
    """Hash of the study's name, cohort, split and shared settings (16 hex digits)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    for key in ARM_SPECIFIC:  # (the hydra node only resolves inside a job)
        raw.pop(key, None)
    shared = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(shared, dict)
    study = dict(shared.pop("study", {}) or {})
    ident = {"name": study.get("name"), "settings": shared, "manifest": cohort.manifest_hash,
             "split": cohort.split_hash}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _client(cfg: DictConfig) -> tuple[MlflowClient, str]:
    client = MlflowClient(tracking_uri(cfg.logger.tracking_uri))
    exp_id = get_or_create_experiment(client, str(cfg.logger.experiment_name), cfg.logger.get("artifact_root"))
    return client, exp_id


def find_parent(client: MlflowClient, exp_id: str, key: str) -> Run | None:
    runs = client.search_runs([exp_id], f"tags.study_key = '{key}' and tags.is_study_parent = 'true'",
                              order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def study_children(client: MlflowClient, exp_id: str, key: str) -> list[Run]:
    """All (non-deleted) child runs of the study, any status."""
    return client.search_runs([exp_id], f"tags.study_key = '{key}' and tags.is_study_parent = 'false'",
                              max_results=1000)


def finished_children(client: MlflowClient, exp_id: str, key: str) -> dict[str, Run]:
    """arm -> its FINISHED child run (the latest, should a duplicate ever exist)."""
    out: dict[str, Run] = {}
    for run in sorted(study_children(client, exp_id, key), key=lambda r: r.info.start_time):
        if run.info.status == "FINISHED":
            out[run.data.tags.get("arm", "")] = run
    return out


def ensure_parent(cfg: DictConfig, cohort: PreparedCohort) -> tuple[MlflowClient, str, str, str]:
    """(client, experiment id, study key, parent run id): the study's parent run, created if new."""
    client, exp_id = _client(cfg)
    key = study_key(cfg, cohort)
    parent = find_parent(client, exp_id, key)
    if parent is not None:
        log.info("resuming study %s (parent run %s)", cfg.study.name, parent.info.run_id)
        if parent.info.status != "RUNNING":
            client.update_run(parent.info.run_id, status="RUNNING")
        return client, exp_id, key, parent.info.run_id
    tags = {"study": str(cfg.study.name), "study_key": key, "is_study_parent": "true",
            "synthetic": str(bool(cohort.synthetic)).lower(), "manifest_hash": cohort.manifest_hash,
            "split_hash": cohort.split_hash}
    run = client.create_run(exp_id, tags=tags, run_name=f"study:{cfg.study.name}")
    for k, v in {**provenance(), "seed": str(cfg.seed), "image_size": str(cfg.image_size),
                 "arms": ",".join(cfg.study.arms)}.items():
        client.log_param(run.info.run_id, k, v)
    return client, exp_id, key, run.info.run_id


def run_arm(cfg: DictConfig) -> dict[str, Any]:
    """One study job: train the arm as a child run unless it already finished in this study."""
    from liver_mm.training.run import train

    arm = str(cfg.study.arm)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    client, exp_id, key, parent_id = ensure_parent(cfg, cohort)
    done = finished_children(client, exp_id, key).get(arm)
    if done is not None:
        log.info("arm %s already finished in this study (run %s): skipped", arm, done.info.run_id)
        return {"arm": arm, "run_id": done.info.run_id, "skipped": True}
    for stale in study_children(client, exp_id, key):
        if stale.data.tags.get("arm") == arm:  # left unfinished by a killed or failed attempt
            log.warning("removing unfinished run %s of arm %s (status %s)", stale.info.run_id, arm,
                        stale.info.status)
            client.delete_run(stale.info.run_id)
    with open_dict(cfg):
        cfg.study.parent_run_id = parent_id
        cfg.study.key = key
    res = train(cfg)
    return {"arm": arm, "run_id": None if res is None else res.run_id, "skipped": False}


class StudyCallback(Callback):
    """Hydra callback: shared preparation before the sweep, comparison and report after it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # one preparation for all arms: children (possibly parallel) then only read the caches
        from liver_mm.data.crops import build_crop_cache

        cohort = prepare_cohort(config.data, config.split, config.cache_dir)
        build_crop_cache(cohort.df, int(config.image_size), float(config.crop.margin),
                         f"{config.cache_dir}/crops")
        ensure_parent(config, cohort)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from liver_mm.study.finish import finish_study

        finish_study(config)
