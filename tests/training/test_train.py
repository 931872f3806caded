"""End-to-end training runs on a tiny synthetic cohort (seconds each)."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from liver_mm.training.run import train
from tests.run_checks import assert_run_reproduced, the_split
from tests.training.conftest import compose_train

REQUIRED_METRICS = [
    "test_auc", "test_auc_ci_low", "test_auc_ci_high", "test_accuracy", "test_sensitivity",
    "test_specificity", "selection_dev_auc", "threshold",
    "test_accuracy_ci_low", "test_accuracy_ci_high", "test_sensitivity_ci_low",
    "test_sensitivity_ci_high", "test_specificity_ci_low", "test_specificity_ci_high",
]


@pytest.mark.parametrize(
    "extra",
    [["modalities=m1"], ["modalities=m2"], ["modalities=m3"], ["modalities=m4"], ["modalities=m5"],
     ["modalities=tabular_only"], ["modalities=tabular_only", "model=logreg"]],
    ids=["m1", "m2", "m3", "m4", "m5", "tabular_only", "logreg"],
)
def test_each_modality_set_trains(tmp_path, small_overrides, extra):
    cfg = compose_train([*small_overrides, *extra, "+trainer.limit_train_batches=1"], tmp_path)
    res = train(cfg)
    assert res is not None
    assert set(res.predictions["split"]) == {"dev", "test"}
    assert res.predictions["prob"].between(0, 1).all()
    client = MlflowClient(cfg.logger.tracking_uri)
    logged = assert_run_reproduced(client, res.run_id, the_split(cfg.cache_dir), tmp_path / "logged")
    pd.testing.assert_frame_equal(logged, res.predictions.astype({"case_id": str}).reset_index(drop=True),
                                  check_dtype=False, rtol=0, atol=0)
    assert res.metrics["test_auc"] == client.get_run(res.run_id).data.metrics["test_auc"]
    run = client.get_run(res.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["modalities"] == cfg.modalities.name


@pytest.mark.slow  # two full runs (about 26 s)
def test_two_epoch_run_is_fully_tracked_and_reproducible(tmp_path, small_overrides):
    overrides = [*small_overrides, "modalities=m3", "trainer.max_epochs=2", "logger.log_model=true"]
    cfg = compose_train(overrides, tmp_path)
    res = train(cfg)
    client = MlflowClient(cfg.logger.tracking_uri)
    run = client.get_run(res.run_id)
    for name in REQUIRED_METRICS:
        assert name in run.data.metrics, name
        assert math.isfinite(run.data.metrics[name])
    assert len(client.get_metric_history(res.run_id, "dev_auc")) == 2  # one per epoch (the selection curve)
    assert run.data.tags["selection_metric"] == "dev_auc"
    assert {"train_loss", "dev_loss"} <= set(run.data.metrics)
    params = run.data.params
    assert params["modalities.name"] == "m3" and len(params["manifest_hash"]) >= 16
    assert "split_hash" in params and "git_commit" in params and "liver_mm_version" in params
    # no patient identifier in params or tags
    df = pd.read_csv(cfg.data.manifest)
    ids = set(df["patient_id"].astype(str)) | set(df["case_id"].astype(str))
    assert not ids & (set(params.values()) | set(run.data.tags.values()))
    artifacts = {a.path for a in client.list_artifacts(res.run_id)}
    for name in ["predictions.csv", "roc.png", "confusion_matrix.png", "config.yaml", "preprocessing.json"]:
        assert name in artifacts, name
    logged = pd.read_csv(client.download_artifacts(res.run_id, "predictions.csv", str(tmp_path)))
    assert list(logged.columns) == ["case_id", "split", "label", "prob"]

    # the logged PyTorch model (torch.export format: no pickle) reloads and reproduces the predictions
    mlflow.set_tracking_uri(cfg.logger.tracking_uri)
    model = mlflow.pytorch.load_model(f"runs:/{res.run_id}/torch_model")
    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.features.inputs import build_features

    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    feats = build_features(cfg, cohort)
    rows = np.flatnonzero(cohort.df["split"].isin(["dev", "test"]).to_numpy())
    image = torch.from_numpy(feats.images[rows]).float().div(255).unsqueeze(1)
    with torch.no_grad():
        packed = torch.cat([image.reshape(len(rows), -1), torch.from_numpy(feats.tabular[rows])], dim=1)
        probs = model(packed).numpy()
    np.testing.assert_allclose(probs, res.predictions["prob"].to_numpy(), atol=1e-5)

    # same seed -> same test metrics
    again = train(compose_train(overrides, tmp_path))
    for name in REQUIRED_METRICS:
        assert again.metrics[name] == pytest.approx(res.metrics[name], abs=1e-6), name


def test_folder_of_images_with_masks_and_a_lab_table_trains(tmp_path, tiny_cohort):
    """data=folder: class folders of full frames with *_mask.png files plus a lab export, as users bring them."""
    from PIL import Image

    df = pd.read_csv(tiny_cohort)
    root = tmp_path / "busi"
    labs = []
    for row in df.itertuples():
        frame = Image.open(tiny_cohort.parent / row.image_path)
        (root / row.label / "images").mkdir(parents=True, exist_ok=True)
        (root / row.label / "mask").mkdir(parents=True, exist_ok=True)
        frame.save(root / row.label / "images" / f"{row.case_id}.png")
        mask = np.zeros((frame.height, frame.width), dtype=np.uint8)
        mask[row.bbox_y0 : row.bbox_y1, row.bbox_x0 : row.bbox_x1] = 255
        Image.fromarray(mask).save(root / row.label / "mask" / f"{row.case_id}_mask.png")
        labs.append({"case_id": f"{row.label}/{row.case_id}", "patient_id": row.patient_id, "age": row.age,
                     "sex": row.sex})
    pd.DataFrame(labs).to_csv(tmp_path / "labs.csv", index=False)
    cfg = compose_train(
        ["data=folder", f"data.root={root}", f"data.clinical={tmp_path / 'labs.csv'}", "modalities=m2",
         "image_size=32", "trainer.max_epochs=1", "logger.log_model=false", "image_encoder=mobilenetv2_050",
         "+trainer.limit_train_batches=1"],
        tmp_path,
    )
    res = train(cfg)
    assert_run_reproduced(MlflowClient(cfg.logger.tracking_uri), res.run_id, the_split(cfg.cache_dir), tmp_path / "p")
    split = pd.read_csv(the_split(cfg.cache_dir))
    assert len(res.predictions) == split["split"].isin(["dev", "test"]).sum() and len(split) == len(df)
    assert res.predictions["case_id"].str.contains("/").all()  # case ids made by the importer


@pytest.mark.slow  # the default recipe's whole schedule
def test_default_recipe_runs_its_schedule_to_the_end(tmp_path, small_overrides):
    """No early stop before the learning rate has decayed: every epoch of the cosine schedule runs."""
    cfg = compose_train([*small_overrides, "modalities=m2", "trainer.max_epochs=4"], tmp_path)
    assert cfg.early_stopping.enabled is False and cfg.checkpoint.select == "best"
    res = train(cfg)
    client = MlflowClient(cfg.logger.tracking_uri)
    lr = [m.value for m in sorted(client.get_metric_history(res.run_id, "lr"), key=lambda m: m.step)]
    assert len(lr) == 4 and len(client.get_metric_history(res.run_id, "dev_auc")) == 4
    base = cfg.model.optimizer.lr
    assert lr[-1] < 0.05 * base  # the cosine has (almost) reached 0 at the last epoch
    assert lr[1] > 0.5 * base
