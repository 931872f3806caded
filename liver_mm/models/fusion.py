"""Fusion networks: image embedding and clinical embedding -> one logit, and the factory that builds them.

``fusion`` picks how the two branches meet (``conf/fusion/``):

- ``concat`` (:class:`FusionClassifier`, the seed's, the default): concatenate the embeddings, MLP head;
- ``late`` (:class:`~liver_mm.models.late.LateFusionClassifier`): one head per branch, logits mixed by a learned weight;
- ``film`` (:class:`~liver_mm.models.film.FiLMFusionClassifier`): the clinical embedding scales and shifts the
  image feature maps per channel before pooling (FiLM / DAFT);
- ``gated`` (:class:`~liver_mm.models.gated.GatedFusionClassifier`): a learned, input-dependent sigmoid gate per
  dimension of the concatenation.

m1 is image-only (no tabular branch), m2..m5 add a tabular branch over growing clinical groups; a tabular-only
model (no image) is supported for ablations. With one branch only there is nothing to fuse: every ``fusion`` is
then built as ``concat`` (the same network as today's m1 / tabular-only model), with a logged note.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from liver_mm.models.branches import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD, BranchNetwork, mlp_head
from liver_mm.models.encoders import TabularEncoder, create_image_encoder, encoder_out_dim
from liver_mm.models.film import FiLMFusionClassifier
from liver_mm.models.gated import GatedFusionClassifier
from liver_mm.models.late import LateFusionClassifier

log = logging.getLogger(__name__)
__all__ = ["FUSIONS", "FUSION_CLASSES", "IMAGENET_GRAY_MEAN", "IMAGENET_GRAY_STD", "FusionClassifier",
           "build_fusion_model", "effective_fusion"]


class FusionClassifier(BranchNetwork):
    """Concatenate the branch embeddings and map them to one malignancy logit (``fusion=concat``).

    ``forward(image (N, C, S, S) float in [0, 1] | None, tabular (N, F) float | None) -> (N,)``:
    [img (N, D_img) ++ tab (N, D_tab)] (N, D_img + D_tab) -> ``head`` -> (N,).
    """

    def __init__(
        self,
        image_encoder: nn.Module | None,
        tabular_encoder: nn.Module | None,
        head_hidden: int | None = 64,
        dropout: float = 0.2,
        image_mean: float | Sequence[float] = IMAGENET_GRAY_MEAN,
        image_std: float | Sequence[float] = IMAGENET_GRAY_STD,
        tta_hflip: bool = False,
    ) -> None:
        super().__init__(image_encoder, tabular_encoder, image_mean, image_std, tta_hflip)
        dims = [encoder_out_dim(e) for e in (image_encoder, tabular_encoder) if e is not None]
        self.embed_dim = sum(dims)
        self.head = mlp_head(self.embed_dim, head_hidden, dropout)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        feats = []
        if self.image_encoder is not None:
            feats.append(self._image_features(image))
        if self.tabular_encoder is not None:
            feats.append(self._tabular_features(tabular))
        else:
            self._check_no_tabular(tabular)
        z = feats[0] if len(feats) == 1 else torch.cat(feats, dim=1)
        return self.head(z).squeeze(-1)


#: ``fusion`` name -> its network, the one list of fusions (conf/fusion/<name>.yaml names the same set:
#: tests/models/test_fusion.py checks it against liver_mm.catalog.fusion_names())
FUSION_CLASSES: dict[str, type[BranchNetwork]] = {
    "concat": FusionClassifier, "late": LateFusionClassifier, "film": FiLMFusionClassifier,
    "gated": GatedFusionClassifier}
#: the ``fusion`` names
FUSIONS = tuple(FUSION_CLASSES)


def effective_fusion(fusion: str | None, has_image: bool, has_tabular: bool) -> str:
    """The fusion actually built: ``fusion`` (None: concat), or ``concat`` when a branch is missing (a note is
    logged: with one branch there is nothing to fuse). Raises ``ValueError`` for an unknown name."""
    name = "concat" if fusion in (None, "") else str(fusion)
    if name not in FUSIONS:
        raise ValueError(f"fusion={name!r} is not one of {', '.join(FUSIONS)} (conf/fusion/<name>.yaml)")
    if name != "concat" and not (has_image and has_tabular):
        only = "the image" if has_image else "clinical features"
        log.warning("fusion=%s needs both an image and clinical features; this model sees only %s, so it is "
                    "built as fusion=concat (the same network)", name, only)
        return "concat"
    return name


def _gray_stats(encoder: nn.Module, in_chans: int) -> tuple[Any, Any]:
    """Channel-averaged mean/std of the encoder's pretrained config (ImageNet by default)."""
    cfg = getattr(encoder, "pretrained_cfg", None) or {}
    mean = cfg.get("mean") or (0.485, 0.456, 0.406)
    std = cfg.get("std") or (0.229, 0.224, 0.225)
    if in_chans == len(mean) and in_chans > 1:
        return tuple(mean), tuple(std)
    return sum(mean) / len(mean), sum(std) / len(std)


def build_fusion_model(
    image: Mapping[str, Any] | None = None,
    tabular: Mapping[str, Any] | None = None,
    n_tabular: int = 0,
    head_hidden: int | None = 64,
    dropout: float = 0.2,
    tta_hflip: bool = False,
    fusion: str = "concat",
) -> BranchNetwork:
    """Factory for Hydra ``_target_``: ``image`` = kwargs of :func:`create_image_encoder`
    (None: no image branch), ``tabular`` = kwargs of :class:`TabularEncoder` except
    ``in_dim`` (None: its defaults). ``n_tabular`` is the preprocessor's F_out; 0 means no
    tabular branch (the image-only m1), whatever ``tabular`` says. ``tta_hflip``: mirror-image
    test-time augmentation in evaluation (see :class:`BranchNetwork`). ``fusion``: one of
    :data:`FUSIONS` (see :func:`effective_fusion` for a model with one branch)."""
    image_encoder = None
    mean: Any = IMAGENET_GRAY_MEAN
    std: Any = IMAGENET_GRAY_STD
    if image is not None:
        image_kwargs = dict(image)
        image_encoder = create_image_encoder(**image_kwargs)
        mean, std = _gray_stats(image_encoder, int(image_kwargs.get("in_chans", 1)))
    tabular_encoder = None
    if n_tabular > 0:
        tab_kwargs = dict(tabular or {})
        if "hidden" in tab_kwargs and tab_kwargs["hidden"] is not None:
            tab_kwargs["hidden"] = tuple(int(h) for h in tab_kwargs["hidden"])
        tabular_encoder = TabularEncoder(in_dim=int(n_tabular), **tab_kwargs)
    if image_encoder is None and tabular_encoder is None:
        raise ValueError(
            "build_fusion_model: no branch left (image=None and n_tabular=0); "
            "give an image encoder config or clinical features"
        )
    cls = FUSION_CLASSES[effective_fusion(fusion, image_encoder is not None, tabular_encoder is not None)]
    return cls(
        image_encoder,
        tabular_encoder,
        head_hidden=head_hidden,
        dropout=dropout,
        image_mean=mean,
        image_std=std,
        tta_hflip=tta_hflip,
    )
