"""A single-tensor view of a fusion network, for MLflow's PyTorch flavour (one input array)."""

from __future__ import annotations

import torch
from torch import nn


class PackedInputClassifier(nn.Module):
    """``forward(x)`` with x (N, S*S + F) float32: the crop's pixels in [0, 1] row-major (omitted
    when the model sees no image), then the F preprocessed clinical features; returns the
    probability of malignancy (N,)."""

    def __init__(self, net: nn.Module, image_size: int | None, n_tabular: int) -> None:
        super().__init__()
        self.net = net
        self.image_size = image_size
        self.n_tabular = n_tabular

    @property
    def n_inputs(self) -> int:
        return (self.image_size or 0) ** 2 + self.n_tabular

    def pack(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        """(N, 1, S, S) image and (N, F) labs -> (N, S*S + F)."""
        parts = []
        if self.image_size:
            parts.append(image.reshape(image.shape[0], -1))
        if self.n_tabular:
            parts.append(tabular)
        return torch.cat(parts, dim=1).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"expected input (N, {self.n_inputs}), got {tuple(x.shape)}")
        n_pix = (self.image_size or 0) ** 2
        image = x[:, :n_pix].reshape(-1, 1, self.image_size, self.image_size) if self.image_size else None
        tabular = x[:, n_pix:] if self.n_tabular else None
        return torch.sigmoid(self.net(image, tabular).float())
