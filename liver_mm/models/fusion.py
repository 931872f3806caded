"""Late-fusion classifier: image embedding ++ clinical embedding -> MLP head -> one logit.

m1 is image-only (no tabular branch), m2..m5 add a tabular branch over growing clinical
groups; a tabular-only model (no image) is supported for ablations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from liver_mm.models.encoders import TabularEncoder, create_image_encoder, encoder_out_dim

#: ImageNet RGB mean/std averaged over the channels: the grayscale equivalent for a stem
#: whose RGB kernels were summed into one channel.
IMAGENET_GRAY_MEAN = (0.485 + 0.456 + 0.406) / 3
IMAGENET_GRAY_STD = (0.229 + 0.224 + 0.225) / 3


class FusionClassifier(nn.Module):
    """Concatenate the branch embeddings and map them to one malignancy logit.

    ``forward(image (N, C, S, S) float in [0, 1] | None, tabular (N, F) float | None) -> (N,)``.
    Images are normalised inside with fixed ``image_mean`` / ``image_std`` buffers (saved
    in the state dict), so a checkpoint needs no external preprocessing constants.
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
        super().__init__()
        self.tta_hflip = bool(tta_hflip)
        if image_encoder is None and tabular_encoder is None:
            raise ValueError("FusionClassifier needs an image encoder, a tabular encoder, or both")
        self.image_encoder = image_encoder
        self.tabular_encoder = tabular_encoder
        mean = torch.as_tensor(image_mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(image_std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if (std <= 0).any():
            raise ValueError(f"image_std must be > 0, got {image_std}")
        self.register_buffer("image_mean", mean)
        self.register_buffer("image_std", std)
        dims = [encoder_out_dim(e) for e in (image_encoder, tabular_encoder) if e is not None]
        self.embed_dim = sum(dims)
        if head_hidden:
            self.head = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(self.embed_dim, int(head_hidden)),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(int(head_hidden), 1),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, 1))

    @property
    def n_tabular(self) -> int:
        """Number of clinical input columns F expected (0 without a tabular branch)."""
        if self.tabular_encoder is None:
            return 0
        return int(getattr(self.tabular_encoder, "in_dim", 0))

    def _image_features(self, image: torch.Tensor | None) -> torch.Tensor:
        if image is None:
            raise ValueError("this model has an image branch: forward() needs image=(N, C, S, S)")
        if image.ndim == 3:  # (N, S, S) -> (N, 1, S, S)
            image = image.unsqueeze(1)
        if image.ndim != 4:
            raise ValueError(f"image must be (N, C, S, S), got shape {tuple(image.shape)}")
        if image.dtype == torch.uint8:
            image = image.float() / 255.0
        image = (image - self.image_mean.to(image.dtype)) / self.image_std.to(image.dtype)
        return self.image_encoder(image)

    def _tabular_features(self, tabular: torch.Tensor | None) -> torch.Tensor:
        if tabular is None:
            raise ValueError("this model has a tabular branch: forward() needs tabular=(N, F)")
        if tabular.ndim != 2 or (self.n_tabular and tabular.shape[1] != self.n_tabular):
            raise ValueError(f"tabular must be (N, {self.n_tabular}), got shape {tuple(tabular.shape)}")
        return self.tabular_encoder(tabular)

    def forward(self, image: torch.Tensor | None = None, tabular: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N,) of malignancy; image (N, C, S, S) in [0, 1] (uint8 also accepted), tabular (N, F).

        With ``tta_hflip``, evaluation (not training) averages the logits of the crop and its mirror image
        (left-right only: depth has a direction in ultrasound)."""
        if self.tta_hflip and not self.training and self.image_encoder is not None and image is not None:
            return 0.5 * (self._logits(image, tabular) + self._logits(image.flip(-1), tabular))
        return self._logits(image, tabular)

    def _logits(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        feats = []
        if self.image_encoder is not None:
            feats.append(self._image_features(image))
        if self.tabular_encoder is not None:
            feats.append(self._tabular_features(tabular))
        elif tabular is not None and tabular.ndim == 2 and tabular.shape[1] > 0:
            raise ValueError(
                f"model has no tabular branch but got {tabular.shape[1]} clinical column(s); "
                "pass tabular=None or an (N, 0) tensor"
            )
        z = feats[0] if len(feats) == 1 else torch.cat(feats, dim=1)
        return self.head(z).squeeze(-1)


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
) -> FusionClassifier:
    """Factory for Hydra ``_target_``: ``image`` = kwargs of :func:`create_image_encoder`
    (None: no image branch), ``tabular`` = kwargs of :class:`TabularEncoder` except
    ``in_dim`` (None: its defaults). ``n_tabular`` is the preprocessor's F_out; 0 means no
    tabular branch (the image-only m1), whatever ``tabular`` says. ``tta_hflip``: mirror-image
    test-time augmentation in evaluation (see :class:`FusionClassifier`)."""
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
    return FusionClassifier(
        image_encoder,
        tabular_encoder,
        head_hidden=head_hidden,
        dropout=dropout,
        image_mean=mean,
        image_std=std,
        tta_hflip=tta_hflip,
    )
