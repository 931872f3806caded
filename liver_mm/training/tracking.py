"""MLflow plumbing: where runs go, the experiment, and what a run records as params and tags.

MLflow's convention is honoured: ``$MLFLOW_TRACKING_URI`` wins; otherwise an embedded sqlite
store ``./mlflow.db`` with a file artifact root ``./mlartifacts`` (the file store is not used).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from mlflow.tracking import MlflowClient

import liver_mm

# params and tags must never carry patient identifiers; these config keys never hold any,
# and no manifest column is ever logged as a param.
_MAX_PARAM_LEN = 6000


def tracking_uri(configured: str | None = None) -> str:
    """An explicitly configured URI (``logger.tracking_uri``), else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<cwd>/mlflow.db`` (absolute)."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str(Path("mlflow.db").resolve())


def get_or_create_experiment(client: MlflowClient, name: str, artifact_root: str | None = None) -> str:
    """Experiment id of ``name``; a new experiment stores artifacts under ``artifact_root`` (a local folder)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if artifact_root and client.tracking_uri.startswith("sqlite:"):
        location = Path(artifact_root).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by a parallel child run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def flatten(cfg: Mapping, prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b.c": str(value)} (lists kept as their string form)."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = str(value)[:_MAX_PARAM_LEN]
    return out


def git_commit() -> str:
    """The source tree's git commit (with ``-dirty`` when modified), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def provenance() -> dict[str, str]:
    """Versions and commit recorded with every run."""
    import pytorch_lightning
    import timm
    import torch

    return {
        "liver_mm_version": liver_mm.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "lightning_version": pytorch_lightning.__version__,
        "timm_version": timm.__version__,
    }
