"""Late fusion (``fusion=late``): one head per modality, their logits mixed by a learned weight."""

from __future__ import annotations

import torch
from torch import nn

from liver_mm.models.branches import TwoBranchNetwork, mlp_head
from liver_mm.models.encoders import encoder_out_dim


class LateFusionClassifier(TwoBranchNetwork):
    """Each branch decides alone; a learned weight mixes the two decisions.

    ``forward(image (N, C, S, S), tabular (N, F)) -> (N,)``: ``image_head`` maps img (N, D_img) to a logit
    l_img (N,), ``tabular_head`` maps tab (N, D_tab) to l_tab (N,); the output is
    w * l_img + (1 - w) * l_tab + bias with w = sigmoid(``mix_logit``) (a scalar, 0.5 at initialisation).
    Needs both branches (the factory builds ``concat`` for a one-branch model).
    """

    def _build(self, head_hidden: int | None, dropout: float) -> None:
        image_encoder, tabular_encoder = self.image_encoder, self.tabular_encoder
        self.image_head = mlp_head(encoder_out_dim(image_encoder), head_hidden, dropout)
        self.tabular_head = mlp_head(encoder_out_dim(tabular_encoder), head_hidden, dropout)
        self.mix_logit = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(()))

    @property
    def image_weight(self) -> float:
        """w in (0, 1): the image head's share of the logit."""
        return float(torch.sigmoid(self.mix_logit.detach()))

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        l_img = self.image_head(self._image_features(image)).squeeze(-1)  # (N,)
        l_tab = self.tabular_head(self._tabular_features(tabular)).squeeze(-1)  # (N,)
        w = torch.sigmoid(self.mix_logit)
        return w * l_img + (1.0 - w) * l_tab + self.bias
