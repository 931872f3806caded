"""The stepwise study as a Hydra multirun: one parent MLflow run, one child run per arm, resumable.

* :class:`StudyCallback` (Hydra callback) checks the report folder, prepares the shared cohort,
  split and crop cache once, finds or creates the parent run before any child starts, and writes
  the comparison after all.
* :func:`run_arm` is each job's task: it skips an arm already finished in this study, removes a
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
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from liver_mm.training.cohort import PreparedCohort, prepare_cohort

log = logging.getLogger(__name__)
ARM_SPECIFIC = ("modalities", "model", "hydra", "arm")
# settings that change how a run executes or where it is tracked, never its results: a study resumed
# with other threads, workers, logger, cache or report folder is the same study
EXECUTION_ONLY = {"trainer": ("num_threads",), "loader": ("num_workers", "pin_memory"), "study": ("out_dir",)}
NOT_IN_KEY = ("logger", "cache_dir")
MARKER = ".liver-mm-study"


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
    for key in ("arm", "parent_run_id", "key", "level", "repeat", "fold", "run_name"):
        study.pop(key, None)
    ident = {"name": study.get("name"), "settings": shared, "study": study, "manifest": cohort.manifest_hash,
             "split": cohort.split_hash}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parent_run(cfg: DictConfig, cohort: PreparedCohort):
    """(client, experiment id, study key, parent run id): the study's parent run, created if new."""
    from liver_mm.tracking.registry import ensure_parent
    from liver_mm.tracking.store import connect

    client, exp_id = connect(cfg.logger)
    key = study_key(cfg, cohort)
    tags = {"synthetic": str(bool(cohort.synthetic)).lower(), "manifest_hash": cohort.manifest_hash,
            "split_hash": cohort.split_hash}
    params = {"seed": cfg.seed, "image_size": cfg.image_size, "arms": ",".join(cfg.study.arms)}
    return client, exp_id, key, ensure_parent(client, exp_id, key, str(cfg.study.name), tags, params)


def check_arm(cfg: DictConfig) -> None:
    """The study sets modalities and model per arm: a ``modalities=`` or ``model=`` group override on the
    study command would relabel every arm, so it is refused (choose arms with ``study.arms``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("modalities", "model"):
            raise ValueError(f"{override}: the study sets modalities and model per arm (conf/arm/); drop this "
                             "override and choose arms with study.arms=[...]")


def check_out_dir(out: Path) -> None:
    """A study writes only into a folder it owns: new, empty, or marked by an earlier study (``.liver-mm-study``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"study.out_dir={out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ValueError(f"study.out_dir={out} holds files that a liver-mm study did not write (no {MARKER} "
                         "marker); choose an empty or new folder: the study replaces its folder's content")


def run_arm(cfg: DictConfig) -> dict[str, Any]:
    """One study job: train the arm as a child run unless it already finished in this study.

    A failing arm is logged and reported as missing instead of stopping the other arms; the
    study's report then names it and the command exits 1 (rerun to complete it).
    """
    from liver_mm.study.cv import run_cv_arm, uses_cv
    from liver_mm.tracking.registry import finished_by, remove_unfinished, study_runs
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
        client, exp_id, key, parent_id = parent_run(cfg, cohort)
        if uses_cv(cfg):
            return run_cv_arm(cfg, cohort, client, exp_id, key, parent_id)
        runs = [r for r in study_runs(client, exp_id, key) if r.data.tags.get("arm") == arm]
        done = finished_by(runs, "arm").get((arm,))
        if done is not None:
            log.info("arm %s already finished in this study (run %s): skipped", arm, done.info.run_id)
            return {"arm": arm, "run_id": done.info.run_id, "skipped": True}
        remove_unfinished(client, runs, f"arm {arm}")
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
        from liver_mm.study.cv import prepare_study_folds, uses_cv

        with _exit_on_error("preparing the study"):
            check_out_dir(Path(str(config.study.out_dir)))
            cohort = prepare_cohort(config.data, config.split, config.cache_dir)
            if uses_cv(config):
                prepare_study_folds(config, cohort)
            build_crop_cache(cohort.df, int(config.image_size), float(config.crop.margin),
                             f"{config.cache_dir}/crops")
            parent_run(config, cohort)

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
