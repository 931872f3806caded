"""Gated fusion (``fusion=gated``): a learned sigmoid gate per dimension of the concatenated embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from liver_mm.models.branches import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD, BranchNetwork, mlp_head
from liver_mm.models.encoders import encoder_out_dim


class GatedFusionClassifier(BranchNetwork):
    """Concatenation whose every dimension is weighted by a gate computed from both branches.

    ``forward(image (N, C, S, S), tabular (N, F)) -> (N,)``: z = [img (N, D_img) ++ tab (N, D_tab)] (N, D),
    g = sigmoid(``gate``(z)) (N, D) with ``gate`` = Linear(D, D), then ``head``(g * z) -> (N,). The gate
    depends on the input, so the clinical features can switch image features on or off (and vice versa).
    Needs both branches (the factory builds ``concat`` for a one-branch model).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        tabular_encoder: nn.Module,
        head_hidden: int | None = 64,
        dropout: float = 0.2,
        image_mean: float | Sequence[float] = IMAGENET_GRAY_MEAN,
        image_std: float | Sequence[float] = IMAGENET_GRAY_STD,
        tta_hflip: bool = False,
    ) -> None:
        super().__init__(image_encoder, tabular_encoder, image_mean, image_std, tta_hflip)
        if image_encoder is None or tabular_encoder is None:
            raise ValueError("GatedFusionClassifier needs both an image and a tabular encoder")
        self.embed_dim = encoder_out_dim(image_encoder) + encoder_out_dim(tabular_encoder)
        self.gate = nn.Linear(self.embed_dim, self.embed_dim)
        self.head = mlp_head(self.embed_dim, head_hidden, dropout)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        z = torch.cat([self._image_features(image), self._tabular_features(tabular)], dim=1)  # (N, D)
        return self.head(torch.sigmoid(self.gate(z)) * z).squeeze(-1)
