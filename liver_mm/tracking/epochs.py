"""Per-epoch curves into the run, through the same client as everything else (no second MLflow API)."""

from __future__ import annotations

import pytorch_lightning as pl
from mlflow.tracking import MlflowClient

from liver_mm.tracking.runs import log_metrics

EPOCH_METRICS = ("train_loss", "dev_loss", "dev_auc")


class EpochMetricsToMlflow(pl.Callback):
    """Logs ``train_loss``, ``dev_loss``, ``dev_auc`` (the checkpoint-selection metric) and ``lr``
    at each epoch end, step = epoch; only on global rank 0, never during the sanity check."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k in EPOCH_METRICS}
        if trainer.optimizers:
            values["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        if values:
            log_metrics(self.client, self.run_id, values, step=int(trainer.current_epoch))
