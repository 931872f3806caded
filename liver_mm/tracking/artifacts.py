"""Files into a run: what a run writes to its output folder is logged from there (nothing exists only in MLflow)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mlflow.tracking import MlflowClient

from liver_mm.tracking.registry import OUTPUTS_LOGGED


def log_files(client: MlflowClient, run_id: str, files: Iterable[Path], subdir: str | None = None) -> None:
    """Log each file (at the artifact root, or under ``subdir``)."""
    for f in files:
        client.log_artifact(run_id, str(f), subdir)


def log_folder(client: MlflowClient, run_id: str, folder: Path, subdir: str | None = None) -> None:
    """Log a folder's content (at the artifact root, or under ``subdir``)."""
    client.log_artifacts(run_id, str(folder), subdir)


def mark_outputs_logged(client: MlflowClient, run_id: str) -> None:
    """The last write of a run: a resumed study trusts only runs carrying this tag."""
    client.set_tag(run_id, OUTPUTS_LOGGED, "true")
