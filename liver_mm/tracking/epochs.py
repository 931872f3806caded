"""Per-epoch curves into the run, through the same client as everything else (no second MLflow API)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations

from liver_mm.tracking.runs import log_metrics

log = logging.getLogger(__name__)
EPOCH_METRICS = ("train_loss", "dev_loss", "dev_auc")


class EpochMetricsToMlflow(pl.Callback):
    """Logs ``train_loss``, ``dev_loss``, ``dev_auc`` (the checkpoint-selection metric) and ``lr``
    at each epoch end, step = epoch; only on global rank 0, never during the sanity check.

    MLflow's logging thread writes them (``synchronous=False``), so a store write (~5 ms to sqlite) never
    stalls an epoch; :meth:`flush` waits for every write, and runs when the fit ends or fails.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.pending: list[RunOperations] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k in EPOCH_METRICS}
        if trainer.optimizers:
            values["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        if values:
            ops = log_metrics(self.client, self.run_id, values, step=int(trainer.current_epoch), synchronous=False)
            if ops is not None:
                self.pending.append(ops)

    def flush(self) -> None:
        """Wait until every epoch's metrics are in the store (raises what a failed write raised)."""
        pending, self.pending = self.pending, []
        for ops in pending:
            ops.wait()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        try:  # the curves up to the failure are kept; the failure itself is what propagates
            self.flush()
        except Exception:  # noqa: BLE001
            log.exception("could not write the epoch metrics of run %s", self.run_id)
