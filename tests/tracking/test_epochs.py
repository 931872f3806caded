"""Per-epoch curves: written by MLflow's logging thread, all in the store once the fit ends or fails."""

from __future__ import annotations

import time
from types import SimpleNamespace

import torch
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from omegaconf import OmegaConf

from liver_mm.tracking.epochs import EpochMetricsToMlflow
from liver_mm.tracking.store import connect


def _trainer(epoch: int) -> SimpleNamespace:
    metrics = {"train_loss": torch.tensor(0.5 - epoch / 10), "dev_auc": torch.tensor(0.6 + epoch / 10),
               "dev_loss": torch.tensor(0.7), "not_a_curve": torch.tensor(1.0)}
    opt = SimpleNamespace(param_groups=[{"lr": 1e-3 * (epoch + 1)}])
    return SimpleNamespace(sanity_checking=False, is_global_zero=True, callback_metrics=metrics,
                           optimizers=[opt], current_epoch=epoch)


def test_epoch_curves_are_written_off_the_training_thread_and_all_kept(tmp_path, monkeypatch):
    slow_write = SqlAlchemyStore.log_batch

    def log_batch(self, *args, **kwargs):  # a slow store: each write takes 0.3 s
        time.sleep(0.3)
        return slow_write(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", log_batch)
    client, exp = connect(OmegaConf.create({"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                                            "experiment_name": "epochs", "artifact_root": str(tmp_path / "art")}))
    run_id = client.create_run(exp).info.run_id
    cb = EpochMetricsToMlflow(client, run_id)
    start = time.perf_counter()
    for epoch in range(3):
        cb.on_train_epoch_end(_trainer(epoch), None)
    assert time.perf_counter() - start < 0.3  # the epochs did not wait for the store
    cb.on_exception(_trainer(2), None, KeyboardInterrupt())  # a fit that ends by an interrupt keeps its curves
    history = sorted(client.get_metric_history(run_id, "dev_auc"), key=lambda m: m.step)
    assert [(m.step, round(m.value, 6)) for m in history] == [(0, 0.6), (1, 0.7), (2, 0.8)]
    lr = sorted(client.get_metric_history(run_id, "lr"), key=lambda m: m.step)
    assert [m.value for m in lr] == [1e-3, 2e-3, 3e-3]
    assert client.get_metric_history(run_id, "not_a_curve") == [] and cb.pending == []
