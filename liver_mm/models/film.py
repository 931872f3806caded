"""FiLM fusion (``fusion=film``): the clinical embedding conditions the image feature maps (DAFT / FiLM).

timm encoders are created without classifier, so ``encoder(x) = encoder.forward_head(encoder.forward_features(x))``:
the maps come from ``forward_features`` and are pooled by the encoder's own ``forward_head`` (its global pooling,
flatten and dropout), after the modulation.
"""

from __future__ import annotations

import torch
from torch import nn

from liver_mm.models.branches import TwoBranchNetwork, mlp_head
from liver_mm.models.encoders import encoder_out_dim


class FiLMFusionClassifier(TwoBranchNetwork):
    """Feature-wise linear modulation of the image's last feature maps by the clinical embedding.

    ``forward(image (N, C, S, S), tabular (N, F)) -> (N,)``: maps M = forward_features(image) (N, D_img, h, w)
    (or tokens (N, L, D_img)); ``film``(tab (N, D_tab)) -> (N, 2 D_img) split into Δγ, β; then
    M' = ReLU((1 + Δγ) * M + β) per channel, pooled by the encoder's ``forward_head`` -> (N, D_pool) ->
    ``head`` -> (N,). The ReLU (as in FiLM's residual blocks) matters: average pooling commutes with a
    per-channel affine map, so without it the modulation would act on the pooled vector only. Needs both
    branches (the factory builds ``concat`` for a one-branch model) and a timm encoder (``forward_features``
    and ``forward_head``).
    """

    def _build(self, head_hidden: int | None, dropout: float) -> None:
        image_encoder, tabular_encoder = self.image_encoder, self.tabular_encoder
        for method in ("forward_features", "forward_head"):
            if not callable(getattr(image_encoder, method, None)):
                raise ValueError(f"fusion=film needs a timm image encoder with {method}(); "
                                 f"{type(image_encoder).__name__} has none")
        self.channels = int(getattr(image_encoder, "num_features", 0) or encoder_out_dim(image_encoder))
        pooled = int(getattr(image_encoder, "head_hidden_size", 0) or self.channels)  # timm: after forward_head
        self.film = nn.Linear(encoder_out_dim(tabular_encoder), 2 * self.channels)
        self.head = mlp_head(pooled, head_hidden, dropout)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        maps = self.image_encoder.forward_features(self._normalised_image(image))
        d_gamma, beta = self.film(self._tabular_features(tabular)).chunk(2, dim=1)  # (N, D_img) each
        if maps.ndim == 4 and maps.shape[1] == self.channels:  # (N, D_img, h, w)
            d_gamma, beta = d_gamma[:, :, None, None], beta[:, :, None, None]
        elif maps.ndim == 3 and maps.shape[-1] == self.channels:  # tokens (N, L, D_img)
            d_gamma, beta = d_gamma[:, None, :], beta[:, None, :]
        else:
            raise ValueError(f"fusion=film: image features of shape {tuple(maps.shape)} have no channel axis "
                             f"of size {self.channels}")
        maps = torch.relu((1.0 + d_gamma.to(maps.dtype)) * maps + beta.to(maps.dtype))
        pooled = self.image_encoder.forward_head(maps)  # (N, D_img): the encoder's pooling (and dropout)
        return self.head(pooled).squeeze(-1)
