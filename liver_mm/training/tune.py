"""The nested search: hydra-optuna-sweeper trials on a training job's own train and dev rows, never its test rows.

:func:`run_search` runs a Hydra multirun in this process with ``hydra/sweeper=optuna`` whose primary config is the
job's own config (stored in Hydra's ConfigStore) and whose ``hydra.sweeper.params`` are the run's search space
(:mod:`liver_mm.training.tune_space`). Each trial is a Hydra job: it trains the job's model with the trial's settings
on the ``train`` rows of :func:`training_part` (the job's cohort with its test rows dropped, inputs too) and returns
its score on the ``dev`` rows at the epoch rule the final model uses (:mod:`liver_mm.training.tune_score`: for a
network that keeps its best dev epoch, the epoch is picked on one half of the dev rows and scored on the other),
which the sampler (TPE or random, seeded) maximises. Every trial is an MLflow run nested under the job's run (tag
``mlflow.parentRunId``), with its settings as params and metrics ``objective``, ``kept_dev_auc`` (the dev AUC of the
model it keeps, as the final fit would select it), ``kept_epoch`` and ``dev_log_loss``. The job then trains once more
with the chosen settings (:func:`tune_job`) and is evaluated on its test rows as without tuning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.training.tune_space import OBJECTIVE, apply_overrides, search_space, setting_name, trials

log = logging.getLogger(__name__)
#: the ConfigStore entry holding the job's config while its trials run
SWEEP_CONFIG = "liver_mm_tune_job"
#: the part a trial trains on and the part it is scored on
TRIAL_SPLITS = ("train", "dev")


@dataclass(frozen=True)
class Trial:
    """One trial: its number, its settings (config key -> value as the sweeper set it), its objective (what the
    sampler maximised), the dev AUC and log loss of the model it keeps, the kept epoch (1-based; None without
    epochs) and its MLflow run."""

    number: int
    settings: dict[str, str]
    objective: float
    dev_auc: float
    dev_log_loss: float
    run_id: str
    epoch: int | None = None


@dataclass(frozen=True)
class TuneResult:
    """Every trial in order and the chosen one (the sweeper's best: the first with the highest objective)."""

    trials: tuple[Trial, ...]
    chosen: Trial
    overrides: tuple[str, ...]  # the chosen settings as Hydra overrides (``key=value``)

    def table(self) -> pd.DataFrame:
        """One row per trial: trial, objective, kept_dev_auc, kept_epoch, dev_log_loss, chosen, run_id, then each
        setting."""
        rows = [{"trial": t.number, "objective": t.objective, "kept_dev_auc": t.dev_auc, "kept_epoch": t.epoch,
                 "dev_log_loss": t.dev_log_loss, "chosen": t.number == self.chosen.number, "run_id": t.run_id,
                 **t.settings} for t in self.trials]
        return pd.DataFrame(rows)

    def metrics(self) -> dict[str, float]:
        """The job run's metrics of the search: the chosen trial's objective and kept dev AUC, the trials run."""
        return {"tune_best_objective": self.chosen.objective, "tune_best_dev_auc": self.chosen.dev_auc,
                "tune_trials": len(self.trials)}

    def params(self) -> dict[str, str]:
        """The job run's record of the choice: ``tune.chosen.<setting>`` -> value."""
        return {f"tune.chosen.{k}": v for k, v in self.chosen.settings.items()}


def training_part(cohort: PreparedCohort, feats: Features) -> tuple[PreparedCohort, Features]:
    """The cohort and inputs of a trial: the job's ``train`` and ``dev`` rows only (test rows, their labels and
    crops are not passed on), in cohort order. ValueError when the dev rows cannot score a trial."""
    keep = cohort.df["split"].isin(TRIAL_SPLITS).to_numpy()
    df = cohort.df.loc[keep].reset_index(drop=True)
    dev = df.loc[df["split"] == "dev", "label"]
    if (df["split"] == "train").sum() == 0 or dev.nunique() < 2:
        raise ValueError(f"tuning needs train rows and dev rows of both classes; this job's dev part has "
                         f"{len(dev)} rows of {dev.nunique()} class(es)")
    part = Features(None if feats.images is None else feats.images[keep], feats.tabular[keep], feats.labels[keep],
                    feats.preprocessor, feats.crop_key)
    return replace(cohort, df=df, split_hash=f"{cohort.split_hash}-tuning"), part


class _TrialTask:
    """The Hydra task of every trial (the sweeper calls it with the trial's composed config)."""

    def __init__(self, cohort: PreparedCohort, feats: Features, client, exp_id: str, parent_id: str,
                 tags: dict[str, str], name: str) -> None:
        self.cohort, self.feats = cohort, feats
        self.client, self.exp_id, self.parent_id, self.tags, self.name = client, exp_id, parent_id, tags, name
        self.dev = (cohort.df["split"] == "dev").to_numpy()
        self.records: list[Trial] = []
        self.halves: np.ndarray | None = None  # the dev halves of the epoch rule (a network keeping its best epoch)

    def __call__(self, cfg: DictConfig) -> float:
        import pytorch_lightning as pl
        from hydra.core.hydra_config import HydraConfig
        from sklearn.metrics import log_loss, roc_auc_score

        from liver_mm.tracking.epochs import EpochMetricsToMlflow
        from liver_mm.tracking.runs import create_run, log_metrics, set_status
        from liver_mm.training.estimators import estimator_for
        from liver_mm.training.tune_score import DevEpochProbs

        hydra = HydraConfig.get()
        number = int(hydra.job.num)
        settings = {setting_name(o.split("=", 1)[0]): o.split("=", 1)[1] for o in hydra.overrides.task}
        tags = {**self.tags, "mlflow.parentRunId": self.parent_id, "tune_trial": str(number)}
        run_id = create_run(self.client, self.exp_id, f"{self.name} trial {number}", tags, settings)
        status = "FAILED"
        try:
            pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # every trial starts as the job would
            estimator = estimator_for(cfg)
            probe = DevEpochProbs() if estimator.has_network else None
            fitted = estimator.fit(self.cohort, self.feats,
                                   callbacks=[EpochMetricsToMlflow(self.client, run_id), *([probe] if probe else [])])
            assert fitted is not None
            y, prob = self.feats.labels[self.dev], fitted.probs  # probs: the dev rows (a trial has no test rows)
            if not np.isfinite(prob).all() or (probe and not all(np.isfinite(p).all() for p in probe.epochs)):
                raise ValueError(f"{self.name} trial {number} ({' '.join(hydra.overrides.task)}): non-finite dev "
                                 "predictions (the training diverged); narrow tune.space")
            auc = float(roc_auc_score(y, prob))
            loss = float(log_loss(y, np.clip(prob, 1e-7, 1 - 1e-7), labels=[0, 1]))
            objective, epoch = self._objective(cfg, probe, y, auc)
            log_metrics(self.client, run_id, {"objective": objective, "kept_dev_auc": auc, "dev_log_loss": loss,
                                              **({} if epoch is None else {"kept_epoch": epoch})})
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            set_status(self.client, run_id, status)
        self.records.append(Trial(number, settings, objective, auc, loss, run_id, epoch))
        log.info("%s trial %d: objective %.4f, kept dev AUC %.4f (%s)", self.name, number, objective, auc,
                 " ".join(f"{k}={v}" for k, v in settings.items()))
        return objective

    def _objective(self, cfg: DictConfig, probe, y: np.ndarray, kept_auc: float) -> tuple[float, int | None]:
        """(objective, kept epoch 1-based or None): the dev AUC at the final model's epoch rule
        (:mod:`liver_mm.training.tune_score`)."""
        from liver_mm.training.tune_score import best_epoch, dev_halves, epoch_rule_score

        if probe is None:
            return kept_auc, None
        if not probe.epochs or probe.labels is None or not np.array_equal(probe.labels, y):
            raise RuntimeError(f"{self.name}: the trial's dev predictions per epoch do not match its dev rows")
        everything = np.ones(len(y), dtype=bool)
        if not picks_best_epoch(cfg):
            return kept_auc, len(probe.epochs)  # the last epoch: nothing picked, nothing to correct
        if self.halves is None:
            self.halves = dev_halves(self.cohort.df.loc[self.dev], y, int(cfg.tune.seed))
        return epoch_rule_score(probe.epochs, y, self.halves), best_epoch(probe.epochs, y, everything) + 1


def _sweep_node(cfg: DictConfig, out: Path) -> dict:
    """The job's config as the primary config of a multirun with the Optuna sweeper over its search space."""
    from liver_mm.training.devices import resolve_devices

    job = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(job, dict)
    job.pop("hydra", None)
    job["trainer"]["devices"] = resolve_devices(cfg.trainer.get("devices", 1))  # the job's GPU, not the trial's
    tune = cfg.tune
    overrides = [{"override hydra/sweeper": "optuna"}, {"override hydra/sweeper/sampler": str(tune.sampler)},
                 {"override hydra/launcher": "basic"}, {"override hydra/job_logging": "none"},
                 {"override hydra/hydra_logging": "none"}]
    sweeper = {"direction": "maximize", "n_trials": trials(cfg), "n_jobs": 1, "max_failure_rate": 0.0,
               "sampler": {"seed": int(tune.seed)}, "params": search_space(cfg)}
    return {"defaults": ["_self_", *overrides], **job,
            "hydra": {"mode": "MULTIRUN", "output_subdir": None, "job": {"chdir": False},
                      "sweep": {"dir": str(out), "subdir": "."}, "sweeper": sweeper}}


def _multirun(config_name: str, task) -> None:
    """Hydra's multirun of ``config_name`` in this process (inside a Hydra job its own Hydra is reused; Hydra
    restores the job's HydraConfig after each trial)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().hydra.multirun(config_name, task, [], with_log_configuration=False)
        return
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        GlobalHydra.instance().hydra.multirun(config_name, task, [], with_log_configuration=False)


def picks_best_epoch(cfg: DictConfig) -> bool:
    """True when the job's model is a network that keeps its best dev epoch (``checkpoint.select=best``)."""
    from liver_mm.training.estimators import estimator_for

    return estimator_for(cfg).has_network and str((cfg.get("checkpoint") or {}).get("select", "best")) == "best"


def trial_tags(cfg: DictConfig, cohort: PreparedCohort) -> dict[str, str]:
    """Tags of a trial run (no study key: the study's registry never mistakes a trial for a job)."""
    from liver_mm.training.estimators import estimator_for

    study = cfg.get("study") or {}
    tags = {"study_level": "tuning_trial", "tune_objective": OBJECTIVE, "modalities": str(cfg.modalities.name),
            "model_kind": estimator_for(cfg).kind, "synthetic": str(bool(cohort.synthetic)).lower()}
    tags.update({k: str(study[k]) for k in ("arm", "repeat", "fold") if study.get(k) is not None})
    if study.get("name"):
        tags["study"] = str(study["name"])
    return tags


def run_search(cfg: DictConfig, cohort: PreparedCohort, feats: Features, client, exp_id: str, parent_id: str,
               out: Path, name: str) -> TuneResult:
    """Run ``tune.trials`` trials of the sweeper on :func:`training_part` of ``cohort``; their runs are nested under
    ``parent_id``; the sweeper's files go to ``out`` (``optimization_results.yaml``)."""
    import optuna
    from hydra.core.config_store import ConfigStore

    from liver_mm.training.tune_score import dev_halves

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweeper logs the study; optuna's own lines repeat it
    part_cohort, part_feats = training_part(cohort, feats)
    task = _TrialTask(part_cohort, part_feats, client, exp_id, parent_id, trial_tags(cfg, cohort), name)
    if picks_best_epoch(cfg):  # the halves that score the epoch rule, checked before any trial trains
        task.halves = dev_halves(part_cohort.df.loc[task.dev], part_feats.labels[task.dev], int(cfg.tune.seed))
    out.mkdir(parents=True, exist_ok=True)
    ConfigStore.instance().store(name=SWEEP_CONFIG, node=_sweep_node(cfg, out))
    log.info("%s: tuning with %d trials on %d train / %d dev rows (objective: dev AUC at the epoch rule)", name,
             trials(cfg),
             int((part_cohort.df["split"] == "train").sum()), int(task.dev.sum()))
    _multirun(SWEEP_CONFIG, task)
    return _chosen(task.records, out / "optimization_results.yaml")


def _chosen(records: Sequence[Trial], results: Path) -> TuneResult:
    """The trial the sweeper reports best (``optimization_results.yaml``), found among the trials run."""
    best = OmegaConf.load(results)
    overrides = tuple(f"{k}={v}" for k, v in best.best_params.items())
    wanted = {setting_name(o.split("=", 1)[0]): o.split("=", 1)[1] for o in overrides}
    match = [t for t in records if t.settings == wanted and t.objective == float(best.best_value)]
    if not match:
        raise RuntimeError(f"{results}: the sweeper's best settings {wanted} are none of the trials run")
    return TuneResult(tuple(records), match[0], overrides)


def tune_job(cfg: DictConfig, cohort: PreparedCohort, feats: Features, client, exp_id: str, run_id: str,
             out: Path, name: str) -> tuple[DictConfig, TuneResult, list[Path]]:
    """Search, then (config with the chosen settings, the search, files written: ``out/tuning/trials.csv`` and the
    sweeper's ``optimization_results.yaml``). The global seed is reset, so the job's training that follows is the
    chosen trial's training again."""
    import pytorch_lightning as pl

    folder = out / "tuning"
    result = run_search(cfg, cohort, feats, client, exp_id, run_id, folder, name)
    tuned = apply_overrides(cfg, list(result.overrides))
    result.table().to_csv(folder / "trials.csv", index=False)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    log.info("%s: chosen settings (trial %d of %d): %s", name, result.chosen.number, len(result.trials),
             " ".join(result.overrides))
    return tuned, result, [folder / "trials.csv", folder / "optimization_results.yaml"]
