"""The stepwise study as a Hydra multirun: one parent MLflow run, one child run per arm, resumable.

* :class:`StudyCallback` (Hydra callback) checks the report folder, prepares the shared cohort,
  split and crop cache once, finds or creates the parent run before any child starts, and writes
  the comparison after all.
* :func:`run_arm` is each job's task: it skips an arm already finished in this study with the same
  settings, removes a leftover unfinished run of it (its process killed mid-way), waits while another
  live study trains it, and trains it as a child of the parent.

The study key and each arm's key: :mod:`liver_mm.study.parent`.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.study.parent import arm_key, check_arm, check_out_dir, parent_run

log = logging.getLogger(__name__)


def run_arm(cfg: DictConfig) -> dict[str, Any]:
    """One study job: train the arm as a child run unless it already finished in this study with the same
    settings (the same arm key); while another live study trains it, wait for that run instead.

    A failing arm is logged and reported as missing instead of stopping the other arms; the
    study's report then names it and the command exits 1 (rerun to complete it).
    """
    from liver_mm.study.cv.run import run_cv_arm, uses_cv
    from liver_mm.training.run import train

    arm = str(cfg.study.arm)
    try:
        check_arm(cfg)
        akey = arm_key(cfg)
        if str(cfg.trainer.get("strategy", "")) == "ddp":
            # Lightning's ddp re-executes the command per GPU, which would relaunch the whole sweep
            log.info("arm %s: trainer.strategy ddp -> ddp_spawn inside a study", arm)
            with open_dict(cfg):
                cfg.trainer.strategy = "ddp_spawn"
        cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
        client, exp_id, key, parent_id = parent_run(cfg, cohort)
        if uses_cv(cfg):
            return run_cv_arm(cfg, cohort, client, exp_id, key, parent_id, akey)
        done = _finished_or_free(client, exp_id, key, arm, akey, cfg=cfg,
                                 wait_s=(cfg.get("logger") or {}).get("wait_timeout_s"))
        if done is not None:
            log.info("arm %s already finished in this study (run %s): skipped", arm, done.info.run_id)
            return {"arm": arm, "run_id": done.info.run_id, "skipped": True}
        with open_dict(cfg):
            cfg.study.parent_run_id = parent_id
            cfg.study.key = key
            cfg.study.arm_key = akey
        res = train(cfg)
    except Exception as exc:  # noqa: BLE001 - one failing arm must not cost the others their results
        log.exception("arm %s failed: %s", arm, exc)
        return {"arm": arm, "run_id": None, "failed": str(exc)}
    return {"arm": arm, "run_id": None if res is None else res.run_id, "skipped": False}


def _finished_or_free(client, exp_id: str, key: str, arm: str, akey: str, poll_s: float | None = None,
                      cfg: DictConfig | None = None, wait_s: float | None = None):
    """The arm's finished run with arm key ``akey`` holding the outputs ``cfg`` asks for
    (:func:`liver_mm.study.reuse.reusable`), or None once no live process trains it (its leftover unfinished
    runs removed). While another study's live process trains it, wait (polling every ``poll_s``, at most
    ``wait_s`` seconds)."""
    from liver_mm.study.reuse import reusable
    from liver_mm.tracking.registry import POLL_S, finished_by, study_runs, wait_until_free

    runs = wait_until_free(client, lambda: [r for r in study_runs(client, exp_id, key) if r.data.tags.get("arm") == arm],
                           f"arm {arm}", POLL_S if poll_s is None else poll_s, wait_s)
    current = reusable(client, [r for r in runs if r.data.tags.get("arm_key") == akey], cfg, f"arm {arm}")
    done = finished_by(current, "arm").get((arm,))
    if done is None:
        other = finished_by(runs, "arm").get((arm,))
        if other is not None:  # kept (its report may cite it), not reused
            log.info("arm %s: finished run %s was trained with other settings (arm key %s, now %s): trained "
                     "again", arm, other.info.run_id, other.data.tags.get("arm_key", "none"), akey)
    return done


class StudyCallback(Callback):
    """Hydra callback: shared preparation before the sweep, comparison and report after it.

    Hydra turns exceptions raised in callbacks into warnings; these hooks log the error and
    exit with status 1 instead, so a study never carries on (or ends "successfully") past one.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # one preparation for all arms: children (possibly parallel) then only read the caches
        from liver_mm.features.crops import build_crop_cache
        from liver_mm.study.checks import check_study_config
        from liver_mm.study.cv.run import prepare_study_folds, uses_cv

        with _exit_on_error("preparing the study"):
            check_study_config(config)  # cv.folds, cv.repeats, study.arms, study.reference: before any training
            check_out_dir(Path(str(config.study.out_dir)))
            cohort = prepare_cohort(config.data, config.split, config.cache_dir)
            if uses_cv(config):
                prepare_study_folds(config, cohort)
            build_crop_cache(cohort.df, int(config.image_size), float(config.crop.margin),
                             f"{config.cache_dir}/crops")
            parent_run(config, cohort)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from liver_mm.study.finish import finish_study
        from liver_mm.tracking.claim import release

        try:
            with _exit_on_error("comparing the arms", failed_study=config):
                complete = finish_study(config)
        finally:
            release()  # the study's claim and its parent's heartbeat end with its report
        if not complete:
            raise SystemExit(1)


@contextmanager
def _exit_on_error(step: str, failed_study: DictConfig | None = None):
    """Log an exception and exit 1; with ``failed_study``, its parent run is marked FAILED (not left RUNNING)."""
    try:
        yield
    except SystemExit:
        raise
    except Exception as exc:
        log.error("study failed while %s: %s", step, exc)
        if failed_study is not None:
            _mark_parent_failed(failed_study)
        raise SystemExit(1) from None


def _mark_parent_failed(config: DictConfig) -> None:
    """Mark the study's existing parent run FAILED (none is created); a failure to do so is logged."""
    from liver_mm.study.parent import study_key
    from liver_mm.tracking.registry import find_parent
    from liver_mm.tracking.runs import set_status
    from liver_mm.tracking.store import connect

    try:
        client, exp_id = connect(config.logger)
        cohort = prepare_cohort(config.data, config.split, config.cache_dir)
        parent = find_parent(client, exp_id, study_key(config, cohort))
        if parent is not None:
            set_status(client, parent.info.run_id, "FAILED")
    except Exception as exc:  # noqa: BLE001 - the study's own error is the one to report
        log.error("could not mark the study's parent run FAILED: %s", exc)
