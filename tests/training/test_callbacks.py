"""The fit's callbacks: the best weights kept in memory choose as ModelCheckpoint does, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from liver_mm.models import build_fusion_model
from liver_mm.training.callbacks import BestWeights, EpochTimes
from liver_mm.training.device_data import DeviceCohortDataModule
from liver_mm.training.module import NoduleClassifier


def _fit(tmp_path: Path, epochs: int = 6):
    rng = np.random.default_rng(0)
    n = 64
    images = rng.integers(0, 256, size=(n, 16, 16), dtype=np.uint8)
    tab = rng.normal(size=(n, 3)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    split = np.array(["train"] * 40 + ["dev"] * 24)
    dm = DeviceCohortDataModule(images, tab, labels, [str(i) for i in range(n)], split, batch_size=8, seed=0)
    pl.seed_everything(0)
    net = build_fusion_model(image={"name": "mobilenetv2_050"}, tabular={"hidden": [8]}, n_tabular=3)
    module = NoduleClassifier(net, use_image=True, use_tabular=True,
                              optimizer=lambda p: torch.optim.SGD(p, lr=0.5))  # a large step: the dev AUC moves
    best, ckpt, timer = BestWeights("dev_auc"), ModelCheckpoint(dirpath=tmp_path, monitor="dev_auc", mode="max",
                                                                 save_top_k=1, save_weights_only=True), EpochTimes()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, callbacks=[best, ckpt, timer],
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    return module, best, ckpt, timer


@pytest.mark.slow  # a real training with ModelCheckpoint beside ours
def test_best_weights_are_the_checkpoint_modelcheckpoint_keeps(tmp_path: Path):
    module, best, ckpt, timer = _fit(tmp_path)
    saved = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    assert best.best_score == float(ckpt.best_model_score)
    assert f"epoch={best.best_epoch}-" in Path(ckpt.best_model_path).name
    assert 0 < best.best_epoch < 5  # neither the first nor the last epoch: the choice is tested
    final = {k: v.clone() for k, v in module.state_dict().items()}
    assert best.restore(module)
    restored = module.state_dict()
    assert restored.keys() == saved.keys()
    assert all(torch.equal(restored[k], saved[k]) for k in saved)  # the very tensors ModelCheckpoint wrote
    weight = "net.head.0.weight" if "net.head.0.weight" in saved else next(k for k in saved if k.endswith("weight"))
    assert not torch.equal(final[weight], saved[weight])  # and not the last epoch's
    assert len(timer.seconds) == 6


def test_nothing_kept_before_a_validated_epoch():
    best = BestWeights("dev_auc")
    assert best.state is None and not best.restore(torch.nn.Linear(1, 1))
