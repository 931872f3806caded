"""``liver-mm tune [overrides]`` (conf/tune.yaml): the nested search on its own, on one arm's single split.

The trials train on the split's ``train`` rows and are scored on its ``dev`` rows (:mod:`liver_mm.training.tune`);
the test rows are never passed to a trial, and nothing is evaluated on them. MLflow: one run ``tune:<arm>`` with
the chosen settings (``tune.chosen.*``), ``tune_best_objective`` and ``tune_best_dev_auc`` and the cohort it tuned on
(tags ``manifest_hash``, ``split_hash``), every trial nested under it; files in Hydra's run folder
(``tuning/trials.csv``, ``tuning/optimization_results.yaml``, ``tuning/chosen.yaml``: the settings and where they
came from). Prints the chosen settings as a ``liver-mm train`` command and the split they were tuned on. A study
that trains with them finds this run by its chosen values (:mod:`liver_mm.study.tripod.records`) and warns when its
test rows include rows this search saw (cross-validation, or another split).
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from omegaconf import DictConfig

from liver_mm.training.tune import TuneResult

log = logging.getLogger(__name__)


def tune_task(cfg: DictConfig) -> TuneResult:
    """Search the run's space with ``tune.trials`` trials; returns the search (trials and the chosen one)."""
    import pytorch_lightning as pl

    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.features.inputs import build_features
    from liver_mm.fileio import check_writable_dir
    from liver_mm.tracking import artifacts
    from liver_mm.tracking.runs import create_run, heartbeat, log_metrics, log_params, set_status
    from liver_mm.tracking.store import connect
    from liver_mm.training.checks import check_settings, task_overrides
    from liver_mm.training.run import configure_threads, output_dir, run_params, sigterm_as_interrupt
    from liver_mm.training.tune import trial_tags, tune_job
    from liver_mm.training.tune_space import search_space, trials

    check_settings(cfg)
    name = str((cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    if trials(cfg) == 0:
        raise ValueError("tune.trials=0: nothing to search; give the number of trials, e.g. tune.trials=8")
    if not search_space(cfg):
        raise ValueError(f"{name}: this model has nothing to search (a clinical score, or a tune.space part that "
                         "is empty or null)")
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    configure_threads(cfg)
    out = output_dir(cfg)
    check_writable_dir(out)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    client, exp_id = connect(cfg.logger)
    tags = {**trial_tags(cfg, cohort), "study_level": "tuning", "manifest_hash": cohort.manifest_hash,
            "split_hash": cohort.split_hash}
    run_id = create_run(client, exp_id, f"tune:{name}", tags, run_params(cfg, cohort, feats))
    status = "FAILED"
    try:
        with sigterm_as_interrupt(), heartbeat(client, run_id):
            _, result, files = tune_job(cfg, cohort, feats, client, exp_id, run_id, out, name)
        files.append(write_source(out / "tuning" / "chosen.yaml", result, cohort, run_id))
        log_params(client, run_id, result.params())
        log_metrics(client, run_id, result.metrics())
        artifacts.log_files(client, run_id, files, "tuning")
        artifacts.mark_outputs_logged(client, run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        set_status(client, run_id, status)
    command = ["liver-mm", "train", *[o for o in task_overrides(cfg) if not o.startswith(("tune.", "arm="))]]
    if (cfg.get("study") or {}).get("arm"):
        command.append(f"+arm={cfg.study.arm}")
    print(f"\nChosen settings ({name}, trial {result.chosen.number} of {len(result.trials)}, objective "
          f"{result.chosen.objective:.4f} on the dev split; the test split was not used):\n  "
          + "\n  ".join(result.overrides)
          + f"\nTrain with them:\n  {shlex.join([*command, *result.overrides])}\nTrials: {out / 'tuning' / 'trials.csv'}"
          f" (MLflow run {run_id})\nTuned on the train and dev rows of split sha256 {cohort.split_hash[:12]} "
          f"(manifest sha256 {cohort.manifest_hash[:12]}): use them only on this split. A cross-validated study "
          "(or another split) of this cohort tests on rows this search saw; its report warns. Tune inside its "
          "folds instead (liver-mm study tune.trials=N cv.folds=K).")
    return result


def write_source(path: Path, result: TuneResult, cohort, run_id: str) -> Path:
    """``tuning/chosen.yaml``: the chosen settings (Hydra overrides) and where they came from (the tune run, the
    cohort's manifest and split hashes, the objective)."""
    import yaml

    from liver_mm.training.tune_space import OBJECTIVE

    record = {"overrides": list(result.overrides), "tune_run": run_id, "manifest_hash": cohort.manifest_hash,
              "split_hash": cohort.split_hash, "tuned_on": "the split's train and dev rows", "objective": OBJECTIVE,
              "trial": result.chosen.number, "trials": len(result.trials)}
    path.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    return path
