"""Device-resident training data (``loader.device_resident``): the cohort lives on the training device.

The crops (N, S, S) uint8, the labs and the labels are moved to the device once per process; batches are
index gathers on the device, shuffled per epoch by a seeded generator; augmentation runs batched on the
device with per-sample random parameters (one fused affine resampling and element-wise colour steps). No
DataLoader, no worker processes, and nothing in a batch's path makes the host wait for the device (no tensor
built from host values, no ``.item()``; the epoch's order goes over once, pinned and asynchronous). Used by
``trainer=gpu`` (``loader.device_resident: auto``); the same code runs on ``cpu``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F


class DeviceAugmentation(nn.Module):
    """The CPU path's ultrasound augmentation (conf ``augment``) on a batch (B, 1, S, S) float in [0, 1], fused.

    Per sample: horizontal flip (p = ``hflip``), rotation ±``degrees``, translation ±``translate`` of the side,
    scale in ``scale`` (one affine resampling: nearest, zero fill, as torchvision's defaults), brightness and
    contrast factors in 1 ± ``brightness``/``contrast`` (torchvision semantics: scale; blend with the image
    mean; the two in a random order per sample, as ColorJitter), then gamma x**g with g log-uniform in
    ``gamma``. Never a vertical flip. All parameters are drawn at once on the images' device (torch's generator
    of that device, seeded by ``seed_everything``) and applied with one ``affine_grid``/``grid_sample`` and
    element-wise steps: a handful of kernels per batch, nothing copied from the host and nothing waiting for
    the GPU. (kornia, which draws its parameters on the host and runs one module per transform, cost 11% of the
    H200's training throughput at 224 px, batch 256; torchvision v2 draws one parameter set per call, i.e. per
    batch.) ``last_params`` keeps the last draw.
    """

    def __init__(self, cfg: Mapping) -> None:
        super().__init__()
        self.hflip = float(cfg["hflip"])
        self.degrees, self.translate = float(cfg["degrees"]), float(cfg["translate"])
        self.scale = tuple(float(v) for v in cfg["scale"])
        self.brightness, self.contrast = float(cfg["brightness"]), float(cfg["contrast"])
        self.log_gamma = tuple(math.log(float(g)) for g in cfg["gamma"])
        self.affine = self.degrees > 0 or self.translate > 0 or self.scale != (1.0, 1.0)
        self.active = (self.hflip > 0 or self.affine or self.brightness > 0 or self.contrast > 0
                       or self.log_gamma != (0.0, 0.0))
        self.last_params: dict[str, torch.Tensor] = {}

    @staticmethod
    def _uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * u

    def _theta(self, flip: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor
               ) -> torch.Tensor:
        """(B, 2, 3) output -> input maps of affine_grid for x' = T + s R(angle) F x (F: the mirror)."""
        rad = angle * (math.pi / 180.0)
        cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
        f = torch.where(flip, -1.0, 1.0).to(cos.dtype)
        inv = torch.stack([torch.stack([f * cos, f * sin], -1), torch.stack([-sin, cos], -1)], -2)  # (B, 2, 2)
        t = -(inv @ shift.unsqueeze(-1))  # (B, 2, 1): -A^-1 T
        return torch.cat([inv, t], dim=-1)

    def _brightness_contrast(self, x: torch.Tensor, ub: torch.Tensor, uc: torch.Tensor, brightness_first: torch.Tensor,
                             p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Brightness (x b) and contrast (blend with the image mean by c), each clipped to [0, 1]; in a random
        order per sample when both are on, as torchvision's ColorJitter (its order is drawn per call). Each step
        is ``clip(s x + t mean(x))``: brightness (s, t) = (b, 0), contrast (c, 1 - c)."""
        steps = []
        if self.brightness > 0:
            b = p["brightness"] = self._uniform(ub, 1 - self.brightness, 1 + self.brightness)
            steps.append((b, torch.zeros_like(b)))
        if self.contrast > 0:
            c = p["contrast"] = self._uniform(uc, 1 - self.contrast, 1 + self.contrast)
            steps.append((c, 1 - c))
        if len(steps) == 2:
            p["brightness_first"] = brightness_first
            (sb, tb), (sc, tc) = steps
            steps = [(torch.where(brightness_first, sb, sc), torch.where(brightness_first, tb, tc)),
                     (torch.where(brightness_first, sc, sb), torch.where(brightness_first, tc, tb))]
        for s, t in steps:
            s, t = s.view(-1, 1, 1, 1).to(x.dtype), t.view(-1, 1, 1, 1).to(x.dtype)
            x = (s * x + t * x.mean(dim=(1, 2, 3), keepdim=True)).clamp_(0.0, 1.0)
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        b, _, h, w = x.shape
        u = torch.rand(b, 9, device=x.device)
        flip = u[:, 0] < self.hflip
        p = {"flip": flip}
        if self.affine:
            angle = self._uniform(u[:, 1], -self.degrees, self.degrees)
            shift = self._uniform(u[:, 2:4], -self.translate, self.translate) * 2.0  # fraction of side, in [-1, 1] units
            scale = self._uniform(u[:, 4], *self.scale)
            grid = F.affine_grid(self._theta(flip, angle, shift, scale), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid.to(x.dtype), mode="nearest", padding_mode="zeros", align_corners=False)
            p.update(angle=angle, translations=torch.stack([shift[:, 0] * (w / 2), shift[:, 1] * (h / 2)], -1),
                     scale=scale)
        elif self.hflip > 0:
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.brightness > 0 or self.contrast > 0:
            x = self._brightness_contrast(x, u[:, 5], u[:, 6], u[:, 8] < 0.5, p)
        if self.log_gamma != (0.0, 0.0):
            p["gamma"] = self._uniform(u[:, 7], *self.log_gamma).exp()
            x = x.clamp(0.0, 1.0).pow(p["gamma"].view(-1, 1, 1, 1).to(x.dtype))
        self.last_params = p
        return x.clamp_(0.0, 1.0)


class DeviceCohort:
    """The cohort's arrays as tensors on ``device``: images (N, S, S) uint8 or None, tabular (N, F) float32,
    labels (N,) float32."""

    def __init__(self, images: np.ndarray | None, tabular: np.ndarray, labels: np.ndarray,
                 device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.images = None if images is None else torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.tabular = torch.as_tensor(np.asarray(tabular, dtype=np.float32)).to(self.device)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32)).to(self.device)

    def batch(self, rows: torch.Tensor, augment: DeviceAugmentation | None = None) -> dict[str, torch.Tensor]:
        """Rows ``rows`` (B,) as the CPU loader's batch: image (B, 1, S, S) float in [0, 1] (absent without
        images), tabular (B, F), label (B,)."""
        out = {"tabular": self.tabular[rows], "label": self.labels[rows]}
        if self.images is not None:
            image = self.images[rows].unsqueeze(1).float().div_(255.0)
            out["image"] = image if augment is None else augment(image)
        return out


class DeviceBatches:
    """An epoch of batches over cohort rows ``index``: reshuffled on every ``iter`` by ``generator`` when
    ``shuffle``; rank ``rank`` of ``world`` takes every ``world``-th row (equal shares when shuffling)."""

    def __init__(self, data: DeviceCohort, index: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool,
                 augment: DeviceAugmentation | None = None, generator: torch.Generator | None = None,
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.batch_size, self.shuffle, self.drop_last = data, int(batch_size), shuffle, drop_last
        self.index = torch.as_tensor(np.asarray(index, dtype=np.int64))
        self.augment, self.generator, self.rank, self.world = augment, generator, int(rank), int(world)

    def _rows(self) -> int:
        n = len(self.index)
        return n // self.world if self.shuffle else len(range(self.rank, n, self.world))

    def __len__(self) -> int:
        n = self._rows()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self.index
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=self.generator)]
        order = order[self.rank::self.world][: self._rows()]
        if self.data.device.type == "cuda":  # one pinned, asynchronous copy per epoch: the host never waits
            order = order.pin_memory()
        order = order.to(self.data.device, non_blocking=True)
        for b in range(len(self)):
            yield self.data.batch(order[b * self.batch_size:(b + 1) * self.batch_size], self.augment)


class DeviceCohortDataModule(pl.LightningDataModule):
    """:class:`~liver_mm.training.datamodule.CohortDataModule`'s splits and batches, device-resident.

    ``split`` (N,) 'train' | 'dev' | 'test'; augmentation on train only; ``device`` None = the Trainer's
    root device (set in ``setup``); ``seed`` seeds the per-epoch shuffling. Same drop-last rule as the CPU
    path: the last partial training batch is dropped when the split holds more than one batch.
    """

    def __init__(self, images: np.ndarray | None, tabular: np.ndarray, labels: np.ndarray, case_ids: Sequence[str],
                 split: np.ndarray, batch_size: int = 32, augment: Mapping | None = None,
                 device: torch.device | str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.arrays = (images, tabular, np.asarray(labels))
        self.case_ids, self.split, self.batch_size = list(case_ids), np.asarray(split), int(batch_size)
        use_aug = images is not None and augment is not None and augment.get("enabled", True)
        self.augment = DeviceAugmentation(augment) if use_aug else None  # type: ignore[arg-type]
        self.device = None if device is None else torch.device(device)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.data: DeviceCohort | None = None

    def setup(self, stage: str | None = None) -> None:
        device = self.device
        if device is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.data is None or self.data.device != device:
            self.data = DeviceCohort(*self.arrays, device=device)

    def _index(self, split: str | Sequence[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.split, [split] if isinstance(split, str) else list(split)))

    def _batches(self, split: str | Sequence[str], train: bool) -> DeviceBatches:
        if self.data is None:
            self.setup()
        index = self._index(split)
        rank, world = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        assert self.data is not None
        return DeviceBatches(self.data, index, self.batch_size, shuffle=train,
                             drop_last=train and len(index) > self.batch_size,
                             augment=self.augment if train else None, generator=self.generator,
                             rank=rank, world=world if train or split == "dev" else 1)

    def train_dataloader(self) -> DeviceBatches:
        return self._batches("train", train=True)

    def val_dataloader(self) -> DeviceBatches:
        return self._batches("dev", train=False)

    def test_dataloader(self) -> DeviceBatches:
        return self._batches("test", train=False)

    def predict_loader(self, split: str | Sequence[str]) -> DeviceBatches:
        """All rows of ``split`` (one or several) in cohort order, unaugmented, on one process."""
        if self.data is None:
            self.setup()
        assert self.data is not None
        return DeviceBatches(self.data, self._index(split), self.batch_size, shuffle=False, drop_last=False)
