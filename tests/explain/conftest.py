"""Small networks for the explain tests (no training, except the Grad-CAM sanity check's tiny CNN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liver_mm.models import build_fusion_model


def fusion_net(n_tabular: int, image: bool = True, seed: int = 0, **kw):
    """An untrained network: MobileNetV2-0.5 on 64 px crops (when ``image``), ``n_tabular`` clinical columns."""
    torch.manual_seed(seed)
    image_cfg = {"name": "mobilenetv2_050"} if image else None
    return build_fusion_model(image=image_cfg, tabular={"hidden": [8], "dropout": 0.0}, n_tabular=n_tabular,
                              head_hidden=8, dropout=0.0, **kw).eval()


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """12 crops (12, 64, 64) uint8: noise with a bright square at a case-dependent place."""
    rng = np.random.default_rng(0)
    x = rng.normal(70, 12, (12, 64, 64))
    for i in range(12):
        r, c = 4 + 4 * (i % 6), 40 - 3 * (i % 5)
        x[i, r:r + 14, c:c + 14] += 120
    return np.clip(x, 0, 255).astype(np.uint8)
