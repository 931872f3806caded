"""Training throughput: the liver-mm pipeline (DataModule + LightningModule + Trainer) against a plain
PyTorch loop on the same cached crops, model and batch size. Prints images/s and the ratio.

    python tests/benchmarks/bench_train.py [--image-size 128] [--n 512] [--epochs 3] [--batch-size 32]

Augmentation is off in both (it is per-sample CPU work that a plain loop would pay too); its own
cost is reported separately. Target: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch

from liver_mm.models import build_fusion_model
from liver_mm.runtime import tune_malloc
from liver_mm.training.datamodule import CohortDataModule, ultrasound_augmentation
from liver_mm.training.module import NoduleClassifier, warmup_cosine_schedule

AUG = {"hflip": 0.5, "degrees": 10.0, "translate": 0.05, "scale": [0.9, 1.1], "brightness": 0.2,
       "contrast": 0.2, "gamma": [0.8, 1.25], "enabled": True}


def make_data(n: int, size: int, n_tab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    tabular = rng.normal(size=(n, n_tab)).astype(np.float32)
    labels = rng.integers(0, 2, size=n)
    return images, tabular, labels


def net(n_tab: int, name: str):
    torch.manual_seed(0)
    return build_fusion_model(image={"name": name}, tabular={"hidden": [64, 32]}, n_tabular=n_tab)


def plain_loop(images, tabular, labels, epochs, bs, name) -> float:
    model = net(tabular.shape[1], name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x_all = torch.from_numpy(images)
    t_all = torch.from_numpy(tabular)
    y_all = torch.from_numpy(labels).float()
    n = len(images) // bs * bs
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        perm = torch.randperm(len(images))[:n]
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            x = x_all[idx].unsqueeze(1).float().div_(255).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(x, t_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    return seen / (time.perf_counter() - start)


def pipeline(images, tabular, labels, epochs, bs, name) -> float:
    split = np.array(["train"] * len(images))
    dm = CohortDataModule(images, tabular, labels, [str(i) for i in range(len(images))], split,
                          batch_size=bs, augment={**AUG, "enabled": False})
    module = NoduleClassifier(net(tabular.shape[1], name), use_image=True, use_tabular=True,
                              scheduler=partial(warmup_cosine_schedule, warmup_epochs=0), channels_last=True)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0)
    n = len(images) // bs * bs
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return n * epochs / (time.perf_counter() - start)


def augmentation_rate(images, n: int = 256) -> float:
    aug = ultrasound_augmentation(AUG)
    x = torch.from_numpy(images[:n]).unsqueeze(1).float().div(255)
    start = time.perf_counter()
    for i in range(n):
        aug(x[i])
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--encoder", default="mobilenetv2_100")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    tune_malloc()
    torch.set_num_threads(os.cpu_count() or 1)
    images, tabular, labels = make_data(a.n, a.image_size, 6)
    plain_loop(images[:64], tabular[:64], labels[:64], 1, a.batch_size, a.encoder)  # warm-up
    plain, pipe = 0.0, 0.0
    for _ in range(a.rounds):  # interleaved, best of each: robust to a busy machine
        plain = max(plain, plain_loop(images, tabular, labels, a.epochs, a.batch_size, a.encoder))
        pipe = max(pipe, pipeline(images, tabular, labels, a.epochs, a.batch_size, a.encoder))
    aug = augmentation_rate(images)
    print(f"\ntraining throughput, {a.encoder} + MLP, {a.image_size} px, batch {a.batch_size}, "
          f"{torch.get_num_threads()} threads, channels_last")
    print(f"  plain PyTorch loop : {plain:8.1f} img/s")
    print(f"  liver-mm pipeline  : {pipe:8.1f} img/s")
    print(f"  ratio pipeline/plain: {pipe / plain:.3f}   (target >= 0.9)")
    print(f"  augmentation alone : {aug:8.1f} img/s per core (train split only)")


if __name__ == "__main__":
    main()
