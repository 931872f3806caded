"""Shared fixtures: one tiny synthetic cohort per test session, golden values path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# keep the 2-core CI machine responsive when several torch tests run
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(autouse=True)
def _isolated_mlflow_uri():
    """MLflow (and Lightning's logger) set a process-wide tracking URI: reset it after each test."""
    yield
    import mlflow

    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A 60-case synthetic cohort (manifest.csv + full-frame PNGs), made once per session.

    Treat it as read-only: copy it before changing anything.
    """
    from liver_mm.synth.cohort import generate_cohort

    out = tmp_path_factory.mktemp("tiny_cohort")
    return generate_cohort(out, n=60, seed=0, frame_size=(128, 160))
