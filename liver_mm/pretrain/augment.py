"""Two-view augmentations for self-supervised pretraining on grayscale B-mode crops.

No colour jitter (the crops are grayscale): random resized crop, a small rotation, a horizontal flip (never a
vertical one: depth has a direction), gain (overall brightness), gamma, multiplicative speckle-like noise and a
light blur. Every draw comes from the global torch generator, so a seeded run is repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torchvision.transforms import v2


class RandomGain(v2.Transform):
    """Multiply the image by a gain drawn uniformly from ``gain_range`` (the scanner's overall gain), clipped to [0, 1]."""

    def __init__(self, gain_range: Sequence[float] = (0.7, 1.3)) -> None:
        super().__init__()
        self.lo, self.hi = (float(g) for g in gain_range)

    def make_params(self, flat_inputs: list) -> dict:
        return {"gain": float(torch.empty(1).uniform_(self.lo, self.hi))}

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        return (inpt * params["gain"]).clamp_(0.0, 1.0)


class RandomGamma(v2.Transform):
    """Gamma correction with a gamma drawn log-uniformly from ``gamma_range`` (images in [0, 1])."""

    def __init__(self, gamma_range: Sequence[float] = (0.7, 1.4)) -> None:
        super().__init__()
        self.log_lo, self.log_hi = (math.log(float(g)) for g in gamma_range)

    def make_params(self, flat_inputs: list) -> dict:
        return {"gamma": float(torch.empty(1).uniform_(self.log_lo, self.log_hi).exp())}

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        return v2.functional.adjust_gamma(inpt, params["gamma"])


class SpeckleNoise(v2.Transform):
    """Multiplicative noise ``x * (1 + sigma * n)``, n standard normal per pixel: a speckle-like texture."""

    def __init__(self, sigma: float = 0.15) -> None:
        super().__init__()
        self.sigma = float(sigma)

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        if self.sigma <= 0:
            return inpt
        return (inpt * (1.0 + self.sigma * torch.randn_like(inpt))).clamp_(0.0, 1.0)


def ultrasound_views(cfg: Mapping, size: int) -> v2.Compose:
    """One random view of a (1, S, S) float crop in [0, 1], output (1, size, size); ``cfg`` = ``pretrain.augment``."""
    blur_p = float(cfg["blur"])
    kernel = max(3, (size // 16) | 1)  # odd, about 6 % of the side
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=tuple(float(s) for s in cfg["crop_scale"]), antialias=True),
        v2.RandomRotation(float(cfg["degrees"])),
        v2.RandomHorizontalFlip(p=float(cfg["hflip"])),
        RandomGain(tuple(cfg["gain"])),
        RandomGamma(tuple(cfg["gamma"])),
        SpeckleNoise(float(cfg["speckle"])),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 1.5))], p=blur_p),
    ])


def two_views(batch: torch.Tensor, transform: v2.Transform) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, S, S) float -> two independently augmented views, each (N, 1, size, size)."""
    a = torch.stack([transform(x) for x in batch])
    b = torch.stack([transform(x) for x in batch])
    return a, b
