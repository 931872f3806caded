"""A run logs the fusion it built: ``train modalities=m1 fusion=film`` builds (and logs) concat."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from liver_mm.training.run import train
from tests.training.conftest import compose_train


@pytest.mark.slow
def test_image_only_run_logs_the_concat_it_built(tmp_path, small_overrides):
    cfg = compose_train([*small_overrides, "modalities=m1", "fusion=film", "+trainer.limit_train_batches=1", "image_encoder=mobilenetv2_050",
                         "explain.enabled=false"], tmp_path)
    params = MlflowClient(cfg.logger.tracking_uri).get_run(train(cfg).run_id).data.params
    assert (params["model.net.fusion"], params["fusion.name"], params["fusion.requested"]) == ("concat", "concat",
                                                                                                "film")


def test_a_model_without_a_network_logs_no_fusion(tmp_path, small_overrides):
    cfg = compose_train([*small_overrides, "modalities=tabular_only", "model=logreg", "fusion=film"], tmp_path)
    params = MlflowClient(cfg.logger.tracking_uri).get_run(train(cfg).run_id).data.params
    assert not [k for k in params if k.startswith("fusion.")]
