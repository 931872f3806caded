"""Grad-CAM (Selvaraju et al. 2017) of the image branch, with captum's ``LayerGradCam``.

The map of a case is ReLU(sum_k alpha_k A_k) over the channels k of the last ``Conv2d`` of ``net.image_encoder``
(for timm's MobileNetV2 ``conv_head``, the 1x1 convolution before the global pooling) with the batch norm that
follows it folded in (:func:`liver_mm.serve.inference.fold_batchnorm`, as ``liver-mm predict`` loads a model: a
trained network and its loaded bundle give the same maps), alpha_k the spatial mean of d(score)/dA_k; the score is the malignancy logit times ``sign`` (+1: evidence for malignant, -1: for benign).
Maps are upsampled bilinearly to the crop's size and divided by their maximum (an all-zero map stays zero).
They are computed on a CPU copy of the network in float32, so a model trained on a GPU and the same model
loaded by ``liver-mm explain`` give identical maps.
The feature map of the last convolution is coarse: S/32 cells a side for MobileNetV2 (7x7 at 224 px, 2x2 at 64).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from captum.attr import LayerGradCam
from torch import nn

from liver_mm.explain.network import has_image, has_tabular, image_tensor
from liver_mm.serve.inference import fold_batchnorm

log = logging.getLogger(__name__)


def last_conv(net: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` registered in ``net.image_encoder`` (Grad-CAM's default layer)."""
    if not has_image(net):
        raise ValueError("Grad-CAM needs a network with an image branch")
    convs = [m for m in net.image_encoder.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(net.image_encoder).__name__} has no Conv2d layer for Grad-CAM")
    return convs[-1]


def _explainable_copy(net: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, nn.Module]:
    """An evaluation-mode copy of ``net``, batch norms folded into their convolutions, and its last conv; no
    in-place activations (they would overwrite the conv output captum keeps: a folded encoder applies its ReLU6
    right on it) and no mirror test-time augmentation (the layer would run twice per forward; the map is of
    the crop as given); on the CPU in the contiguous memory format (channels-last sums in another order, which
    moved maps of a loaded bundle by up to 1e-2; a GPU's TF32 convolutions moved them by up to 0.3 and fail
    the folding check). The folding is kept only when the encoder's output on ``probe`` (N, 1, S, S) is
    unchanged (it assumes each batch norm follows the conv feeding it, true of timm's CNNs)."""
    last_conv(net)  # fails early without an image branch or a convolution
    clone = copy.deepcopy(net).eval().cpu().to(memory_format=torch.contiguous_format)  # predict's: channels-last
    for m in clone.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    if hasattr(clone, "tta_hflip"):
        clone.tta_hflip = False
    folded = copy.deepcopy(clone.image_encoder)
    if fold_batchnorm(folded):
        with torch.inference_mode():
            ref, got = clone.image_encoder(probe), folded(probe)
        if torch.allclose(ref, got, rtol=1e-3, atol=1e-4):
            clone.image_encoder = folded
        else:
            log.warning("Grad-CAM: folding the batch norms changed the image embeddings; using the unfolded network")
    return clone, last_conv(clone)


def gradcam_maps(net: nn.Module, images: np.ndarray, tabular: np.ndarray | None = None,
                 sign: float | np.ndarray = 1.0, batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps (N, S, S) float32 in [0, 1] of crops ``images`` ((N, S, S) or (N, 1, S, S), uint8 or float
    in [0, 1]) with the preprocessed labs ``tabular`` (N, F) (ignored without a clinical branch).

    ``sign``: +1 (scalar or per case (N,)) explains the malignancy logit, -1 the benign side (use the called
    class: +1 where prob >= the threshold). ``net`` itself is not modified.
    """
    img = image_tensor(images)  # on the CPU, whatever device ``net`` is on (see _explainable_copy)
    n, size = img.shape[0], int(img.shape[-1])
    signs = torch.as_tensor(np.broadcast_to(np.asarray(sign, dtype=np.float32), (n,)).copy())
    tab = None
    if has_tabular(net):
        if tabular is None or len(tabular) != n:
            raise ValueError(f"this network has a clinical branch: give tabular ({n}, F)")
        tab = torch.from_numpy(np.ascontiguousarray(tabular, dtype=np.float32))
    clone, layer = _explainable_copy(net, img[: min(n, 4)])
    out = np.zeros((n, size, size), dtype=np.float32)
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        tab_b, sign_b = (None if tab is None else tab[sl]), signs[sl]

        def score(x: torch.Tensor, tab_b=tab_b, sign_b=sign_b) -> torch.Tensor:
            return clone(x, tab_b) * sign_b.to(x.dtype)

        with torch.enable_grad():
            attr = LayerGradCam(score, layer).attribute(img[sl], relu_attributions=True)
        up = LayerGradCam.interpolate(attr.detach().float(), (size, size), interpolate_mode="bilinear")
        maps = up[:, 0].clamp_min(0.0).numpy()
        peak = maps.reshape(len(maps), -1).max(axis=1)
        out[sl] = np.divide(maps, peak[:, None, None], out=np.zeros_like(maps), where=peak[:, None, None] > 0)
    return out
