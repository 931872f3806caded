"""GPU bench (issue 16): plain loop vs the device-resident Lightning pipeline at 224 px, batch 256, bf16-mixed,
channels_last, side by side; then the paper preset's 5 image arms (m1..m5, 30 epochs) timed arm by arm.

    PYTHONPATH=. python tests/benchmarks/bench_gpu.py            # on a CUDA machine (about 3-4 minutes)
    PYTHONPATH=. python tests/benchmarks/bench_gpu.py --smoke    # tiny sizes on the CPU: checks the script runs

Needs torch, timm, pytorch_lightning, torchmetrics, numpy, pandas, scikit-learn; the study part also
hydra-core + omegaconf (it calls ``liver_mm.training.fit.fit_lightning`` with ``experiment=paper`` composed;
no MLflow). Data are random crops (speed does not depend on pixels): 1,080 crops split 0.8/0.1/0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lightning_rate(images, tabular, labels, split, a, augment: bool, dev_pass: bool) -> tuple[float, list[float]]:
    """(img/s over all epochs but the first, epoch seconds) of the device-resident Lightning pipeline, with
    the callbacks ``fit_lightning`` uses (best weights kept in memory, epoch timer)."""
    import pytorch_lightning as pl
    from bench_common import AUG, net

    from liver_mm.training.callbacks import BestWeights, EpochTimes
    from liver_mm.training.device_data import DeviceCohortDataModule
    from liver_mm.training.module import NoduleClassifier, warmup_cosine_schedule

    dm = DeviceCohortDataModule(images, tabular, labels, [str(i) for i in range(len(images))], split,
                                batch_size=a.batch_size, augment={**AUG, "enabled": augment}, seed=0)
    module = NoduleClassifier(net(tabular.shape[1], a.encoder), use_image=True, use_tabular=True,
                              scheduler=partial(warmup_cosine_schedule, warmup_epochs=1), channels_last=True)
    timer = EpochTimes()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        callbacks = [timer, *([BestWeights("dev_auc")] if dev_pass else [])]
        trainer = pl.Trainer(accelerator=a.accelerator, devices=1, precision=a.precision, benchmark=a.gpu,
                             max_epochs=a.epochs, logger=False, enable_checkpointing=False, callbacks=callbacks,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
                             limit_val_batches=None if dev_pass else 0, num_sanity_val_steps=0)
        trainer.fit(module, datamodule=dm)
    per_epoch = int((split == "train").sum()) // a.batch_size * a.batch_size
    rest = timer.seconds[1:] or timer.seconds
    return per_epoch * len(rest) / sum(rest), timer.seconds


def throughput(a) -> dict[str, float]:
    from bench_common import plain_loop

    rng = np.random.default_rng(0)
    n, s = a.n, a.image_size
    images = rng.integers(0, 256, size=(n, s, s), dtype=np.uint8)
    tabular = rng.normal(size=(n, 6)).astype(np.float32)
    labels = np.tile([0, 1], n // 2 + 1)[:n]
    n_train, n_dev = int(0.8 * n), int(0.1 * n)
    split = np.array(["train"] * n_train + ["dev"] * n_dev + ["test"] * (n - n_train - n_dev))
    tr = split == "train"
    say(f"plain loop warm-up ({a.device})")
    plain_loop(images[tr], tabular[tr], labels[tr], 1, a.batch_size, a.device, a.bf16, a.encoder)
    out = {"plain": 0.0, "run": 0.0, "no_aug_no_dev": 0.0, "aug_no_dev": 0.0}
    for r in range(a.rounds):  # interleaved, best of each: a hiccup of the shared host costs one round, not the line
        say(f"round {r + 1}/{a.rounds}: plain loop, {a.epochs} epochs of {n_train // a.batch_size} batches")
        out["plain"] = max(out["plain"], plain_loop(images[tr], tabular[tr], labels[tr], a.epochs, a.batch_size,
                                                    a.device, a.bf16, a.encoder))
        say(f"round {r + 1}/{a.rounds}: pipeline as run (augmentation, dev pass, best weights kept)")
        rate, secs = lightning_rate(images, tabular, labels, split, a, augment=True, dev_pass=True)
        out["run"] = max(out["run"], rate)
        say(f"   epoch 1 {secs[0]:.2f} s (warm-up), later epochs {np.mean(secs[1:]):.3f} s")
        say(f"round {r + 1}/{a.rounds}: breakdown without augmentation and dev pass; with augmentation, no dev pass")
        for key, aug in (("no_aug_no_dev", False), ("aug_no_dev", True)):
            out[key] = max(out[key], lightning_rate(images, tabular, labels, split, a, augment=aug, dev_pass=False)[0])
        say(f"   plain {out['plain']:.0f}, run {out['run']:.0f}, no aug/no dev {out['no_aug_no_dev']:.0f}, "
            f"aug/no dev {out['aug_no_dev']:.0f} img/s (best so far)")
    return out


def paper_study(a, compile_arm: bool) -> list[tuple[str, float, tuple[float, ...]]]:
    """(arm, fit seconds, epoch seconds) for m1..m5 through ``fit.fit_lightning`` with ``experiment=paper``."""
    from bench_common import ARM_TABULAR, compose, fit_timed, random_cohort

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-study-") as tmp:
        arms = list(ARM_TABULAR) if not compile_arm else ["m1"]
        for arm in arms:
            overrides = ["experiment=paper", f"modalities={arm}", f"image_encoder={a.encoder}",
                         f"trainer.accelerator={a.accelerator}", f"trainer.precision={a.precision}"]
            if a.smoke:
                overrides += [f"image_size={a.image_size}", f"loader.batch_size={a.batch_size}",
                              f"trainer.max_epochs={a.epochs}", "trainer.benchmark=false"]
            if compile_arm:
                overrides.append("trainer.compile=true")
            cfg = compose(overrides, Path(tmp))
            cohort, feats = random_cohort(a.n, int(cfg.image_size), ARM_TABULAR[arm])
            say(f"paper study{' (torch.compile)' if compile_arm else ''}: arm {arm}, {int(cfg.image_size)} px, "
                f"batch {cfg.loader.batch_size}, {cfg.trainer.max_epochs} epochs")
            wall, epochs = fit_timed(cfg, cohort, feats)
            results.append((arm, wall, epochs))
            say(f"   {arm}: {wall:.1f} s (epoch 1 {epochs[0]:.2f} s, later {np.mean(epochs[1:]):.3f} s/epoch)")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (a dry run of the script)")
    p.add_argument("--encoder", default="mobilenetv2_100")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile arm")
    p.add_argument("--no-study", action="store_true", help="skip the paper study")
    a = p.parse_args(argv)
    a.gpu = torch.cuda.is_available() and not a.smoke
    a.device, a.accelerator = ("cuda", "gpu") if a.gpu else ("cpu", "cpu")
    a.precision, a.bf16 = ("bf16-mixed", True) if a.gpu else ("32-true", False)
    a.n, a.image_size, a.batch_size, a.epochs, a.rounds = (1080, 224, 256, 40, 3) if not a.smoke else (96, 32, 16, 2, 1)
    if a.smoke:
        a.encoder = "mobilenetv2_050"
    say(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0) if a.gpu else 'cpu'}, "
        f"{a.n} crops at {a.image_size} px, batch {a.batch_size}, {a.encoder}")
    if not a.gpu and not a.smoke:
        say("no CUDA device: run with --smoke for a CPU dry run")
        return 1
    torch.backends.cudnn.benchmark = a.gpu
    rates = throughput(a)
    study = [] if a.no_study else paper_study(a, compile_arm=False)
    compiled = [] if a.no_study or a.no_compile else paper_study(a, compile_arm=True)
    print("\n=== GPU bench summary ===" if a.gpu else "\n=== smoke run summary (CPU, tiny sizes) ===")
    print(f"{a.encoder} + MLP, {a.image_size} px, batch {a.batch_size}, {a.precision}, channels_last, "
          f"data on the device; img/s after the first epoch")
    print(f"  plain PyTorch loop (no augmentation, no dev pass) : {rates['plain']:9.1f} img/s")
    print(f"  liver-mm pipeline as run (aug + dev + best)       : {rates['run']:9.1f} img/s")
    print(f"  ratio pipeline / plain loop                       : {rates['run'] / rates['plain']:.3f}  (target >= 0.9)")
    print(f"  breakdown: no augmentation, no dev pass           : {rates['no_aug_no_dev']:9.1f} img/s "
          f"(ratio {rates['no_aug_no_dev'] / rates['plain']:.3f})")
    print(f"  breakdown: augmentation, no dev pass              : {rates['aug_no_dev']:9.1f} img/s "
          f"(ratio {rates['aug_no_dev'] / rates['plain']:.3f})")
    if study:
        total = sum(w for _, w, _ in study)
        print(f"paper preset study (experiment=paper{', smoke sizes' if a.smoke else ''}), fit_lightning per arm:")
        for arm, wall, ep in study:
            print(f"  {arm}: {wall:6.1f} s  (epoch 1 {ep[0]:.2f} s incl. warm-up; later {np.mean(ep[1:]):.3f} s/epoch)")
        print(f"  total training, 5 arms: {total:.1f} s  (target < 60 s)")
    if compiled:
        arm, wall, ep = compiled[0]
        print(f"  torch.compile ({arm}): {wall:.1f} s; epoch 1 {ep[0]:.2f} s (compile warm-up), "
              f"later {np.mean(ep[1:]):.3f} s/epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
