"""The LightningModule's training step: no host round trip, and the epoch's loss as Lightning averaged it."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from liver_mm.models import build_fusion_model
from liver_mm.training.device_data import DeviceCohortDataModule
from liver_mm.training.module import NoduleClassifier
from tests.training.conftest import HostWaits


def _module() -> NoduleClassifier:
    torch.manual_seed(0)
    net = build_fusion_model(image={"name": "mobilenetv2_050"}, tabular={"hidden": [8]}, n_tabular=3)
    return NoduleClassifier(net, use_image=True, use_tabular=True)


def _batch(n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return {"image": torch.rand(n, 1, 16, 16, generator=g), "tabular": torch.randn(n, 3, generator=g),
            "label": (torch.arange(n) % 2).float()}


def test_a_training_step_never_makes_the_host_wait():
    module = _module().train()
    batch = _batch(8)
    with HostWaits() as mode:
        loss = module.training_step(batch, 0)
        loss.backward()
    assert mode.calls == []


def test_the_epoch_loss_is_the_batch_size_weighted_mean_of_the_step_losses():
    module = _module().train()
    module.on_train_epoch_start()
    losses = [module.training_step(_batch(n), i) for i, n in enumerate((8, 8, 3))]
    expected = (losses[0] * 8 + losses[1] * 8 + losses[2] * 3) / 19
    assert module._train_loss_n == 19
    torch.testing.assert_close(module._train_loss_sum / 19, expected.detach(), rtol=0, atol=1e-7)


def test_train_loss_reaches_the_callbacks_once_per_epoch(tmp_path):
    rng = np.random.default_rng(0)
    images, tab = rng.integers(0, 256, size=(40, 16, 16), dtype=np.uint8), rng.normal(size=(40, 3)).astype("float32")
    split = np.array(["train"] * 32 + ["dev"] * 8)
    dm = DeviceCohortDataModule(images, tab, np.arange(40) % 2, [str(i) for i in range(40)], split, batch_size=8)
    seen, steps = [], []

    class Grab(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            steps.append([])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            steps[-1].append(float(outputs["loss"]))

        def on_train_epoch_end(self, trainer, pl_module):  # as the MLflow epoch callback reads it
            seen.append(float(trainer.callback_metrics["train_loss"]))

    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                         callbacks=[Grab()], enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(_module(), datamodule=dm)
    assert [len(s) for s in steps] == [4, 4]  # 32 training rows, batches of 8
    np.testing.assert_allclose(seen, [np.mean(s) for s in steps], rtol=0, atol=1e-6)  # this epoch's, not the last
