"""One tracked run: creation with tags and params, metrics, status; provenance of the code that ran.

Params and tags never carry a patient identifier: they come from the resolved config, the
cohort's hashes and the software versions only (no manifest column is ever logged).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

import liver_mm
from liver_mm.tracking.owner import HEARTBEAT_S, heartbeat, owner_tags, slurm_job_id  # noqa: F401 - kept names

_MAX_PARAM_LEN = 6000
log = logging.getLogger(__name__)


def flatten(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested mapping -> ``{"a.b.c": value}`` (lists kept as values)."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def git_commit() -> str:
    """The source tree's git commit (``-dirty`` when tracked files are modified), or ``unknown``
    (an installed wheel has no git tree)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def provenance() -> dict[str, str]:
    """Package versions, the git commit and the CPU's vector instruction set torch's kernels use (``AVX512``,
    ``AVX2``, ...: CPU-trained floats, hence a study's numbers, differ between them), recorded with every run."""
    import pytorch_lightning
    import timm
    import torch

    return {"liver_mm_version": liver_mm.__version__, "git_commit": git_commit(),
            "torch_version": torch.__version__, "lightning_version": pytorch_lightning.__version__,
            "timm_version": timm.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, object]) -> None:
    """Log params (values as text, cut at MLflow's length limit); MLflow's log_batch splits the request."""
    items = [Param(k, str(v)[:_MAX_PARAM_LEN]) for k, v in sorted(params.items())]
    client.log_batch(run_id, params=items, synchronous=True)


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0,
                synchronous: bool = True) -> RunOperations | None:
    """Log metrics at ``step`` (MLflow stores NaN as is; its log_batch splits the request). With
    ``synchronous=False`` MLflow's logging thread writes them; wait on the returned operations."""
    now = int(time.time() * 1000)
    return client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
                            synchronous=synchronous)


def create_run(client: MlflowClient, exp_id: str, name: str, tags: Mapping[str, str],
               params: Mapping[str, object] = ()) -> str:
    """A RUNNING run with ``tags`` (plus :func:`owner_tags`) and ``params`` plus :func:`provenance`; returns its
    id."""
    run = client.create_run(exp_id, tags={**owner_tags(), **dict(tags)}, run_name=name)
    log_params(client, run.info.run_id, {**dict(params), **provenance()})
    return run.info.run_id


def last_step(client: MlflowClient, run_id: str, metric: str) -> int:
    """The largest step logged for ``metric`` (0 when none)."""
    return max((m.step for m in client.get_metric_history(run_id, metric)), default=0)


def set_status(client: MlflowClient, run_id: str, status: str) -> None:
    """FINISHED / FAILED / KILLED end the run; RUNNING reopens it."""
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")
    else:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.from_string(status)))


def existing_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    """The latest value of each metric of a run."""
    return dict(client.get_run(run_id).data.metrics)
