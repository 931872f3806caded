"""Trainer callbacks of a fit: the best weights kept in memory, and the wall time of each epoch."""

from __future__ import annotations

import math
import time

import pytorch_lightning as pl
import torch


class BestWeights(pl.Callback):
    """Keeps a copy of the module's weights from the epoch with the highest ``monitor`` (dev AUC), in memory.

    The same choice as ``ModelCheckpoint(monitor=..., mode="max", save_top_k=1)``: the first validated epoch
    is kept (a NaN score counts as -inf), a later one only when its score is strictly higher. The copy is a
    device-to-device clone of ``state_dict()``, so an epoch that improves costs no host round trip and no file
    (a checkpoint file costs a copy to the host, pickling and a disk write: a measurable share of a 0.1-s GPU
    epoch). :meth:`restore` loads the kept weights back into the module, bit for bit.
    """

    def __init__(self, monitor: str = "dev_auc") -> None:
        self.monitor = monitor
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        score = -math.inf if math.isnan(score) else score
        if self.best_score is not None and not score > self.best_score:
            return
        self.best_score, self.best_epoch = score, int(trainer.current_epoch)
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def restore(self, module: torch.nn.Module) -> bool:
        """Load the kept weights into ``module``; False when no epoch was validated."""
        if self.state is None:
            return False
        module.load_state_dict(self.state)
        return True


class EpochTimes(pl.Callback):
    """Wall seconds of each training epoch (incl. its dev pass); the first one holds ``torch.compile``'s
    and cuDNN's warm-up, so it is reported apart from the rest."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._start:
            self._sync(pl_module)
            self.seconds.append(time.perf_counter() - self._start)
            self._start = 0.0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start:  # no dev pass ran this epoch
            self._sync(pl_module)
            self.seconds.append(time.perf_counter() - self._start)
            self._start = 0.0
