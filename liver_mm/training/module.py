"""The LightningModule: BCE-with-logits, AdamW, warm-up + cosine schedule, dev AUROC.

No file I/O here: data arrives from the DataModule, checkpoints and tracking are the
Trainer's and :mod:`liver_mm.training.run`'s business.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class NoduleClassifier(pl.LightningModule):
    """Wraps a network ``net(image | None, tabular | None) -> logits (N,)`` for benign (0) vs malignant (1)."""

    def __init__(
        self,
        net: nn.Module,
        use_image: bool,
        use_tabular: bool,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: float = 1.0,
        pos_weight: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        pw = None if pos_weight is None else torch.tensor(float(pos_weight))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pw)
        self.dev_auroc = BinaryAUROC()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def _inputs(self, batch: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        image = batch["image"] if self.hparams.use_image else None
        if image is not None and self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        tabular = batch["tabular"] if self.hparams.use_tabular else None
        return image, tabular

    def forward(self, image: torch.Tensor | None, tabular: torch.Tensor | None) -> torch.Tensor:
        """Logits (N,) of malignancy."""
        return self.net(image, tabular)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(*self._inputs(batch))
        loss = self.loss_fn(logits.float(), batch["label"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(*self._inputs(batch)).float()
        loss = self.loss_fn(logits, batch["label"])
        self.dev_auroc.update(torch.sigmoid(logits), batch["label"].long())
        self.log("dev_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log("dev_auc", self.dev_auroc.compute(), prog_bar=True, sync_dist=True)
        self.dev_auroc.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return torch.sigmoid(self(*self._inputs(batch)).float())

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = int(round(self.hparams.warmup_epochs * per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
