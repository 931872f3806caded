"""Pretraining inside a training job: the train rows only (a test image's pixels never matter), the pool, the
image arm starting from the cached encoder, and ``liver-mm pretrain``'s MLflow run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image
from safetensors.torch import load_file

from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.features.inputs import build_features
from liver_mm.pretrain.study import apply_pretraining
from liver_mm.training.run import train
from tests.training.conftest import compose_train

pytestmark = pytest.mark.slow  # real studies with pretraining (minutes): make test-slow

PRETRAIN = ["pretrain.enabled=true", "pretrain.epochs=1", "pretrain.batch_size=8"]


def _copy_cohort(tiny_cohort: Path, dest: Path) -> Path:
    shutil.copytree(tiny_cohort.parent, dest)
    return dest / tiny_cohort.name


def _scramble(path: Path) -> None:
    """Change an image's pixels (its content, not its name): invert it."""
    pixels = np.asarray(Image.open(path).convert("L"))
    Image.fromarray(255 - pixels).save(path)


def _checkpoint(manifest: Path, tmp: Path, overrides: list[str]) -> tuple[bytes, pd.Series]:
    """Prepare the cohort and pretrain as a training job does, in a fresh cache: the file's bytes and the split."""
    cfg = compose_train(["data=manifest", f"data.manifest={manifest}", "image_size=32", "modalities=m1",
                         "image_encoder=mobilenetv2_050", *PRETRAIN, *overrides], tmp)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    started = apply_pretraining(cfg, cohort, build_features(cfg, cohort).images)
    path = Path(started.model.net.image.pretrained_path)
    assert path.parent == Path(cfg.cache_dir) / "pretrain"
    return path.read_bytes(), cohort.df.set_index("case_id")["split"]


def _row(manifest: Path, split: pd.Series, part: str) -> Path:
    df = pd.read_csv(manifest)
    case = split[split == part].index[0]
    return manifest.parent / df.loc[df["case_id"] == case, "image_path"].iloc[0]


def test_a_test_images_pixels_leave_the_pretrained_encoder_byte_identical(tmp_path, tiny_cohort):
    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    before, split = _checkpoint(manifest, tmp_path / "a", [])
    for part in ("test", "dev"):
        _scramble(_row(manifest, split, part))
    after, split_after = _checkpoint(manifest, tmp_path / "b", [])
    assert split_after.equals(split)
    assert after == before  # retrained in a fresh cache: the same bytes
    _scramble(_row(manifest, split, "train"))  # the control: a training image's pixels do reach the encoder
    changed, _ = _checkpoint(manifest, tmp_path / "c", [])
    assert changed != before


def test_the_pool_adds_frames_but_never_a_test_image(tmp_path, tiny_cohort):
    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    plain, split = _checkpoint(manifest, tmp_path / "a", [])
    pool = tmp_path / "pool"
    pool.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(pool / f"frame{i}.png")
    pooled, _ = _checkpoint(manifest, tmp_path / "b", [f"pretrain.pool={pool}"])
    assert pooled != plain
    shutil.copyfile(_row(manifest, split, "test"), pool / "leak.png")
    with pytest.raises(ValueError, match=r"leak\.png is pixel-identical to the test image of cohort row \d+"):
        _checkpoint(manifest, tmp_path / "c", [f"pretrain.pool={pool}"])


def test_an_image_arm_starts_from_the_pretrained_encoder(tmp_path, tiny_cohort):
    """With a zero learning rate the saved network's stem is the pretrained file's stem, exactly. (Run as a CV
    fold's job, which may keep a model whose dev calls are degenerate: a network that did not learn.)"""
    cfg = compose_train(["data=manifest", f"data.manifest={tiny_cohort}", "image_size=32", "trainer.max_epochs=1",
                         "loader.batch_size=16", "logger.log_model=false", "image_encoder=mobilenetv2_050",
                         "modalities=m1", *PRETRAIN, "+trainer.limit_train_batches=1",
                         "model.optimizer.lr=0.0", "explain.enabled=false", "+study.level=fold"], tmp_path)
    res = train(cfg)
    files = list((tmp_path / "cache" / "pretrain").glob("*.safetensors"))
    assert len(files) == 1
    saved = load_file(str(res.output_dir / "model_bundle" / "weights.safetensors"))
    assert torch.equal(saved["image_encoder.conv_stem.weight"], load_file(str(files[0]))["conv_stem.weight"])
    run = MlflowClient(cfg.logger.tracking_uri).get_run(res.run_id)
    assert run.data.tags["image_init"] == f"self-supervised simclr on the training part ({files[0].stem[:12]})"
    assert run.data.params["model.net.image.pretrained_path"] == str(files[0])


def test_pretrain_command_logs_the_loss_curve_and_the_encoder(tmp_path, tiny_cohort):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(  # a real process: the command as a user runs it (no Hydra state left in this one)
        [str(Path(sys.executable).with_name("liver-mm")), "pretrain", "data=manifest", f"data.manifest={tiny_cohort}",
         "image_size=32", "image_encoder=mobilenetv2_050", "pretrain.epochs=2", "pretrain.batch_size=8",
         f"logger.tracking_uri={uri}", f"logger.artifact_root={tmp_path / 'art'}", f"cache_dir={tmp_path / 'cache'}",
         f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pretrain simclr" in done.stderr  # the progress bar
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("liver-mm").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["run_kind"] == "pretrain"
    curve = client.get_metric_history(run.info.run_id, "pretrain_loss")
    assert [m.step for m in curve] == [0, 1] and all(np.isfinite(m.value) for m in curve)
    assert run.data.params["n_train_crops"] == str(48) and run.data.params["n_pool_frames"] == "0"
    local = Path(client.download_artifacts(run.info.run_id, "encoder/encoder.safetensors", str(tmp_path / "dl")))
    cached = tmp_path / "cache" / "pretrain" / f"{run.data.tags['pretrain_key']}.safetensors"
    assert local.read_bytes() == cached.read_bytes()
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"pretrain_loss.png", "pretrain_loss.csv"}
