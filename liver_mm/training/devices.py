"""Where a run of a study executes: its share of the cores and, for ``trainer.devices=auto-per-job``, its GPU.

A Hydra launcher that runs jobs side by side (joblib: ``hydra.launcher.n_jobs``) shares one machine among
them; each job reads how many run at once from its own Hydra config (``hydra.launcher``, ``hydra.job.num``).
Outside Hydra: ``LIVER_MM_CONCURRENT_JOBS`` (see :mod:`liver_mm.runtime`), else one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from liver_mm.runtime import available_cores, env_jobs

PER_JOB = "auto-per-job"


def _hydra() -> Any | None:
    """This process's Hydra config (``hydra`` node), or None outside a Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:
        return None
    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_size(cfg: DictConfig | Mapping) -> int | None:
    """Jobs of a ``liver-mm study`` sweep: arms x (K x R cross-validation jobs, or 1); None for a lone run."""
    study = cfg.get("study") or {}
    arms = study.get("arms")
    if not arms or not study.get("arm"):
        return None
    cv = cfg.get("cv") or {}
    folds = cv.get("folds")
    per_arm = int(folds) * max(1, int(cv.get("repeats") or 1)) if folds is not None and int(folds) >= 2 else 1
    return len(arms) * per_arm


def launcher_jobs(launcher: Mapping | None, cores: int | None = None) -> int:
    """Processes a Hydra launcher runs at once: joblib's ``n_jobs`` (negative: joblib's cores + 1 + n_jobs);
    1 for launchers that run one job at a time here (basic) or each on its own allocation (submitit)."""
    if not launcher or "n_jobs" not in launcher or launcher.get("n_jobs") is None:
        return 1
    n = int(launcher["n_jobs"])
    if n < 0:
        n = (cores or available_cores()) + 1 + n
    return max(1, n)


def concurrent_jobs(cfg: DictConfig | Mapping) -> int:
    """Processes sharing this machine with this run: ``LIVER_MM_CONCURRENT_JOBS`` if set, else the Hydra
    launcher's parallelism capped by the sweep's job count, else 1."""
    env = env_jobs()
    if env is not None:
        return env
    hydra = _hydra()
    jobs = launcher_jobs(None if hydra is None else hydra.get("launcher"))
    size = sweep_size(cfg)
    return max(1, min(jobs, size) if size else jobs)


def job_index() -> int:
    """This job's number in its Hydra sweep (``hydra.job.num``); 0 outside a sweep."""
    hydra = _hydra()
    num = None if hydra is None else hydra.job.get("num")
    return int(num) if num is not None else 0


def visible_gpus() -> int:
    """CUDA devices this process sees (``CUDA_VISIBLE_DEVICES`` applies)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def per_job_devices(index: int, n_gpus: int) -> list[int] | int:
    """``trainer.devices=auto-per-job``: job ``index`` trains on GPU ``index mod n_gpus`` ([i]); 1 without GPUs."""
    return [index % n_gpus] if n_gpus > 0 else 1


def resolve_devices(devices: Any) -> Any:
    """``trainer.devices`` as Lightning takes it; ``auto-per-job`` becomes this job's GPU."""
    if str(devices) != PER_JOB:
        return devices
    return per_job_devices(job_index(), visible_gpus())

