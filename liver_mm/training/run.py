"""One ``liver-mm train`` run: checks -> cohort -> features -> fit -> evaluate -> files -> MLflow.

The run is created in MLflow before training, marked FINISHED only when everything is logged,
KILLED when interrupted (Ctrl-C, SIGINT, SIGTERM) and FAILED otherwise; every file it logs is also
kept in the run's output folder.
"""

from __future__ import annotations

import logging
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort, prepare_cohort
from liver_mm.features.inputs import Features, build_features
from liver_mm.fileio import check_writable_dir
from liver_mm.pretrain.study import apply_pretraining, image_init
from liver_mm.training import fit
from liver_mm.training.checks import check_settings
from liver_mm.training.estimators import Estimator, estimator_for
from liver_mm.training.evaluate import run_metrics
from liver_mm.training.outputs import write_run_files
from liver_mm.training.tune_space import search_space, setting_name, tuning_on

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    predictions: pd.DataFrame
    output_dir: Path


def output_dir(cfg: DictConfig) -> Path:
    """Hydra's run folder when running under Hydra, else a fresh temporary folder."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(tempfile.mkdtemp(prefix="liver-mm-run-"))


def process_rank() -> int:
    """Global rank of this process as Lightning's launchers set it (0 outside distributed runs)."""
    from pytorch_lightning.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def configure_threads(cfg: DictConfig) -> int:
    """Set and return the intra-op threads: ``trainer.num_threads``, or (null) this process's share of the
    cores it can use divided among the jobs running side by side (``free``: minus cores busy at start)."""
    import torch

    from liver_mm.runtime import threads_per_process
    from liver_mm.training.devices import concurrent_jobs

    n = cfg.trainer.get("num_threads")
    if not n or str(n) == "free":  # free: also leave out the cores other work keeps busy at start
        n = threads_per_process(concurrent_jobs(cfg), busy=None if n == "free" else 0.0)
    torch.set_num_threads(int(n))
    return int(n)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While training, SIGTERM (a scheduler's or ``kill``'s stop) ends the run like Ctrl-C: KILLED."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_tags(cfg: DictConfig, cohort: PreparedCohort) -> dict[str, str]:
    """Tags of a training run (never a patient identifier)."""
    study = cfg.get("study") or {}
    tags = {"modalities": str(cfg.modalities.name), "model_kind": estimator_for(cfg).kind,
            "synthetic": str(bool(cohort.synthetic)).lower(), "data_kind": str(cfg.data.kind),
            "manifest_hash": cohort.manifest_hash, "split_hash": cohort.split_hash,
            "selection_metric": "dev_auc"}
    if cohort.content_hash:
        tags["content_hash"] = cohort.content_hash  # the bytes of the images and masks the cohort uses
    for key, tag in (("name", "study"), ("arm", "arm"), ("parent_run_id", "mlflow.parentRunId"),
                     ("key", "study_key"), ("arm_key", "arm_key"), ("level", "study_level"), ("repeat", "repeat"),
                     ("fold", "fold")):
        if study.get(key) is not None and study.get(key) != "":
            tags[tag] = str(study[key])
    if image_init(cfg):
        tags["image_init"] = str(image_init(cfg))
    if study.get("key"):
        tags["is_study_parent"] = "false"
        tags.setdefault("study_level", "arm")
    return tags


def built_fusion(cfg: DictConfig, feats: Features, estimator: Estimator | None = None) -> dict[str, str]:
    """The fusion params a run logs: the network actually built (``concat`` when one branch is missing), with the
    requested name beside it when it differs; none for a model without a network (a fusion is never built)."""
    if not (estimator or estimator_for(cfg)).has_network:
        return {}
    from liver_mm.models import effective_fusion

    requested = str(cfg.model.net.get("fusion") or "concat")
    built = effective_fusion(requested, bool(cfg.modalities.image), feats.preprocessor.n_features_out > 0)
    out = {"model.net.fusion": built, "fusion.name": built}
    if built != requested:
        out["fusion.requested"] = requested
    return out


def run_params(cfg: DictConfig, cohort: PreparedCohort, feats: Features) -> dict[str, object]:
    """The params of a training run: its flattened resolved config, the cohort's hashes, the fusion built."""
    from liver_mm.tracking.runs import flatten

    params = flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    params.update(manifest_hash=cohort.manifest_hash, split_hash=cohort.split_hash, crop_cache_key=str(feats.crop_key))
    estimator = estimator_for(cfg)
    if not estimator.has_network:  # no fusion is built
        params = {k: v for k, v in params.items() if not k.startswith("fusion.")}
    params.update(built_fusion(cfg, feats, estimator))
    params = {k: v for k, v in params.items() if not k.startswith("tune.space.")}  # every kind's: only its own
    if tuning_on(cfg):
        params.update({f"tune.space.{setting_name(k)}": v for k, v in search_space(cfg).items()})
    return params


def _writable_places(cfg: DictConfig, out: Path) -> list[Path]:
    places = [out, Path(str(cfg.cache_dir))]
    if cfg.logger.get("artifact_root"):
        places.append(Path(str(cfg.logger.artifact_root)))
    return places


def train(cfg: DictConfig, cohort: PreparedCohort | None = None, out: Path | None = None) -> TrainResult | None:
    """Train and evaluate one model; returns None on non-zero DDP ranks.

    ``cohort``: an already prepared cohort whose ``split`` column says train/dev/test (a
    cross-validation fold); by default the config's cohort and split. ``out``: the run's output
    folder (default: Hydra's job folder, or a temporary one).
    """
    import pytorch_lightning as pl

    check_settings(cfg)
    estimator = estimator_for(cfg)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    configure_threads(cfg)
    out = out or output_dir(cfg)
    for place in _writable_places(cfg, out):
        check_writable_dir(place)
    if cohort is None:
        cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    started = apply_pretraining(cfg, cohort, feats.images)  # pretrain.enabled: the image encoder's start (cached)
    if started is not cfg:
        cfg, estimator = started, estimator_for(started)
    if process_rank() != 0:  # a DDP worker started by Lightning's launcher: rank 0 owns the MLflow run
        estimator.fit(cohort, feats)
        return None
    return _tracked_fit(cfg, estimator, cohort, feats, out)


def _tracked_fit(cfg: DictConfig, estimator: Estimator, cohort: PreparedCohort, feats: Features,
                 out: Path) -> TrainResult:
    from liver_mm.tracking import artifacts
    from liver_mm.tracking.epochs import EpochMetricsToMlflow
    from liver_mm.tracking.owner import start_heartbeat
    from liver_mm.tracking.runs import create_run, last_step, log_metrics, log_params, set_status
    from liver_mm.tracking.store import connect
    from liver_mm.training.tune import tune_job

    client, exp_id = connect(cfg.logger)
    name = str((cfg.get("study") or {}).get("run_name") or (cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    tuned = tuning_on(cfg)  # the config's params are logged once the search has chosen the settings
    import torch

    tags = {**run_tags(cfg, cohort), "intra_op_threads": str(torch.get_num_threads())}  # as configure_threads set
    run_id = create_run(client, exp_id, name, tags, {} if tuned else run_params(cfg, cohort, feats))
    stop_beating = start_heartbeat(client, run_id)  # the run's whole life: fit, metrics, explanations, model, files
    status = "FAILED"
    try:
        with sigterm_as_interrupt():
            tuning_files: list[Path] = []
            if tuned:  # trials on the train and dev rows only, nested under this run; then the chosen settings
                cfg, search, tuning_files = tune_job(cfg, cohort, feats, client, exp_id, run_id, out, name)
                estimator = estimator_for(cfg)
                log_params(client, run_id, {**run_params(cfg, cohort, feats), **search.params()})
                log_metrics(client, run_id, search.metrics())
            result = estimator.fit(cohort, feats, callbacks=[EpochMetricsToMlflow(client, run_id)])
            assert result is not None  # only rank 0 gets here
        client.set_tag(run_id, "world_size", str(result.world_size))
        pred = cohort.df.loc[cohort.df["split"].isin(fit.EVAL_SPLITS), ["case_id", "split", "label"]].copy()
        pred["prob"] = result.probs
        estimator.add_outputs(result, pred)  # a score's raw value beside its probability
        pred = pred.reset_index(drop=True)
        metrics = run_metrics(pred, allow_degenerate=(cfg.get("study") or {}).get("level") == "fold")
        estimator.add_outputs(result, pred, metrics)  # a score's published cut-offs beside the dev-Youden threshold
        files = write_run_files(cfg, cohort, feats, pred, metrics, out) + estimator.write_files(result, out)
        explained = estimator.explain(cohort, feats, result, metrics["threshold"], out)
        log_metrics(client, run_id, metrics, step=last_step(client, run_id, "dev_auc"))
        artifacts.log_files(client, run_id, files)
        artifacts.log_files(client, run_id, tuning_files, "tuning")
        # the per-case overlays (named by case_id) stay in the run folder; the montage and tables are logged
        artifacts.log_files(client, run_id, [p for p in explained if p.parent == out / "explain"], "explain")
        artifacts.log_files(client, run_id, [p for p in explained if p.parent == out / "explain" / "gallery"],
                            "explain/gallery")  # the gallery's pictures, named by rank
        estimator.log_model(client, run_id, result, feats, metrics, cohort.synthetic, out)
        artifacts.mark_outputs_logged(client, run_id)
        status = "FINISHED"
        log.info("run %s: test AUC %.3f (%.3f-%.3f)", run_id, metrics["test_auc"], metrics["test_auc_ci_low"],
                 metrics["test_auc_ci_high"])
        return TrainResult(run_id, metrics, pred, out)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        set_status(client, run_id, status)
        stop_beating()
