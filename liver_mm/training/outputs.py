"""What one run writes to its output folder: predictions, figures, config, preprocessing, metrics, bundle.

Everything is written here first and logged from here, so nothing exists only in MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.figures import (
    confusion_figure,
    decision_curve_figure,
    reliability_figure,
    roc_figure,
    roc_label,
)
from liver_mm.models.spec import net_config
from liver_mm.stats import net_benefit, reliability_curve
from liver_mm.training.evaluate import split_arrays


def run_name(cfg: DictConfig, synthetic: bool) -> str:
    """The arm (in a study) or modality set, with "[synthetic]" for a synthetic cohort (heads every figure)."""
    name = str((cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    return name + (" [synthetic]" if synthetic else "")


def save_run_figures(pred: pd.DataFrame, metrics: dict[str, float], name: str, out: Path) -> list[Path]:
    """roc.png (test, AUC and DeLong CI in the legend), confusion_matrix.png, calibration.png (LOESS
    reliability curve with its bootstrap band over a histogram of the predictions), decision_curve.png
    and decision_curve.csv (net benefit of the model, treat-all and treat-none, thresholds 0.01-0.99)."""
    import matplotlib.pyplot as plt

    y, p = split_arrays(pred, "test")
    thr = metrics["threshold"]
    label = roc_label(name, metrics["test_auc"], metrics["test_auc_ci_low"], metrics["test_auc_ci_high"])
    dca = net_benefit(y, p)
    dca.insert(0, "arm", name.removesuffix(" [synthetic]"))
    dca.to_csv(out / "decision_curve.csv", index=False)
    figs = {
        "roc.png": roc_figure(y, p, label, title=f"{name}: ROC on the test split (n={len(y)})"),
        "confusion_matrix.png": confusion_figure(y, (p >= thr).astype(int),
                                                 f"{name}: test, threshold {thr:.3f} (dev Youden)"),
        "decision_curve.png": decision_curve_figure({name: dca}, title=f"{name}: decision curve (test, n={len(y)})"),
    }
    if np.ptp(p) > 0:  # a constant prediction (a degenerate CV fold) has no reliability curve
        figs["calibration.png"] = reliability_figure(
            {name: (p, reliability_curve(y, p))},
            title=f"{name}: calibration on the test split (Brier {metrics['test_brier']:.3f}, intercept "
                  f"{metrics['test_cal_intercept']:.2f}, slope {metrics['test_cal_slope']:.2f})")
    paths = [out / "decision_curve.csv"]
    for fname, fig in figs.items():
        fig.savefig(out / fname)
        plt.close(fig)
        paths.append(out / fname)
    return paths


def model_spec(cfg: DictConfig, feats: Features, metrics: dict[str, float], synthetic: bool) -> dict[str, Any]:
    """Everything needed to apply the network to new cases (JSON-safe)."""
    return {
        "net": net_config(cfg.model.net, bool(cfg.modalities.image), feats.preprocessor.n_features_out),
        "modalities": OmegaConf.to_container(cfg.modalities, resolve=True),
        "use_image": bool(cfg.modalities.image),
        "features": list(cfg.modalities.features),
        "image_size": int(cfg.image_size),
        "margin": float(cfg.crop.margin),
        "threshold": float(metrics["threshold"]),
        "units": dict(cfg.data.get("units") or {}),
        "synthetic": bool(synthetic),
    }


def write_run_files(cfg: DictConfig, cohort: PreparedCohort, feats: Features, pred: pd.DataFrame,
                    metrics: dict[str, float], out: Path) -> list[Path]:
    """predictions.csv, config.yaml, preprocessing.json, metrics.json and the figures in ``out``."""
    pred.to_csv(out / "predictions.csv", index=False)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    (out / "preprocessing.json").write_text(json.dumps(feats.preprocessor.to_dict(), indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    files = [out / "predictions.csv", out / "config.yaml", out / "preprocessing.json", out / "metrics.json"]
    return files + save_run_figures(pred, metrics, run_name(cfg, cohort.synthetic), out)


def write_bundle(cfg: DictConfig, feats: Features, metrics: dict[str, float], synthetic: bool, net: Any,
                 out: Path) -> Path:
    """The trained network as a bundle (safetensors + JSON) in ``out/model_bundle``."""
    from liver_mm.serve.bundle import save_bundle

    return save_bundle(out / "model_bundle", net.eval(), model_spec(cfg, feats, metrics, synthetic),
                       feats.preprocessor.to_dict())
