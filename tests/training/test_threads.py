"""Runs side by side share the cores (joblib launcher) and, with ``trainer.devices=auto-per-job``, the GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from liver_mm import runtime
from liver_mm.training import devices, fit
from liver_mm.training.run import configure_threads
from tests.training.conftest import compose_train


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_launcher_jobs():
    assert devices.launcher_jobs(None) == 1  # basic launcher / no Hydra: one at a time
    assert devices.launcher_jobs({"_target_": "hydra_plugins.submitit", "timeout_min": 5}) == 1
    assert devices.launcher_jobs({"n_jobs": 3}) == 3
    assert devices.launcher_jobs({"n_jobs": -1}, cores=8) == 8  # joblib: cores + 1 + n_jobs
    assert devices.launcher_jobs({"n_jobs": -2}, cores=8) == 7


def test_sweep_size_counts_arms_and_cv_jobs():
    study = {"arms": ["m1", "m2", "m5"], "arm": "m1"}
    assert devices.sweep_size({"study": study, "cv": {"folds": None, "repeats": 1}}) == 3
    assert devices.sweep_size({"study": study, "cv": {"folds": 5, "repeats": 2}}) == 30
    assert devices.sweep_size({"study": {"arms": None, "arm": None}}) is None  # a lone `liver-mm train`


def test_concurrent_jobs_is_capped_by_the_sweep(monkeypatch):
    monkeypatch.delenv(runtime.JOBS_ENV, raising=False)
    cfg = OmegaConf.create({"study": {"arms": ["m1", "m5"], "arm": "m1"}, "cv": {"folds": None}})
    monkeypatch.setattr(devices, "_hydra", lambda: OmegaConf.create({"launcher": {"n_jobs": 4}, "job": {"num": 1}}))
    assert devices.concurrent_jobs(cfg) == 2  # 4 workers, but only 2 jobs in the sweep
    monkeypatch.setattr(devices, "_hydra", lambda: OmegaConf.create({"launcher": {"n_jobs": 2}, "job": {"num": 1}}))
    cfg.study.arms = ["m1", "m2", "m3", "m4", "m5"]
    assert devices.concurrent_jobs(cfg) == 2
    monkeypatch.setenv(runtime.JOBS_ENV, "3")  # the explicit setting wins
    assert devices.concurrent_jobs(cfg) == 3
    monkeypatch.delenv(runtime.JOBS_ENV)
    monkeypatch.setattr(devices, "_hydra", lambda: None)
    assert devices.concurrent_jobs(cfg) == 1


def test_configure_threads_divides_the_cores_among_parallel_jobs(monkeypatch, tmp_path: Path):
    monkeypatch.delenv(runtime.JOBS_ENV, raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    monkeypatch.setattr(runtime, "busy_cores", lambda: 0.0)
    monkeypatch.setattr(devices, "_hydra", lambda: OmegaConf.create({"launcher": {"n_jobs": 4}, "job": {"num": 0}}))
    cfg = compose_train(["+study.arms=[m1,m2,m3,m4,m5]", "study.arm=m1"], tmp_path)
    assert configure_threads(cfg) == 2 and torch.get_num_threads() == 2
    cfg.trainer.num_threads = 3  # explicit: used as given
    assert configure_threads(cfg) == 3 and torch.get_num_threads() == 3


def test_busy_neighbour_costs_a_thread_only_with_free(monkeypatch, tmp_path: Path):
    monkeypatch.delenv(runtime.JOBS_ENV, raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(devices, "_hydra", lambda: None)
    assert configure_threads(compose_train([], tmp_path)) == 2  # default: the machine's count, repeatable
    assert configure_threads(compose_train(["trainer.num_threads=free"], tmp_path)) == 1


@pytest.mark.parametrize(("index", "gpus", "expected"), [(0, 4, [0]), (5, 4, [1]), (3, 2, [1]), (2, 0, 1)])
def test_per_job_devices(index, gpus, expected):
    assert devices.per_job_devices(index, gpus) == expected


def test_trainer_kwargs_resolve_auto_per_job_and_drop_compile(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(devices, "_hydra", lambda: OmegaConf.create({"launcher": {"n_jobs": 2}, "job": {"num": 3}}))
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    cfg = compose_train(["trainer=gpu", "trainer.devices=auto-per-job"], tmp_path)
    kwargs, channels_last = fit.trainer_kwargs(cfg)
    assert kwargs["devices"] == [1] and "compile" not in kwargs and channels_last
    assert cfg.trainer.compile is False and cfg.loader.device_resident == "auto"
