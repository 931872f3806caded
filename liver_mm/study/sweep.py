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
from contextlib import contextmanager
from typing import Any

from hydra.experimental.callback import Callback
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from liver_mm.training.cohort import PreparedCohort, prepare_cohort
from liver_mm.training.tracking import get_or_create_experiment, provenance, tracking_uri

log = logging.getLogger(__name__)
ARM_SPECIFIC = ("modalities", "model", "hydra")
# settings that change how a run executes or where it is tracked, never its results: a study resumed
# with other threads, workers, logger or cache folder is the same study
EXECUTION_ONLY = {"trainer": ("num_threads",), "loader": ("num_workers", "pin_memory")}
NOT_IN_KEY = ("logger", "cache_dir")


def study_key(cfg: DictConfig, cohort: PreparedCohort) -> str:
    """Hash of the study's name, cohort, split and shared settings (16 hex digits)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    for key in (*ARM_SPECIFIC, *NOT_IN_KEY):  # (the hydra node only resolves inside a job)
        raw.pop(key, None)
    for group, keys in EXECUTION_ONLY.items():
        for key in keys:
            (raw.get(group) or {}).pop(key, None)
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
    """arm -> its finished child run: status FINISHED *and* every output logged (the tag
    ``outputs_logged`` is the last thing a run writes), the latest should a duplicate ever exist."""
    out: dict[str, Run] = {}
    for run in sorted(study_children(client, exp_id, key), key=lambda r: r.info.start_time):
        if run.info.status == "FINISHED" and run.data.tags.get("outputs_logged") == "true":
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


def check_arm(cfg: DictConfig) -> None:
    """The arm's modality set and model are the ones its config names (an override such as
    ``modalities=m2`` on the study command would relabel every arm)."""
    want_mod, want_model = cfg.study.get("modalities"), cfg.study.get("model")
    if (want_mod and cfg.modalities.name != want_mod) or (want_model and cfg.model.kind != want_model):
        raise ValueError(
            f"arm {cfg.study.arm} must train modalities={want_mod} with a {want_model} model, not "
            f"modalities={cfg.modalities.name} with a {cfg.model.kind} model: the study sets modalities and "
            "model per arm; drop those overrides (choose arms with study.arms / hydra.sweeper.params.arm)"
        )


def run_arm(cfg: DictConfig) -> dict[str, Any]:
    """One study job: train the arm as a child run unless it already finished in this study.

    A failing arm is logged and reported as missing instead of stopping the other arms; the
    study's report then names it and the command exits 1 (rerun to complete it).
    """
    from liver_mm.training.run import train

    arm = str(cfg.study.arm)
    try:
        check_arm(cfg)
        if str(cfg.trainer.get("strategy", "")) == "ddp":
            # Lightning's ddp re-executes the command per GPU, which would relaunch the whole sweep
            log.info("arm %s: trainer.strategy ddp -> ddp_spawn inside a study", arm)
            with open_dict(cfg):
                cfg.trainer.strategy = "ddp_spawn"
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
    except Exception as exc:  # noqa: BLE001 - one failing arm must not cost the others their results
        log.exception("arm %s failed: %s", arm, exc)
        return {"arm": arm, "run_id": None, "failed": str(exc)}
    return {"arm": arm, "run_id": None if res is None else res.run_id, "skipped": False}


class StudyCallback(Callback):
    """Hydra callback: shared preparation before the sweep, comparison and report after it.

    Hydra turns exceptions raised in callbacks into warnings; these hooks log the error and
    exit with status 1 instead, so a study never carries on (or ends "successfully") past one.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # one preparation for all arms: children (possibly parallel) then only read the caches
        from liver_mm.data.crops import build_crop_cache

        with _exit_on_error("preparing the study"):
            cohort = prepare_cohort(config.data, config.split, config.cache_dir)
            build_crop_cache(cohort.df, int(config.image_size), float(config.crop.margin),
                             f"{config.cache_dir}/crops")
            ensure_parent(config, cohort)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from liver_mm.study.finish import finish_study

        with _exit_on_error("comparing the arms"):
            complete = finish_study(config)
        if not complete:
            raise SystemExit(1)


@contextmanager
def _exit_on_error(step: str):
    try:
        yield
    except SystemExit:
        raise
    except Exception as exc:
        log.error("study failed while %s: %s", step, exc)
        raise SystemExit(1) from None
