"""Self-supervised objectives (lightly's heads and losses) and the training loop of the timm image encoder.

``simclr``: NT-Xent between two views' projections. ``byol``: an online network predicts a momentum copy's
projection (negative cosine). ``dino``: a student matches a momentum teacher's centred, sharpened softmax.
Two global views per image for all three (DINO's extra local crops are left out: the crops are small).
The loop is plain torch on CPU or one GPU, seeded (``torch.manual_seed``; the shuffling has its own generator),
so the same crops and settings give the same weights on the same machine.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import timm
import torch
from torch import nn

from liver_mm.models.branches import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD
from liver_mm.pretrain.augment import two_views, ultrasound_views

METHODS = ("simclr", "byol", "dino")


@dataclass(frozen=True)
class PretrainSettings:
    """What determines the pretrained weights besides the crops (the cache key hashes all of it)."""

    encoder: str = "mobilenetv2_100"
    image_size: int = 128
    method: str = "simclr"
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    proj_dim: int = 128
    seed: int = 0
    augment: Mapping = field(default_factory=lambda: {
        "crop_scale": [0.4, 1.0], "degrees": 10.0, "hflip": 0.5, "gain": [0.7, 1.3], "gamma": [0.7, 1.4],
        "speckle": 0.15, "blur": 0.3})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"pretrain.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"pretrain.epochs must be >= 1 and pretrain.batch_size >= 2, got {self.epochs}, "
                             f"{self.batch_size}")
        if not timm.is_model(self.encoder):
            raise ValueError(f"unknown timm model name {self.encoder!r} (see timm.list_models())")

    @classmethod
    def from_config(cls, cfg: Mapping) -> PretrainSettings:
        """From a composed train/study config: its ``pretrain`` node, ``image_encoder`` and ``image_size``."""
        p = cfg["pretrain"]
        return cls(encoder=str(cfg["image_encoder"]), image_size=int(cfg["image_size"]), method=str(p["method"]),
                   epochs=int(p["epochs"]), batch_size=int(p["batch_size"]), lr=float(p["lr"]),
                   weight_decay=float(p["weight_decay"]), proj_dim=int(p["proj_dim"]), seed=int(p["seed"]),
                   augment={k: (list(v) if not isinstance(v, int | float | str) else v)
                            for k, v in dict(p["augment"]).items()})

    def as_dict(self) -> dict:
        """Plain, JSON-able settings (sorted augment keys)."""
        out = {k: getattr(self, k) for k in ("encoder", "image_size", "method", "epochs", "batch_size", "lr",
                                              "weight_decay", "proj_dim", "seed")}
        out["augment"] = {k: self.augment[k] for k in sorted(self.augment)}
        return out


class SSLModel(nn.Module):
    """Backbone + the method's heads; ``loss(view0, view1, epoch)`` and ``after_step(progress)`` (momentum)."""

    def __init__(self, backbone: nn.Module, method: str, proj_dim: int, epochs: int) -> None:
        super().__init__()
        from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
        from lightly.models.modules import (
            BYOLPredictionHead,
            BYOLProjectionHead,
            DINOProjectionHead,
            SimCLRProjectionHead,
        )
        from lightly.models.utils import deactivate_requires_grad

        dim = int(backbone.num_features)
        self.method, self.backbone = method, backbone
        if method == "simclr":
            self.head = SimCLRProjectionHead(dim, 512, proj_dim)
            self.criterion = NTXentLoss(temperature=0.5)
        elif method == "byol":
            self.head = BYOLProjectionHead(dim, 1024, proj_dim)
            self.predictor = BYOLPredictionHead(proj_dim, 1024, proj_dim)
            self.criterion = NegativeCosineSimilarity()
        else:
            self.head = DINOProjectionHead(dim, 512, 64, proj_dim * 2, batch_norm=True)
            self.criterion = DINOLoss(output_dim=proj_dim * 2, warmup_teacher_temp_epochs=max(1, epochs // 3))
        if method in ("byol", "dino"):
            self.backbone_momentum = copy.deepcopy(backbone)
            if method == "dino":  # weight-normed last layer: deepcopy refuses it; a fresh head with its weights
                self.head_momentum = DINOProjectionHead(dim, 512, 64, proj_dim * 2, batch_norm=True)
                self.head_momentum.load_state_dict(self.head.state_dict())
            else:
                self.head_momentum = copy.deepcopy(self.head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.head_momentum)

    def _momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_momentum(self.backbone_momentum(x)).detach()

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, epoch: int) -> torch.Tensor:
        """The method's loss of two views of the same images."""
        if self.method == "simclr":
            return self.criterion(self.head(self.backbone(x0)), self.head(self.backbone(x1)))
        if self.method == "byol":
            p0, p1 = (self.predictor(self.head(self.backbone(x))) for x in (x0, x1))
            z0, z1 = self._momentum(x0), self._momentum(x1)
            return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        teacher = [self._momentum(x0), self._momentum(x1)]
        student = [self.head(self.backbone(x0)), self.head(self.backbone(x1))]
        return self.criterion(teacher, student, epoch=epoch)

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """BYOL / DINO: move the momentum copies toward the online network (momentum 0.99 -> 1, cosine)."""
        if self.method == "simclr":
            return
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(int(progress * 1000), 1000, 0.99, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.head, self.head_momentum, m)


@dataclass(frozen=True)
class PretrainResult:
    """The pretrained backbone's state dict (a timm state dict, 1-channel stem) and the mean loss per epoch."""

    state_dict: dict[str, torch.Tensor]
    losses: list[float]
    n_images: int


def pretrain_encoder(crops: np.ndarray, settings: PretrainSettings, device: str = "cpu",
                     on_epoch: Callable[[int, float], None] | None = None, progress: bool = True) -> PretrainResult:
    """Pretrain ``settings.encoder`` on crops (N, S, S) uint8 (N >= 2); ``on_epoch(epoch, mean_loss)`` per epoch.

    Seeded by ``settings.seed`` inside a forked RNG: the caller's random state is the same afterwards whether the
    weights were trained now or came from the cache.
    """
    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.dtype != np.uint8 or len(crops) < 2:
        raise ValueError(f"pretraining needs >= 2 crops (N, S, S) uint8, got {crops.dtype} {crops.shape}")
    cuda = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(settings.seed)
        return _pretrain(crops, settings, device, on_epoch, progress)


def _pretrain(crops: np.ndarray, settings: PretrainSettings, device: str,
              on_epoch: Callable[[int, float], None] | None, progress: bool) -> PretrainResult:
    from tqdm.auto import tqdm

    order = torch.Generator().manual_seed(settings.seed)
    backbone = timm.create_model(settings.encoder, num_classes=0, in_chans=1)
    model = SSLModel(backbone, settings.method, settings.proj_dim, settings.epochs).to(device)
    images = torch.from_numpy(np.ascontiguousarray(crops)).unsqueeze(1).float().div_(255.0)
    views = ultrasound_views(settings.augment, settings.image_size)
    mean, std = float(IMAGENET_GRAY_MEAN), float(IMAGENET_GRAY_STD)
    batch = min(settings.batch_size, len(images))
    per_epoch = max(1, len(images) // batch)  # the last partial batch is dropped (BatchNorm, contrastive pairs)
    total = per_epoch * settings.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc=f"pretrain {settings.method}", unit="step", disable=not progress)
    step = 0
    for epoch in range(settings.epochs):
        perm = torch.randperm(len(images), generator=order)
        running = 0.0
        for b in range(per_epoch):
            x0, x1 = two_views(images[perm[b * batch:(b + 1) * batch]], views)
            x0, x1 = ((x - mean) / std for x in (x0.to(device), x1.to(device)))
            loss = model.loss(x0, x1, epoch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretraining loss is {loss.item()} at epoch {epoch + 1}: lower pretrain.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            model.after_step(step / total)
            running += float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        losses.append(running / per_epoch)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    bar.close()
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.backbone.state_dict().items()}
    return PretrainResult(state, losses, len(images))
