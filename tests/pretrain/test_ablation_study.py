"""`liver-mm study experiment=pretrain_ablation` end to end (2 folds, tiny): one pretraining per fold, shared by
the fold's pretrained arms, tagged on every fold run, and the scratch-vs-pretrained comparisons in the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


@pytest.mark.slow  # a real 2-fold study of 4 arms (about 3 minutes on 2 cores)
def test_the_ablation_pretrains_once_per_fold_and_compares(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [LIVER_MM, "study", "experiment=pretrain_ablation", "data.n=120", "image_size=32", "trainer.max_epochs=1",
         "pretrain.epochs=1", "pretrain.batch_size=16", "cv.folds=2", "image_encoder=mobilenetv2_050",
         "explain.enabled=false", "logger.log_model=false", f"logger.tracking_uri={uri}",
         f"logger.artifact_root={tmp_path / 'art'}", f"cache_dir={tmp_path / 'cache'}",
         f"study.out_dir={tmp_path / 'out'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((tmp_path / "cache" / "pretrain").glob("*.safetensors"))
    assert len(files) == 2  # one per fold's training part
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("liver-mm")
    inits: dict[tuple[str, str], str] = {}
    for run in client.search_runs([exp.experiment_id], "tags.study_level = 'fold'"):
        inits[(run.data.tags["arm"], run.data.tags["fold"])] = run.data.tags["image_init"]
    assert {k for k, v in inits.items() if v == "random (from scratch)"} == {
        ("m1", "0"), ("m1", "1"), ("m5", "0"), ("m5", "1")}
    for fold in ("0", "1"):  # the fold's two pretrained arms start from the same file
        assert inits[("m1_ssl", fold)] == inits[("m5_ssl", fold)]
        assert inits[("m1_ssl", fold)].startswith("self-supervised simclr on the training part (")
    assert {inits[("m1_ssl", "0")][-13:-1], inits[("m1_ssl", "1")][-13:-1]} == {f.stem[:12] for f in files}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| m1 vs m1_ssl | pretrain |" in report and "| m5 vs m5_ssl | pretrain |" in report
