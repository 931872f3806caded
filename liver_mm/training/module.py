"""The LightningModule: BCE-with-logits, a configured optimizer and schedule, dev AUROC.

No file I/O here: data arrives from the DataModule; checkpoints and tracking are the Trainer's
and :mod:`liver_mm.training.run`'s business. The optimizer and the schedule are Hydra partials
(``model.optimizer`` / ``model.scheduler`` with ``_partial_: true``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pytorch_lightning as pl
import torch
from timm.utils import ModelEmaV3
from torch import nn
from torchmetrics.classification import BinaryAUROC


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: float,
                           warmup_epochs: float = 1.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up over ``warmup_epochs`` epochs, cosine to 0 at ``total_steps``."""
    warmup = int(round(warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, warmup_steps=warmup,
                                                                 total_steps=total_steps))


OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class NoduleClassifier(pl.LightningModule):
    """Wraps a network ``net(image | None, tabular | None) -> logits (N,)`` for benign (0) vs malignant (1).

    ``optimizer(params)`` builds the optimizer; ``scheduler(optimizer, total_steps=, steps_per_epoch=)``
    a per-step schedule (None: constant learning rate). ``label_smoothing`` ε trains on targets
    y(1-ε) + ε/2; ``ema_decay`` keeps timm's ``ModelEmaV3`` of the weights, which is what evaluates.
    """

    def __init__(
        self,
        net: nn.Module,
        use_image: bool,
        use_tabular: bool,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        pos_weight: float | None = None,
        channels_last: bool = False,
        label_smoothing: float = 0.0,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer or partial(torch.optim.AdamW, lr=1e-3, weight_decay=1e-4)
        self.scheduler_factory = scheduler
        pw = None if pos_weight is None else torch.tensor(float(pos_weight))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pw)
        self.dev_auroc = BinaryAUROC()
        # the epoch's mean training loss (weighted by batch size, as Lightning's on-epoch mean), summed on the
        # device and logged once per epoch: a ``self.log`` per step costs ~1 ms of host time in Lightning's
        # result collection, and torchmetrics' MeanMetric makes the host wait (NaN check, host-built weight)
        self.register_buffer("_train_loss_sum", torch.zeros(()), persistent=False)
        self._train_loss_n = 0
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # timm's weight EMA: evaluated (dev selection, predictions, the saved model) instead of the raw weights
        self.ema = None if not ema_decay else ModelEmaV3(self.net, decay=float(ema_decay), use_warmup=True)

    @property
    def inference_net(self) -> nn.Module:
        """The network that evaluates and is saved: the EMA copy when enabled, else the trained one."""
        return self.net if self.ema is None else self.ema.module

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
        target = batch["label"]
        if self.hparams.label_smoothing:
            target = target * (1.0 - self.hparams.label_smoothing) + 0.5 * self.hparams.label_smoothing
        loss = self.loss_fn(logits.float(), target)
        n = len(batch["label"])
        self._train_loss_sum += loss.detach() * n
        self._train_loss_n += n
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum.zero_()
        self._train_loss_n = 0

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.net, step=self.global_step)
        if batch_idx + 1 == self.trainer.num_training_batches:  # logged before the dev pass and the epoch-end hooks
            self.log("train_loss", self._train_loss_sum / self._train_loss_n, on_step=False, on_epoch=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.inference_net(*self._inputs(batch)).float()
        loss = self.loss_fn(logits, batch["label"])
        self.dev_auroc.update(torch.sigmoid(logits), batch["label"].long())
        self.log("dev_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.log("dev_auc", self.dev_auroc.compute(), prog_bar=True, sync_dist=True)
        self.dev_auroc.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """Probabilities of malignancy (N,)."""
        return torch.sigmoid(self.inference_net(*self._inputs(batch)).float())

    def configure_optimizers(self) -> dict:
        opt = self.optimizer_factory(self.net.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": opt}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        sched = self.scheduler_factory(opt, total_steps=total, steps_per_epoch=per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
