"""Apply a saved bundle to new cases: the one per-case preprocessing shared by ``liver-mm predict``
and the MLflow pyfunc model.

Exactly what training did to its dev/test rows: the nodule's box (grown by the spec's ``margin``)
is cropped from the grayscale frame and stretched to ``image_size`` x ``image_size`` with
:func:`liver_mm.features.crops.crop_resize`, pixels scaled to [0, 1]; the labs go through the
training split's :class:`~liver_mm.features.tabular.TabularPreprocessor` (``preprocessing.json``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from liver_mm.features.crops import crop_resize
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.serve.bundle import Bundle, load_bundle

log = logging.getLogger(__name__)
Box = tuple[int, int, int, int]
#: Loads case ``i``'s frame (H, W) uint8 and its bbox (x0, y0, x1, y1; None = whole frame).
CaseLoader = Callable[[int], tuple[np.ndarray, Box | None]]
OUTPUT_COLUMNS = ("case_id", "prob", "label")


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every ``BatchNorm2d`` into the ``Conv2d`` registered just before it, in place (eval
    mode only). timm's ``BatchNormAct2d`` keeps its dropout and activation. Returns the count.

    Assumes a conv registered right before a batch norm feeds it (true of timm's CNNs); callers
    check the folded module against the original (see :func:`fast_image_encoder`).
    """
    n = 0
    names = list(module._modules)
    for a, b in zip(names, names[1:], strict=False):
        conv, bn = module._modules[a], module._modules[b]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
            module._modules[a] = fuse_conv_bn_eval(conv.eval(), bn.eval())
            rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
            module._modules[b] = nn.Sequential(*rest) if rest else nn.Identity()
            n += 1
    return n + sum(fold_batchnorm(child) for child in module.children())


def fast_image_encoder(net: nn.Module, image_size: int) -> bool:
    """Replace ``net.image_encoder`` by a batch-norm-folded copy when that copy gives the same
    embeddings on a probe batch (~2x faster on the CPU); True when replaced."""
    encoder = getattr(net, "image_encoder", None)
    if encoder is None:
        return False
    folded = copy.deepcopy(encoder).eval()
    if fold_batchnorm(folded) == 0:
        return False
    conv = next(m for m in encoder.modules() if isinstance(m, nn.Conv2d))
    probe = torch.rand(2, conv.in_channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, got = encoder.eval()(probe), folded(probe)
    if not torch.allclose(ref, got, rtol=1e-3, atol=1e-4):
        log.warning("batch-norm folding changed the image embeddings (max diff %.3g); using the unfolded "
                    "network", float((ref - got).abs().max()))
        return False
    net.image_encoder = folded
    return True


@dataclass
class Predictor:
    """A loaded bundle ready to score cases (network in eval mode on the CPU).

    The image encoder's batch norms are folded into its convolutions and the network runs in
    channels-last memory format: together ~2-3x faster on the CPU (see
    tests/benchmarks/bench_predict.py), same probabilities to ~1e-6.
    """

    bundle: Bundle
    preprocessor: TabularPreprocessor
    batch_size: int = 32

    def __post_init__(self) -> None:
        self.bundle.net.eval()
        if self.use_image:
            fast_image_encoder(self.bundle.net, self.image_size)
            self.bundle.net.to(memory_format=torch.channels_last)

    @classmethod
    def from_dir(cls, folder: str | Path, batch_size: int = 32) -> Predictor:
        """Load a bundle folder (``weights.safetensors``, ``spec.json``, ``preprocessing.json``)."""
        bundle = load_bundle(folder)
        return cls(bundle, TabularPreprocessor.from_dict(bundle.preprocessing), batch_size)

    @property
    def spec(self) -> dict:
        return self.bundle.spec

    @property
    def use_image(self) -> bool:
        return bool(self.spec["use_image"])

    @property
    def features(self) -> list[str]:
        """Clinical manifest columns the model needs, in the training order."""
        return list(self.preprocessor.features)

    @property
    def image_size(self) -> int:
        return int(self.spec["image_size"])

    @property
    def threshold(self) -> float:
        """Frozen probability threshold (chosen on the dev split at training time)."""
        return float(self.spec["threshold"])

    def crop(self, frame: np.ndarray, bbox: Sequence[int] | None) -> np.ndarray:
        """(S, S) uint8 crop of ``frame`` (H, W) at ``bbox`` (pixels, x1/y1 exclusive; None = whole frame)."""
        box = (0, 0, frame.shape[1], frame.shape[0]) if bbox is None else tuple(int(v) for v in bbox)
        return crop_resize(frame, box, self.image_size, float(self.spec["margin"]))

    def tabular(self, labs: pd.DataFrame) -> np.ndarray:
        """(N, F) float32 model inputs from the clinical columns of ``labs`` (paper units)."""
        return self.preprocessor.transform(labs)

    @torch.inference_mode()
    def probabilities(self, crops: np.ndarray | None, tabular: np.ndarray) -> np.ndarray:
        """Probability of malignancy (N,) float64 from crops (N, S, S) uint8 and labs (N, F) float32."""
        image = None
        if self.use_image:
            if crops is None:
                raise ValueError("this model needs image crops")
            image = torch.from_numpy(np.require(crops, np.uint8, ["C", "W"])).float().div(255.0).unsqueeze(1)
            image = image.contiguous(memory_format=torch.channels_last)
        tab = torch.from_numpy(np.require(tabular, np.float32, ["C", "W"]))
        logits = self.bundle.net(image, tab if tab.shape[1] > 0 else None)
        return torch.sigmoid(logits.float()).numpy().astype(np.float64)

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """``malignant`` where prob >= the frozen threshold, else ``benign`` (N,) object."""
        return np.where(np.asarray(probs) >= self.threshold, "malignant", "benign").astype(object)

    def predict(self, case_ids: Sequence[str], labs: pd.DataFrame, load: CaseLoader | None) -> pd.DataFrame:
        """Score cases in batches of :attr:`batch_size`; ``labs`` rows align with ``case_ids``.

        ``load(i)`` gives case ``i``'s frame and bbox (decoded per batch, so memory stays flat);
        it may be None for a model without an image branch. Returns columns case_id, prob, label.
        """
        n = len(case_ids)
        if len(labs) != n:
            raise ValueError(f"{len(labs)} lab rows for {n} cases")
        tabular = self.tabular(labs) if n else np.zeros((0, 0), np.float32)
        probs = np.zeros(n, dtype=np.float64)
        for start in range(0, n, self.batch_size):
            rows = range(start, min(start + self.batch_size, n))
            crops = None
            if self.use_image:
                if load is None:
                    raise ValueError("this model needs images: give a loader")
                crops = np.stack([self.crop(*load(i)) for i in rows])
            probs[start : rows.stop] = self.probabilities(crops, tabular[start : rows.stop])
        return pd.DataFrame({"case_id": pd.Series([str(c) for c in case_ids], dtype=object),
                             "prob": probs, "label": self.labels(probs)})
