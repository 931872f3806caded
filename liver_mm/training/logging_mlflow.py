"""What one training run records in MLflow: params, tags, final metrics, files, models.

Files are written to the run's output folder first, then logged, so nothing exists only in
MLflow (or only on disk).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from liver_mm.figures import calibration_figure, confusion_figure, roc_figure, roc_label
from liver_mm.training.evaluate import split_arrays
from liver_mm.training.tracking import flatten, get_or_create_experiment, provenance, tracking_uri

if TYPE_CHECKING:
    from liver_mm.training.cohort import PreparedCohort
    from liver_mm.training.run import Features

log = logging.getLogger(__name__)


def run_tags(cfg: DictConfig, cohort: PreparedCohort) -> dict[str, str]:
    tags = {
        "modalities": str(cfg.modalities.name),
        "model_kind": str(cfg.model.kind),
        "synthetic": str(bool(cohort.synthetic)).lower(),
        "data_kind": str(cfg.data.kind),
        "manifest_hash": cohort.manifest_hash,
        "split_hash": cohort.split_hash,
    }
    study = cfg.get("study") or {}
    if study.get("name"):
        tags["study"] = str(study["name"])
    if study.get("arm"):
        tags["arm"] = str(study["arm"])
    if study.get("parent_run_id"):
        tags["mlflow.parentRunId"] = str(study["parent_run_id"])
    if study.get("key"):
        tags["study_key"] = str(study["key"])
        tags["is_study_parent"] = "false"
    return tags


def open_run(cfg: DictConfig, cohort: PreparedCohort, crop_key: str | None = None) -> tuple[MlflowClient, str]:
    """Create the run (status RUNNING) with its tags and params; returns (client, run_id)."""
    client = MlflowClient(tracking_uri(cfg.logger.tracking_uri))
    exp_id = get_or_create_experiment(client, str(cfg.logger.experiment_name), cfg.logger.get("artifact_root"))
    tags = run_tags(cfg, cohort)
    name = str((cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    run = client.create_run(exp_id, tags=tags, run_name=name)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = flatten(resolved)  # type: ignore[arg-type]
    params.update(manifest_hash=cohort.manifest_hash, split_hash=cohort.split_hash, crop_cache_key=str(crop_key))
    params.update(provenance())
    items = [Param(k, v) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[i : i + 100], synchronous=True)
    return client, run.info.run_id


def _last_step(client: MlflowClient, run_id: str) -> int:
    hist = client.get_metric_history(run_id, "dev_auc")
    return max((m.step for m in hist), default=0)


def write_figures(pred: pd.DataFrame, metrics: dict[str, float], name: str, out: Path) -> list[Path]:
    """roc.png (test, AUC and DeLong CI in the legend), confusion_matrix.png, calibration.png.

    ``name`` heads every figure (it carries "[synthetic]" for a synthetic cohort)."""
    import matplotlib.pyplot as plt

    y, p = split_arrays(pred, "test")
    label = roc_label(name, metrics["test_auc"], metrics["test_auc_ci_low"], metrics["test_auc_ci_high"])
    figs = {
        "roc.png": roc_figure(y, p, label, title=f"{name}: ROC on the test split (n={len(y)})"),
        "confusion_matrix.png": confusion_figure(
            y, (p >= metrics["threshold"]).astype(int), f"{name}: test, threshold {metrics['threshold']:.3f} (dev Youden)"
        ),
        "calibration.png": calibration_figure({name: (y, p)}, n_bins=min(10, max(2, len(y) // 10))),
    }
    paths = []
    for fname, fig in figs.items():
        fig.savefig(out / fname)
        plt.close(fig)
        paths.append(out / fname)
    return paths


def model_spec(cfg: DictConfig, feats: Features, metrics: dict[str, float], cohort: PreparedCohort) -> dict[str, Any]:
    """Everything needed to apply the model to new cases (JSON-safe)."""
    from liver_mm.training.fit import net_config

    return {
        "net": net_config(cfg, feats.preprocessor.n_features_out),
        "modalities": OmegaConf.to_container(cfg.modalities, resolve=True),
        "use_image": bool(cfg.modalities.image),
        "features": list(cfg.modalities.features),
        "image_size": int(cfg.image_size),
        "margin": float(cfg.crop.margin),
        "threshold": float(metrics["threshold"]),
        "units": dict(cfg.data.get("units") or {}),
        "synthetic": bool(cohort.synthetic),
    }


def save_model_bundle(cfg: DictConfig, cohort: PreparedCohort, feats: Features, metrics: dict[str, float],
                      module: Any, out: Path) -> Path:
    """The trained network as a bundle (safetensors + JSON) in ``out/model_bundle``."""
    from liver_mm.serve.bundle import save_bundle

    return save_bundle(out / "model_bundle", module.net.eval(), model_spec(cfg, feats, metrics, cohort),
                       feats.preprocessor.to_dict())


def log_models(cfg: DictConfig, cohort: PreparedCohort, feats: Features, fitted: Any, bundle: Path | None,
               run_id: str) -> None:
    """Log the model: a pyfunc ``model`` (preprocessing included) and the raw network ``torch_model``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(cfg.logger.tracking_uri))
    with mlflow.start_run(run_id=run_id):
        if cfg.model.kind == "sklearn":
            mlflow.sklearn.log_model(fitted, name="model", input_example=feats.tabular[:2],
                                     pip_requirements=["scikit-learn"])
            return
        import torch

        from liver_mm.models.packed import PackedInputClassifier
        from liver_mm.serve.pyfunc import log_pyfunc_model, pip_requirements

        net = fitted.net.eval()
        size = int(cfg.image_size) if cfg.modalities.image else None
        packed = PackedInputClassifier(net, size, feats.preprocessor.n_features_out).eval()
        idx = np.flatnonzero(cohort.df["split"].to_numpy() == "test")[:2]
        image = None if size is None else torch.from_numpy(feats.images[idx]).float().div(255).unsqueeze(1)
        example = packed.pack(image, torch.from_numpy(feats.tabular[idx])).numpy()
        mlflow.pytorch.log_model(packed, name="torch_model", input_example=example,
                                 pip_requirements=pip_requirements())
        log_pyfunc_model(bundle, name="model")


def log_run_outputs(client: MlflowClient, run_id: str, cfg: DictConfig, cohort: PreparedCohort, feats: Features,
                    pred: pd.DataFrame, metrics: dict[str, float], fitted: Any, out: Path) -> None:
    """Write predictions, figures, config and preprocessing to ``out`` and log them with the metrics."""
    name = str((cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    if cohort.synthetic:
        name += " [synthetic]"
    pred.to_csv(out / "predictions.csv", index=False)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    (out / "preprocessing.json").write_text(json.dumps(feats.preprocessor.to_dict(), indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    files = [out / "predictions.csv", out / "config.yaml", out / "preprocessing.json", out / "metrics.json"]
    files += write_figures(pred, metrics, name, out)
    step, now = _last_step(client, run_id), int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()], synchronous=True)
    bundle = None
    if cfg.model.kind != "sklearn":  # the weights are always kept, with or without logged MLflow models
        bundle = save_model_bundle(cfg, cohort, feats, metrics, fitted, out)
        client.log_artifacts(run_id, str(bundle), "model_bundle")
    for f in files:
        client.log_artifact(run_id, str(f))
    if cfg.logger.get("log_model", True):
        log_models(cfg, cohort, feats, fitted, bundle, run_id)
    client.set_tag(run_id, "outputs_logged", "true")  # last: a resumed study trusts only such runs
