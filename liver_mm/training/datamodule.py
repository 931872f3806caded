"""The DataModule: cached crops + preprocessed labs -> batches of (image, tabular, label, case_id).

Everything here works on in-memory arrays prepared by :mod:`liver_mm.cohort.prepare`;
nothing is decoded or read from disk per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2


class RandomGamma(v2.Transform):
    """Gamma correction with a gamma drawn log-uniformly from ``gamma_range`` (images in [0, 1])."""

    def __init__(self, gamma_range: Sequence[float] = (0.8, 1.25)) -> None:
        super().__init__()
        self.log_lo, self.log_hi = (float(np.log(g)) for g in gamma_range)

    def make_params(self, flat_inputs: list) -> dict:  # torchvision >= 0.21 name
        return {"gamma": float(torch.empty(1).uniform_(self.log_lo, self.log_hi).exp())}

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        return v2.functional.adjust_gamma(inpt, params["gamma"])


def ultrasound_augmentation(cfg: Mapping) -> v2.Compose:
    """Augmentations plausible for B-mode crops: horizontal flip, small affine, brightness/contrast/gamma.

    Never a vertical flip: depth (top to bottom) has a direction in ultrasound.
    """
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=float(cfg["hflip"])),
            v2.RandomAffine(
                degrees=float(cfg["degrees"]),
                translate=(float(cfg["translate"]), float(cfg["translate"])),
                scale=tuple(float(s) for s in cfg["scale"]),
            ),
            v2.ColorJitter(brightness=float(cfg["brightness"]), contrast=float(cfg["contrast"])),
            RandomGamma(tuple(cfg["gamma"])),
        ]
    )


class CohortDataset(Dataset):
    """Rows ``index`` of the cohort arrays.

    images: (N, S, S) uint8 or None; tabular: (N, F) float32; labels: (N,) 0/1.
    Items are dicts: image (1, S, S) float32 in [0, 1] (absent without images), tabular (F,),
    label () float32, case_id str.
    """

    def __init__(
        self,
        index: np.ndarray,
        images: np.ndarray | None,
        tabular: np.ndarray,
        labels: np.ndarray,
        case_ids: Sequence[str],
        transform: v2.Transform | None = None,
    ) -> None:
        self.index = np.asarray(index, dtype=np.int64)
        self.images = None if images is None else torch.from_numpy(np.ascontiguousarray(images))
        self.tabular = torch.as_tensor(tabular, dtype=torch.float32)
        self.labels = torch.as_tensor(labels, dtype=torch.float32)
        self.case_ids = list(case_ids)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        row = int(self.index[i])
        item = {"tabular": self.tabular[row], "label": self.labels[row], "case_id": self.case_ids[row]}
        if self.images is not None:
            image = self.images[row].unsqueeze(0).float().div_(255.0)
            if self.transform is not None:
                image = self.transform(image).clamp_(0.0, 1.0)
            item["image"] = image
        return item


class CohortDataModule(pl.LightningDataModule):
    """Train/dev/test loaders over one cohort's prepared arrays.

    ``split`` is an (N,) array of 'train' | 'dev' | 'test'; augmentation applies to train only.
    """

    def __init__(
        self,
        images: np.ndarray | None,
        tabular: np.ndarray,
        labels: np.ndarray,
        case_ids: Sequence[str],
        split: np.ndarray,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        augment: Mapping | None = None,
    ) -> None:
        super().__init__()
        self.images, self.tabular, self.labels = images, tabular, np.asarray(labels)
        self.case_ids, self.split = list(case_ids), np.asarray(split)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        use_aug = images is not None and augment is not None and augment.get("enabled", True)
        self.train_transform = ultrasound_augmentation(augment) if use_aug else None

    def dataset(self, split: str | Sequence[str], augment: bool = False) -> CohortDataset:
        """Rows of one split (or of several, in cohort order)."""
        index = np.flatnonzero(np.isin(self.split, [split] if isinstance(split, str) else list(split)))
        transform = self.train_transform if augment else None
        return CohortDataset(index, self.images, self.tabular, self.labels, self.case_ids, transform)

    def _loader(self, split: str | Sequence[str], train: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split, augment=train),
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(self.dataset(split)) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_loader(self, split: str | Sequence[str]) -> DataLoader:
        """Deterministic loader over one or several splits in cohort order (no augmentation, no shuffling)."""
        return self._loader(split, train=False)
