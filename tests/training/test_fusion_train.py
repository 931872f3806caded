"""Each fusion variant trains for one epoch on the tiny cohort, logs ``fusion.name`` and saves a bundle that
rebuilds its own class; ``liver-mm train fusion=film modalities=m5`` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from liver_mm.models import (
    FiLMFusionClassifier,
    FusionClassifier,
    GatedFusionClassifier,
    LateFusionClassifier,
)
from liver_mm.training.run import train
from tests.training.conftest import compose_train

CLASSES = {"late": LateFusionClassifier, "film": FiLMFusionClassifier, "gated": GatedFusionClassifier}


@pytest.mark.parametrize("fusion", ["late", pytest.param("film", marks=pytest.mark.slow),  # film: also test_cli_train_fusion_film_m5
                                    pytest.param("gated", marks=pytest.mark.slow)])
def test_fusion_variant_trains_logs_and_reloads(tmp_path, small_overrides, fusion):
    from liver_mm.serve.inference import Predictor

    cfg = compose_train([*small_overrides, "modalities=m5", f"fusion={fusion}"], tmp_path)
    res = train(cfg)
    run = MlflowClient(cfg.logger.tracking_uri).get_run(res.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["fusion.name"] == fusion and run.data.params["model.net.fusion"] == fusion
    bundle = res.output_dir / "model_bundle"
    assert json.loads((bundle / "spec.json").read_text())["net"]["fusion"] == fusion
    predictor = Predictor.from_dir(bundle)  # load_bundle (strict state dict) + batch-norm folding
    assert type(predictor.bundle.net) is CLASSES[fusion]
    crops = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    tab = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    probs = predictor.probabilities(crops, tab)
    with torch.no_grad():
        ref = torch.sigmoid(train_net(res)(torch.from_numpy(crops).float().div(255).unsqueeze(1),
                                           torch.from_numpy(tab))).numpy()
    np.testing.assert_allclose(probs, ref, rtol=1e-4, atol=1e-5)


def train_net(res) -> torch.nn.Module:
    """The saved network rebuilt without the serving speed-ups."""
    from liver_mm.serve.bundle import load_bundle

    return load_bundle(res.output_dir / "model_bundle").net.eval()


def test_image_only_model_with_film_is_concat(tmp_path, small_overrides):
    cfg = compose_train([*small_overrides, "modalities=m1", "fusion=film", "+trainer.limit_train_batches=1"], tmp_path)
    res = train(cfg)
    spec = json.loads((res.output_dir / "model_bundle" / "spec.json").read_text())
    assert spec["net"]["fusion"] == "concat" and type(train_net(res)) is FusionClassifier


def test_cli_train_fusion_film_m5(tmp_path, tiny_cohort):
    from liver_mm.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        main(["train", "fusion=film", "modalities=m5", "data=manifest", f"data.manifest={tiny_cohort}",
              "image_size=32", "trainer.max_epochs=1", "loader.batch_size=16", "logger.log_model=false",
              "image_encoder=mobilenetv2_050", f"logger.tracking_uri={uri}", f"cache_dir={tmp_path / 'cache'}",
              f"hydra.run.dir={tmp_path / 'out'}"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("liver-mm").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["fusion.name"] == "film" and runs[0].data.tags["modalities"] == "m5"
