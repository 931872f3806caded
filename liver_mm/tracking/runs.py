"""One tracked run: creation with tags and params, metrics, status; provenance of the code that ran.

Params and tags never carry a patient identifier: they come from the resolved config, the
cohort's hashes and the software versions only (no manifest column is ever logged).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

import liver_mm

_MAX_PARAM_LEN = 6000
#: seconds between two heartbeats of a run being trained (tag ``owner_heartbeat``, unix time)
HEARTBEAT_S = 60.0
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


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc): with the pid and host it names one
    process even after the pid is reused; None when unknown (no /proc) or the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return None if fields[0] in ("Z", "X") else fields[19]


def owner_tags() -> dict[str, str]:
    """Tags naming the process that creates (and owns) a run: pid, host, start time and a first heartbeat; in a
    SLURM job also its id (``slurm_job_id``: ``scancel`` / ``sacct`` it)."""
    tags = {"owner_pid": str(os.getpid()), "owner_host": socket.gethostname(), "owner_heartbeat": str(time.time())}
    start = process_start(os.getpid())
    if start is not None:
        tags["owner_start"] = start
    job = slurm_job_id()
    if job:
        tags["slurm_job_id"] = job
    return tags


def slurm_job_id() -> str | None:
    """This process's SLURM job as ``scancel`` and ``sacct`` name it: ``ARRAYID_TASK`` for a task of a job array
    (its raw id is refused by scancel), else ``$SLURM_JOB_ID``; None outside SLURM."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


@contextmanager
def heartbeat(client: MlflowClient, run_id: str, every: float = HEARTBEAT_S) -> Iterator[None]:
    """While the block runs, a thread sets the run's ``owner_heartbeat`` tag every ``every`` seconds: a study on
    another host then tells a run being trained from one whose process died (a stale heartbeat)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                client.set_tag(run_id, "owner_heartbeat", str(time.time()))
            except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the training
                log.debug("heartbeat of run %s failed: %s", run_id, exc)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


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
