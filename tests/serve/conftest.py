"""One tiny trained m5 model per test session (image + all five clinical groups), its held-out
cases as a new-case manifest, and a tabular-only bundle built without training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.io.schema import MODEL_COLUMNS

FEATURES = list(MODEL_COLUMNS["m5"])


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    tracking_uri: str
    model_uri: str
    predictions: pd.DataFrame  # the training run's predictions.csv (dev + test rows)
    output_dir: Path
    threshold: float


@pytest.fixture(scope="session")
def trained_model(tiny_cohort: Path, tmp_path_factory) -> TrainedModel:
    """``liver-mm train`` of m5 at 32 px for one epoch, with the pyfunc model logged."""
    from liver_mm.training.run import train
    from tests.training.conftest import compose_train

    tmp = tmp_path_factory.mktemp("serve_train")
    cfg = compose_train([
        "data=manifest", f"data.manifest={tiny_cohort}", "modalities=m5", "image_size=32",
        "trainer.max_epochs=1", "loader.batch_size=16", "model.net.image.name=mobilenetv2_050",
        "logger.log_model=true", "+trainer.enable_progress_bar=false",
    ], tmp)
    res = train(cfg)
    assert res is not None
    return TrainedModel(res.run_id, str(cfg.logger.tracking_uri), f"runs:/{res.run_id}/model",
                        res.predictions, res.output_dir, float(res.metrics["threshold"]))


@pytest.fixture
def tracked(trained_model: TrainedModel):
    """The trained model, with MLflow pointed at its tracking store (restored afterwards)."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(trained_model.tracking_uri)
    yield trained_model
    mlflow.set_tracking_uri(before)


def heldout_frame(manifest: Path, case_ids: list[str]) -> pd.DataFrame:
    """Rows of ``case_ids`` from ``manifest`` (in that order), image paths made absolute, without
    label and split: new cases as a user would send them."""
    df = pd.read_csv(manifest, dtype={"case_id": str})
    df = df.set_index("case_id").loc[case_ids].reset_index()
    df["image_path"] = [str((manifest.parent / p).resolve()) for p in df["image_path"]]
    return df.drop(columns=[c for c in ("label", "split") if c in df.columns])


@pytest.fixture(scope="session")
def heldout_manifest(trained_model: TrainedModel, tiny_cohort: Path, tmp_path_factory) -> Path:
    """The training run's dev + test cases as an unlabelled manifest (order of predictions.csv)."""
    out = tmp_path_factory.mktemp("heldout") / "new_cases.csv"
    heldout_frame(tiny_cohort, trained_model.predictions["case_id"].astype(str).tolist()).to_csv(out, index=False)
    return out


@pytest.fixture(scope="session")
def tabular_bundle(tiny_cohort: Path, tmp_path_factory) -> Path:
    """A bundle of an untrained tabular-only network on m3's labs (no image branch)."""
    import torch

    from liver_mm.models import build_fusion_model
    from liver_mm.serve.bundle import save_bundle

    df = pd.read_csv(tiny_cohort)
    prep = TabularPreprocessor(list(MODEL_COLUMNS["m3"])).fit(df)
    net_cfg = {"_target_": "liver_mm.models.build_fusion_model", "image": None,
               "tabular": {"hidden": [8], "dropout": 0.0}, "n_tabular": prep.n_features_out,
               "head_hidden": 4, "dropout": 0.0}
    torch.manual_seed(0)
    net: nn.Module = build_fusion_model(**{k: v for k, v in net_cfg.items() if k != "_target_"}).eval()
    spec = {"net": net_cfg, "modalities": {"name": "tabular_only", "image": False,
                                           "features": prep.features},
            "use_image": False, "features": prep.features, "image_size": 32, "margin": 0.0,
            "threshold": 0.5, "units": {}, "synthetic": True}
    return save_bundle(tmp_path_factory.mktemp("bundle") / "tabular", net, spec, prep.to_dict())


def zero_png(width: int, height: int) -> bytes:
    """A real all-zero 8-bit grayscale PNG of ``width`` x ``height`` px, built row by row (the
    pixels are never held in memory: a 14000x14000 file is ~190 kB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    rows = b"\x00" * ((width + 1) * 500)  # 500 rows: filter byte 0 + the row's pixels, each
    full, rest = divmod(height, 500)
    idat = b"".join(comp.compress(rows) for _ in range(full)) + comp.compress(rows[: (width + 1) * rest])
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def bomb_b64() -> str:
    """Base64 of a 14000x14000 all-zero PNG (196 Mpx: over Pillow's decompression-bomb limit)."""
    import base64

    return base64.b64encode(zero_png(14000, 14000)).decode("ascii")


@pytest.fixture(scope="session")
def image_bundle(tiny_cohort: Path, tmp_path_factory) -> Path:
    """A bundle of an untrained image + m2-labs network (mobilenetv2_050, 32 px), built without training."""
    import torch

    from liver_mm.models import build_fusion_model
    from liver_mm.serve.bundle import save_bundle

    prep = TabularPreprocessor(list(MODEL_COLUMNS["m2"])).fit(pd.read_csv(tiny_cohort))
    net_cfg = {"_target_": "liver_mm.models.build_fusion_model",
               "image": {"name": "mobilenetv2_050", "pretrained": False, "pretrained_path": None},
               "tabular": {"hidden": [8], "dropout": 0.0}, "n_tabular": prep.n_features_out,
               "head_hidden": 4, "dropout": 0.0}
    torch.manual_seed(0)
    net: nn.Module = build_fusion_model(**{k: v for k, v in net_cfg.items() if k != "_target_"}).eval()
    spec = {"net": net_cfg, "modalities": {"name": "m2", "image": True, "features": prep.features},
            "use_image": True, "features": prep.features, "image_size": 32, "margin": 0.0,
            "threshold": 0.5, "units": {}, "synthetic": True}
    return save_bundle(tmp_path_factory.mktemp("bundle") / "image", net, spec, prep.to_dict())


def save_pyfunc(bundle: Path, out: Path):
    """The bundle as the served MLflow pyfunc model (signature, example, metadata as training logs
    them), saved under ``out`` and loaded back."""
    import mlflow

    from liver_mm.serve import pyfunc
    from liver_mm.serve.inference import Predictor

    predictor = Predictor.from_dir(bundle)
    mlflow.pyfunc.save_model(str(out), python_model=str(pyfunc.MODEL_CODE), artifacts={pyfunc.ARTIFACT_KEY: str(bundle)},
                             signature=pyfunc.request_signature(predictor.features, predictor.use_image),
                             input_example=pyfunc.input_example(predictor),
                             metadata=pyfunc.model_metadata(predictor.features),
                             pip_requirements=pyfunc.pip_requirements())
    return mlflow.pyfunc.load_model(str(out))


@pytest.fixture(scope="session")
def image_pyfunc(image_bundle: Path, tmp_path_factory):
    """:func:`save_pyfunc` of :func:`image_bundle`."""
    return save_pyfunc(image_bundle, tmp_path_factory.mktemp("pyfunc") / "image")


@pytest.fixture(scope="session")
def tabular_pyfunc(tabular_bundle: Path, tmp_path_factory):
    """:func:`save_pyfunc` of :func:`tabular_bundle`."""
    return save_pyfunc(tabular_bundle, tmp_path_factory.mktemp("pyfunc") / "tabular")
