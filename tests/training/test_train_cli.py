"""`liver-mm train` as a user runs it: DDP on CPU, local pretrained weights, a bad cohort."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import timm
import torch
from mlflow.tracking import MlflowClient

from liver_mm.cli import main
from liver_mm.training.run import train
from tests.training.conftest import compose_train


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("liver-mm")
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.mark.slow  # two DDP worker processes (about 25 s)
def test_ddp_cpu_runs_two_processes(tmp_path, small_overrides):
    cfg = compose_train([*small_overrides, "modalities=m2", "trainer=ddp_cpu", "trainer.max_epochs=1"], tmp_path)
    res = train(cfg)
    run = MlflowClient(cfg.logger.tracking_uri).get_run(res.run_id)
    assert run.data.tags["world_size"] == "2"
    assert run.info.status == "FINISHED"


def test_local_pretrained_weights_are_loaded(tmp_path, small_overrides):
    """The run starts from the file's weights: with a zero learning rate the saved network's stem is the file's
    RGB stem summed to one channel, exactly."""
    from safetensors.torch import load_file

    weights = tmp_path / "mnv2_050.pth"
    state = timm.create_model("mobilenetv2_050").state_dict()
    state["conv_stem.weight"] = torch.arange(state["conv_stem.weight"].numel(), dtype=torch.float32).reshape(
        state["conv_stem.weight"].shape) / 1000.0
    torch.save(state, weights)
    cfg = compose_train(
        [*small_overrides, "modalities=m1", "model.net.image.pretrained=true",
         f"model.net.image.pretrained_path={weights}", "+trainer.limit_train_batches=1", "model.optimizer.lr=0.0",
         # an untrained network may rank the dev part at chance: a fold run's degenerate threshold is logged, not fatal
         "+study.level=fold"],
        tmp_path,
    )
    res = train(cfg)
    saved = load_file(str(res.output_dir / "model_bundle" / "weights.safetensors"))
    expected = state["conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.equal(saved["image_encoder.conv_stem.weight"], expected)
    assert not torch.equal(expected, timm.create_model("mobilenetv2_050", in_chans=1).conv_stem.weight)


def test_invalid_manifest_stops_before_training(tmp_path, tiny_cohort, capfd):
    bad_dir = tmp_path / "bad"
    shutil.copytree(tiny_cohort.parent, bad_dir)
    df = pd.read_csv(bad_dir / "manifest.csv")
    df.loc[3, "label"] = "maybe"
    df.to_csv(bad_dir / "manifest.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(SystemExit) as exc:
        main(["train", "data=manifest", f"data.manifest={bad_dir / 'manifest.csv'}",
              f"logger.tracking_uri={uri}", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'out'}"])
    assert exc.value.code == 1
    out, err = capfd.readouterr()
    text = out + err  # Hydra's job logging prints the validator's findings
    assert "nothing was trained" in text
    assert "column label" in text and f"case {df.loc[3, 'case_id']}" in text and "line 5" in text
    assert _runs(uri) == []  # nothing was trained or tracked


@pytest.mark.slow  # two DDP worker processes (about 25 s)
def test_ddp_relaunches_workers_from_the_command_line(tmp_path, tiny_cohort):
    """trainer.strategy=ddp: Lightning re-executes the command per process; one MLflow run results."""
    import subprocess
    import sys
    from pathlib import Path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [str(Path(sys.executable).with_name("liver-mm")), "train", "data=manifest",
           f"data.manifest={tiny_cohort}", "modalities=m2", "trainer=ddp_cpu", "trainer.strategy=ddp",
           "trainer.max_epochs=1", "image_size=32", "image_encoder=mobilenetv2_050", "logger.log_model=false",
           f"logger.tracking_uri={uri}", f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'out'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in proc.stdout + proc.stderr  # the second process really ran
    runs = _runs(uri)
    assert len(runs) == 1
    assert runs[0].data.tags["world_size"] == "2" and runs[0].info.status == "FINISHED"


def test_bad_config_value_is_a_message_not_a_traceback(tmp_path, tiny_cohort, capfd):
    with pytest.raises(SystemExit) as exc:
        main(["train", "data=manifest", f"data.manifest={tiny_cohort}", "data.units={albumin: mg/dL}",
              f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"cache_dir={tmp_path / 'cache'}",
              f"hydra.run.dir={tmp_path / 'out'}"])
    assert exc.value.code == 1
    out, err = capfd.readouterr()
    assert "albumin" in out + err and "Traceback" not in out + err
