"""The trained network as explain needs it: batched probabilities, and the labs -> probability function that
permutation importance calls with the crops held fixed.

Relies only on the public side of :class:`liver_mm.models.branches.BranchNetwork`: ``forward(image, tabular)
-> logits (N,)`` and its ``image_encoder`` / ``tabular_encoder`` attributes (None for a missing branch).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def has_image(net: nn.Module) -> bool:
    """Whether ``net`` has an image branch."""
    return getattr(net, "image_encoder", None) is not None


def has_tabular(net: nn.Module) -> bool:
    """Whether ``net`` has a clinical (tabular) branch."""
    return getattr(net, "tabular_encoder", None) is not None


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 1, S, S) float32 in [0, 1] from crops (N, S, S) or (N, 1, S, S), uint8 (0-255) or float in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] != 1 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"images must be (N, S, S) or (N, 1, S, S) square crops, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).float().div(255.0)
    out = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if out.numel() and (float(out.min()) < 0.0 or float(out.max()) > 1.0):
        raise ValueError(f"float images must lie in [0, 1], got [{float(out.min()):.3g}, {float(out.max()):.3g}]")
    return out


def device_of(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter or buffer (CPU when it has none)."""
    for t in (*net.parameters(), *net.buffers()):
        return t.device
    return torch.device("cpu")


def _tabular_tensor(net: nn.Module, tabular: np.ndarray | None, n: int) -> torch.Tensor | None:
    if not has_tabular(net):
        return None
    if tabular is None:
        raise ValueError("this network has a clinical branch: give the preprocessed labs (N, F)")
    tab = torch.from_numpy(np.ascontiguousarray(tabular, dtype=np.float32))
    if tab.ndim != 2 or tab.shape[0] != n:
        raise ValueError(f"tabular must be ({n}, F), got shape {tuple(tab.shape)}")
    return tab


@torch.inference_mode()
def probabilities(net: nn.Module, images: np.ndarray | None, tabular: np.ndarray | None,
                  batch_size: int = 64) -> np.ndarray:
    """Probability of malignancy (N,) float64: sigmoid of ``net(image, tabular)`` in evaluation mode, in batches.
    ``images``: crops as :func:`image_tensor` takes them (None without an image branch); ``tabular`` (N, F)."""
    if has_image(net) and images is None:
        raise ValueError("this network has an image branch: give the crops (N, S, S)")
    device = device_of(net)
    img = image_tensor(images).to(device) if has_image(net) else None
    n = img.shape[0] if img is not None else (0 if tabular is None else len(tabular))
    tab = _tabular_tensor(net, tabular, n)
    tab = None if tab is None else tab.to(device)
    was_training = net.training
    net.eval()
    try:
        out = [torch.sigmoid(net(None if img is None else img[i:i + batch_size],
                                 None if tab is None else tab[i:i + batch_size]).float())
               for i in range(0, n, batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(out).cpu().numpy().astype(np.float64) if out else np.zeros(0)


class MemoEncoder(nn.Module):
    """Wraps an image encoder and remembers its output per input batch (keyed by the input's bytes):
    ``forward`` and timm's ``forward_features`` are computed once per distinct batch, ``forward_head`` (which
    FiLM fusion feeds with modulated maps) always runs. Exact: an evaluation-mode encoder is a function of its
    input. Makes permutation importance cost a pass of the small clinical part per permutation."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.memo: dict[tuple, torch.Tensor] = {}

    def _cached(self, kind: str, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        data = x.detach().contiguous().cpu().numpy().tobytes()
        key = (kind, tuple(x.shape), str(x.dtype), hashlib.blake2b(data, digest_size=16).digest())
        if key not in self.memo:
            self.memo[key] = fn(x)
        return self.memo[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._cached("forward", self.encoder, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._cached("features", self.encoder.forward_features, x)

    def forward_head(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.encoder.forward_head(x, *args, **kwargs)


def tabular_predictor(net: nn.Module, images: np.ndarray | None, batch_size: int = 64
                      ) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(X (N, F) preprocessed labs) -> (N,) probabilities`` of ``net`` with the crops fixed to ``images``.

    The whole network runs on every call (under FiLM or gated fusion the labs act on the image path too), on a
    copy whose image encoder is a :class:`MemoEncoder`: the crops go through the CNN once, not once per call.
    ``net`` itself is not modified."""
    if not has_image(net):
        return lambda x: probabilities(net, None, x, batch_size)
    clone = copy.deepcopy(net).eval()
    clone.image_encoder = MemoEncoder(clone.image_encoder)
    return lambda x: probabilities(clone, images, x, batch_size)
