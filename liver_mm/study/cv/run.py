"""Cross-validated study (``liver-mm study cv.folds=K cv.repeats=R``): every arm trains once per (repeat, fold).

MLflow: the study parent, one child per arm (a container that finishes when all its folds have), one
nested run per (arm, repeat, fold) under it with its own metrics and predictions. The sweep has one job per
(arm, repeat, fold) (``cv.job``), so ``hydra/launcher=joblib_local`` trains folds in parallel. Resume works at
fold granularity: a rerun trains only the folds without a finished run. Folds are grouped by patient and
identical image and label-stratified (:mod:`liver_mm.cohort.split`); inside each training part a grouped,
stratified dev part is held out for early stopping and the frozen Youden threshold.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, open_dict

from liver_mm.cohort.prepare import PreparedCohort

log = logging.getLogger(__name__)


def uses_cv(cfg: DictConfig) -> bool:
    """True when the study is cross-validated (``cv.folds`` = K >= 2); a ``cv.folds`` or ``cv.repeats`` that is
    neither null nor a valid whole number is a ValueError naming it (:func:`liver_mm.study.checks.check_cv`)."""
    from liver_mm.study.checks import check_cv

    return check_cv(cfg) is not None


def prepare_study_folds(cfg: DictConfig, cohort: PreparedCohort) -> tuple[pd.DataFrame, str]:
    """(assignment, folds hash): ``assignment`` is indexed by case_id with one column per (repeat, fold)
    holding train / dev / test; written once into the cache and reused. Raises before any training when
    the cohort is too small for K folds."""
    from liver_mm.cohort.folds import prepare_folds
    from liver_mm.io.dialect import options_from_config

    cv = cfg.cv
    units = dict(cfg.data.get("units") or {})
    options = options_from_config(cfg.data) if cfg.data.kind == "manifest" else None
    parts = [cohort.manifest_hash, cohort.content_hash, cv.folds, cv.repeats, cfg.seed, cv.dev_fraction,
             sorted(units.items()), options.key() if options is not None else {}]
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    out = Path(str(cfg.cache_dir)) / "folds" / key.hexdigest()[:12] / "folds.csv"
    res = prepare_folds(cohort.source_manifest, out, folds=int(cv.folds), repeats=int(cv.repeats),
                        seed=int(cfg.seed), units=units, dev_fraction=float(cv.dev_fraction), options=options,
                        content_hash=cohort.content_hash or None)
    return res.assignment, res.folds_hash


def fold_cohort(cohort: PreparedCohort, assignment: pd.DataFrame, folds_hash: str, repeat: int,
                fold: int) -> PreparedCohort:
    """The cohort with ``split`` = this (repeat, fold)'s train / dev / test parts."""
    df = cohort.df.copy()
    df["split"] = df["case_id"].astype(str).map(assignment[(repeat, fold)])
    if df["split"].isna().any():
        raise ValueError(f"the fold assignment lacks {int(df['split'].isna().sum())} case(s) of the cohort")
    return replace(cohort, df=df, split_hash=f"{folds_hash[:16]}-r{repeat}f{fold}")


def fold_sizes(assignment: pd.DataFrame) -> pd.DataFrame:
    """repeat, fold, n_train, n_dev, n_test and n_outside_test (= n_train + n_dev, the training size of the
    corrected t-test: every case outside the test fold)."""
    from liver_mm.cohort.folds import fold_sizes as sizes

    out = sizes(assignment)
    out["n_outside_test"] = out["n_train"] + out["n_dev"]
    return out


def ensure_arm_run(client, exp_id: str, key: str, parent_id: str, cfg: DictConfig, cohort: PreparedCohort,
                   akey: str) -> str:
    """The arm's child run with arm key ``akey``: created by the first of the arm's fold jobs (under a file lock),
    reused by the others and by a rerun after a killed study (so its finished folds count)."""
    from liver_mm.tracking.store import file_lock

    # parallel fold jobs of one arm: the first creates the run, the others find it
    with file_lock(Path(str(cfg.cache_dir)) / "locks" / f"study-{key}-{cfg.study.arm}.lock"):
        return _find_or_create_arm_run(client, exp_id, key, parent_id, cfg, cohort, akey)


def _find_or_create_arm_run(client, exp_id: str, key: str, parent_id: str, cfg: DictConfig,
                            cohort: PreparedCohort, akey: str) -> str:
    from liver_mm.tracking.registry import study_runs
    from liver_mm.tracking.runs import create_run, set_status

    arm = str(cfg.study.arm)
    runs = sorted((r for r in study_runs(client, exp_id, key) if r.data.tags.get("arm") == arm
                   and r.data.tags.get("arm_key") == akey), key=lambda r: r.info.start_time)
    if runs:
        set_status(client, runs[-1].info.run_id, "RUNNING")
        return runs[-1].info.run_id
    tags = {"study": str(cfg.study.name), "study_key": key, "is_study_parent": "false", "study_level": "arm",
            "arm": arm, "arm_key": akey, "mlflow.parentRunId": parent_id, "modalities": str(cfg.modalities.name),
            "model_kind": str(cfg.model.kind), "synthetic": str(bool(cohort.synthetic)).lower(),
            "manifest_hash": cohort.manifest_hash, "content_hash": cohort.content_hash}
    params = {"modalities.description": cfg.modalities.get("description", ""), "modalities.image": cfg.modalities.image,
              "model.description": cfg.model.get("description", ""), "cv.folds": cfg.cv.folds,
              "cv.repeats": cfg.cv.repeats}
    return create_run(client, exp_id, arm, tags, params)


def fold_jobs(cfg: DictConfig) -> list[tuple[int, int]]:
    """The (repeat, fold) pairs this job trains: all of them, or the one of ``cv.job`` (j -> (j // K, j % K))."""
    k, r = int(cfg.cv.folds), int(cfg.cv.repeats)
    job = cfg.cv.get("job")
    if job is None:
        return [(rep, fold) for rep in range(r) for fold in range(k)]
    if not 0 <= int(job) < k * r:
        raise ValueError(f"cv.job={job}: must lie in 0..{k * r - 1} for cv.folds={k} cv.repeats={r}")
    return [divmod(int(job), k)]


def _finish_arm_if_complete(client, exp_id: str, key: str, cfg: DictConfig, arm_id: str, akey: str) -> bool:
    """Mark the arm's child run FINISHED (with its fold-AUC mean and SD) once every (repeat, fold) has a finished run."""
    from liver_mm.tracking.artifacts import mark_outputs_logged
    from liver_mm.tracking.registry import finished_by, study_runs
    from liver_mm.tracking.runs import log_metrics, set_status

    arm = str(cfg.study.arm)
    done = finished_by([r for r in study_runs(client, exp_id, key, level="fold") if r.data.tags.get("arm") == arm
                        and r.data.tags.get("arm_key") == akey], "repeat", "fold")
    if len(done) < int(cfg.cv.folds) * int(cfg.cv.repeats):
        return False
    s = pd.Series([r.data.metrics["test_auc"] for r in done.values()], dtype=float)
    log_metrics(client, arm_id, {"cv_auc_mean": float(s.mean()), "cv_auc_sd": float(s.std(ddof=1))})
    mark_outputs_logged(client, arm_id)
    set_status(client, arm_id, "FINISHED")
    return True


def run_cv_arm(cfg: DictConfig, cohort: PreparedCohort, client, exp_id: str, key: str, parent_id: str,
               akey: str) -> dict[str, Any]:
    """Train this job's unfinished (repeat, fold)s of one arm as nested runs under the arm's child run; the job
    that completes the last fold finishes the arm's run. Parallel fold jobs (joblib launcher) each train one fold.
    Only runs with the arm key ``akey`` (the arm's settings now) count; a fold another live process is training
    is waited for, never removed or trained twice."""
    from liver_mm.tracking.owner import start_heartbeat
    from liver_mm.tracking.registry import is_finished, study_runs
    from liver_mm.tracking.runs import set_status
    from liver_mm.training.run import output_dir, train

    arm = str(cfg.study.arm)
    arm_runs = [r for r in study_runs(client, exp_id, key) if r.data.tags.get("arm") == arm
                and r.data.tags.get("arm_key") == akey]
    mine = fold_jobs(cfg)
    if any(is_finished(r) for r in arm_runs) and not _folds_lacking_outputs(client, exp_id, key, cfg, akey, mine):
        log.info("arm %s already finished in this study: skipped", arm)
        return {"arm": arm, "run_id": next(r.info.run_id for r in arm_runs if is_finished(r)), "skipped": True}
    assignment, folds_hash = prepare_study_folds(cfg, cohort)
    arm_id = ensure_arm_run(client, exp_id, key, parent_id, cfg, cohort, akey)
    stop_beating = start_heartbeat(client, arm_id)  # the arm's run lives while a job trains its folds
    try:
        done = _free_folds(client, exp_id, key, arm, akey, mine, cfg=cfg,
                           wait_s=(cfg.get("logger") or {}).get("wait_timeout_s"))
        base = output_dir(cfg)
        for rep, fold in mine:
            if (str(rep), str(fold)) in done:
                continue
            fcfg = copy.deepcopy(cfg)
            with open_dict(fcfg):
                fcfg.study.update(parent_run_id=arm_id, key=key, arm_key=akey, level="fold", repeat=rep, fold=fold,
                                  run_name=f"{arm} r{rep} f{fold}")
                fcfg.logger.log_model = bool(cfg.cv.get("log_models", False))
            log.info("arm %s: repeat %d, fold %d of %d", arm, rep, fold + 1, int(cfg.cv.folds))
            train(fcfg, cohort=fold_cohort(cohort, assignment, folds_hash, rep, fold), out=base / f"r{rep}f{fold}")
        _finish_arm_if_complete(client, exp_id, key, cfg, arm_id, akey)
    except KeyboardInterrupt:
        set_status(client, arm_id, "KILLED")
        raise
    finally:
        stop_beating()
    return {"arm": arm, "run_id": arm_id, "skipped": False}


def _mine(client, exp_id: str, key: str, arm: str, akey: str, mine: list[tuple[int, int]]) -> list:
    """The fold runs of ``arm`` with arm key ``akey`` of the (repeat, fold)s ``mine``."""
    from liver_mm.tracking.registry import study_runs

    return [r for r in study_runs(client, exp_id, key, level="fold") if r.data.tags.get("arm") == arm
            and r.data.tags.get("arm_key") == akey
            and (int(r.data.tags.get("repeat", -1)), int(r.data.tags.get("fold", -1))) in mine]


def _folds_lacking_outputs(client, exp_id: str, key: str, cfg: DictConfig, akey: str,
                           mine: list[tuple[int, int]]) -> bool:
    """True when a finished fold run of this job's folds lacks an output ``cfg`` asks for (``cv.log_models``):
    the arm is then not skipped and those folds are trained again."""
    from liver_mm.study.reuse import reusable
    from liver_mm.tracking.registry import finished_by

    runs = _mine(client, exp_id, key, str(cfg.study.arm), akey, mine)
    done = finished_by(runs, "repeat", "fold")
    return len(finished_by(reusable(client, runs, cfg, f"arm {cfg.study.arm} folds"), "repeat", "fold")) < len(done)


def _free_folds(client, exp_id: str, key: str, arm: str, akey: str, mine: list[tuple[int, int]],
                poll_s: float | None = None, cfg: DictConfig | None = None, wait_s: float | None = None) -> dict:
    """(repeat, fold) -> finished run of this job's folds with arm key ``akey`` holding the outputs ``cfg`` asks
    for (:func:`liver_mm.study.reuse.reusable`), once no live process trains any of them
    (:func:`liver_mm.tracking.registry.wait_until_free`: only this job's folds, parallel jobs own theirs; at most
    ``wait_s`` seconds)."""
    from liver_mm.study.reuse import reusable
    from liver_mm.tracking.registry import POLL_S, finished_by, wait_until_free

    runs = wait_until_free(client, lambda: _mine(client, exp_id, key, arm, akey, mine), f"arm {arm} folds",
                           POLL_S if poll_s is None else poll_s, wait_s)
    return finished_by(reusable(client, runs, cfg, f"arm {arm} folds"), "repeat", "fold")


def finish_cv(config: DictConfig, cohort: PreparedCohort, client, exp_id: str, key: str, arm_keys: dict[str, str],
              out: Path, provenance: dict, command: str, families, title: str) -> dict[str, float]:
    """Gather the finished fold runs of each arm (report order) trained with its arm key ``arm_keys[arm]`` and
    write the cross-validation report into ``out``."""
    from liver_mm.study.cv.report import write_cv_study
    from liver_mm.study.tuning_report import tuning_table
    from liver_mm.tracking.registry import finished_by, study_runs

    assignment, _ = prepare_study_folds(config, cohort)
    current = [r for r in study_runs(client, exp_id, key, level="fold")
               if arm_keys.get(r.data.tags.get("arm", "")) == r.data.tags.get("arm_key")]
    runs = finished_by(current, "arm", "repeat", "fold")
    arms = list(arm_keys)
    preds: dict[tuple[str, int, int], pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (arm, rep, fold), run in runs.items():
            if arm in arm_keys:
                path = client.download_artifacts(run.info.run_id, "predictions.csv", f"{tmp}/{arm}-{rep}-{fold}")
                preds[(arm, int(rep), int(fold))] = pd.read_csv(path)
    return write_cv_study(config, cohort, preds, fold_sizes(assignment), arms, out, provenance, command, families,
                          title, tuning=tuning_table({k: r for k, r in runs.items() if k[0] in arm_keys}, arms))
