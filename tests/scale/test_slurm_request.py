"""What a study's SLURM job asks for: the sbatch script hydra-submitit-launcher writes from
``hydra/launcher=slurm`` (one GPU per job: ``trainer.devices=auto-per-job`` then trains on that job's GPU) and from
``hydra/launcher=slurm_local`` (the local one-node cluster: one core, no GPU). No cluster needed."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from liver_mm.training.devices import per_job_devices


def _sbatch(launcher: str, tmp_path) -> str:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        cfg = compose("study", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params.pop("submitit_folder")
    params["name"] = "liver-mm"
    base = set(OmegaConf.structured(BaseQueueConf).keys())  # mapped as the launcher maps them
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path), slurm_max_num_timeout=0)
    params.pop("max_num_timeout", None)
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -m x", "uid")


def test_slurm_launcher_asks_one_gpu_per_job(tmp_path):
    text = _sbatch("slurm", tmp_path)
    assert "#SBATCH --gpus-per-node=1\n" in text and "#SBATCH --cpus-per-task=8\n" in text
    assert "#SBATCH --mem=32GB\n" in text
    # each job sees only its own GPU (CUDA_VISIBLE_DEVICES from SLURM): auto-per-job picks device 0 of it
    assert per_job_devices(index=5, n_gpus=1) == [0]


def test_slurm_local_launcher_asks_one_core_no_gpu(tmp_path):
    text = _sbatch("slurm_local", tmp_path)
    assert "--gpus-per-node" not in text and "--mem=" not in text
    assert "#SBATCH --cpus-per-task=1\n" in text and "#SBATCH --partition=local\n" in text
