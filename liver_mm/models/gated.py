"""Gated fusion (``fusion=gated``): a learned sigmoid gate per dimension of the concatenated embeddings."""

from __future__ import annotations

import torch
from torch import nn

from liver_mm.models.branches import TwoBranchNetwork, mlp_head
from liver_mm.models.encoders import encoder_out_dim


class GatedFusionClassifier(TwoBranchNetwork):
    """Concatenation whose every dimension is weighted by a gate computed from both branches.

    ``forward(image (N, C, S, S), tabular (N, F)) -> (N,)``: z = [img (N, D_img) ++ tab (N, D_tab)] (N, D),
    g = sigmoid(``gate``(z)) (N, D) with ``gate`` = Linear(D, D), then ``head``(g * z) -> (N,). The gate
    depends on the input, so the clinical features can switch image features on or off (and vice versa).
    Needs both branches (the factory builds ``concat`` for a one-branch model).
    """

    def _build(self, head_hidden: int | None, dropout: float) -> None:
        image_encoder, tabular_encoder = self.image_encoder, self.tabular_encoder
        self.embed_dim = encoder_out_dim(image_encoder) + encoder_out_dim(tabular_encoder)
        self.gate = nn.Linear(self.embed_dim, self.embed_dim)
        self.head = mlp_head(self.embed_dim, head_hidden, dropout)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        z = torch.cat([self._image_features(image), self._tabular_features(tabular)], dim=1)  # (N, D)
        return self.head(torch.sigmoid(self.gate(z)) * z).squeeze(-1)
