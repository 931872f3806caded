"""What every fusion network shares: the two branch encoders, image normalisation, input checks and the
mirror-image test-time augmentation. Subclasses define only how the embeddings become one logit (``_logits``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: ImageNet RGB mean/std averaged over the channels: the grayscale equivalent for a stem
#: whose RGB kernels were summed into one channel.
IMAGENET_GRAY_MEAN = (0.485 + 0.456 + 0.406) / 3
IMAGENET_GRAY_STD = (0.229 + 0.224 + 0.225) / 3


def mlp_head(in_dim: int, head_hidden: int | None, dropout: float) -> nn.Sequential:
    """(N, in_dim) -> (N, 1): Dropout, Linear(in_dim, hidden), ReLU, Dropout, Linear(hidden, 1); or, with
    ``head_hidden`` None / 0, Dropout and one Linear."""
    if head_hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, int(head_hidden)), nn.ReLU(),
                             nn.Dropout(dropout), nn.Linear(int(head_hidden), 1))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, 1))


class BranchNetwork(nn.Module):
    """Base of the fusion networks: ``forward(image (N, C, S, S) in [0, 1] | None, tabular (N, F) | None) -> (N,)``.

    Holds ``image_encoder`` (timm, (N, C, S, S) -> (N, D_img)) and ``tabular_encoder`` ((N, F) -> (N, D_tab)),
    either may be None. Images are normalised inside with fixed ``image_mean`` / ``image_std`` buffers (saved
    in the state dict), so a checkpoint needs no external preprocessing constants.
    """

    def __init__(
        self,
        image_encoder: nn.Module | None,
        tabular_encoder: nn.Module | None,
        image_mean: float | Sequence[float] = IMAGENET_GRAY_MEAN,
        image_std: float | Sequence[float] = IMAGENET_GRAY_STD,
        tta_hflip: bool = False,
    ) -> None:
        super().__init__()
        self.tta_hflip = bool(tta_hflip)
        if image_encoder is None and tabular_encoder is None:
            raise ValueError(f"{type(self).__name__} needs an image encoder, a tabular encoder, or both")
        self.image_encoder = image_encoder
        self.tabular_encoder = tabular_encoder
        mean = torch.as_tensor(image_mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(image_std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if (std <= 0).any():
            raise ValueError(f"image_std must be > 0, got {image_std}")
        self.register_buffer("image_mean", mean)
        self.register_buffer("image_std", std)

    @property
    def n_tabular(self) -> int:
        """Number of clinical input columns F expected (0 without a tabular branch)."""
        if self.tabular_encoder is None:
            return 0
        return int(getattr(self.tabular_encoder, "in_dim", 0))

    def _normalised_image(self, image: torch.Tensor | None) -> torch.Tensor:
        """(N, C, S, S) or (N, S, S), float in [0, 1] or uint8 -> normalised (N, C, S, S)."""
        if image is None:
            raise ValueError("this model has an image branch: forward() needs image=(N, C, S, S)")
        if image.ndim == 3:  # (N, S, S) -> (N, 1, S, S)
            image = image.unsqueeze(1)
        if image.ndim != 4:
            raise ValueError(f"image must be (N, C, S, S), got shape {tuple(image.shape)}")
        if image.dtype == torch.uint8:
            image = image.float() / 255.0
        return (image - self.image_mean.to(image.dtype)) / self.image_std.to(image.dtype)

    def _image_features(self, image: torch.Tensor | None) -> torch.Tensor:
        """Pooled image embedding (N, D_img)."""
        return self.image_encoder(self._normalised_image(image))

    def _tabular_features(self, tabular: torch.Tensor | None) -> torch.Tensor:
        """Clinical embedding (N, D_tab)."""
        if tabular is None:
            raise ValueError("this model has a tabular branch: forward() needs tabular=(N, F)")
        if tabular.ndim != 2 or (self.n_tabular and tabular.shape[1] != self.n_tabular):
            raise ValueError(f"tabular must be (N, {self.n_tabular}), got shape {tuple(tabular.shape)}")
        return self.tabular_encoder(tabular)

    def _check_no_tabular(self, tabular: torch.Tensor | None) -> None:
        if self.tabular_encoder is None and tabular is not None and tabular.ndim == 2 and tabular.shape[1] > 0:
            raise ValueError(
                f"model has no tabular branch but got {tabular.shape[1]} clinical column(s); "
                "pass tabular=None or an (N, 0) tensor"
            )

    def forward(self, image: torch.Tensor | None = None, tabular: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N,) of malignancy; image (N, C, S, S) in [0, 1] (uint8 also accepted), tabular (N, F).

        With ``tta_hflip``, evaluation (not training) averages the logits of the crop and its mirror image
        (left-right only: depth has a direction in ultrasound)."""
        if self.tta_hflip and not self.training and self.image_encoder is not None and image is not None:
            return 0.5 * (self._logits(image, tabular) + self._logits(image.flip(-1), tabular))
        return self._logits(image, tabular)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class TwoBranchNetwork(BranchNetwork):
    """Base of the fusions that need both branches (late, FiLM, gated); subclasses build their layers in
    ``_build(head_hidden, dropout)`` and combine the branches in ``_logits``. (The factory builds ``concat``
    for a one-branch model.)"""

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
            raise ValueError(f"{type(self).__name__} needs both an image and a tabular encoder")
        self._build(head_hidden, dropout)

    def _build(self, head_hidden: int | None, dropout: float) -> None:
        raise NotImplementedError

