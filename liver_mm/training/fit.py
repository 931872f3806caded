"""The two ways a study model is fitted: a Lightning fusion network, or a scikit-learn estimator.

Both return the probabilities of malignancy for the rows of the evaluated parts (dev, test), in
cohort order. Nothing here talks to MLflow: callers pass callbacks (e.g. the tracking one).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.models.spec import build_net, net_config
from liver_mm.training.callbacks import BestWeights, EpochTimes
from liver_mm.training.datamodule import CohortDataModule
from liver_mm.training.device_data import DeviceCohortDataModule
from liver_mm.training.devices import resolve_devices
from liver_mm.training.module import NoduleClassifier

log = logging.getLogger(__name__)
EVAL_SPLITS = ("dev", "test")
NOT_TRAINER_ARGS = ("channels_last", "num_threads", "compile")
GPU_ACCELERATORS = ("gpu", "cuda")


def trainer_kwargs(cfg: DictConfig) -> tuple[dict, bool]:
    """(Trainer arguments, channels_last) from the ``trainer`` group."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(kwargs, dict)
    channels_last = bool(kwargs.get("channels_last", False))
    for key in NOT_TRAINER_ARGS:
        kwargs.pop(key, None)
    if "devices" in kwargs:
        kwargs["devices"] = resolve_devices(kwargs["devices"])  # auto-per-job: this sweep job's GPU
    return kwargs, channels_last


def on_gpu(cfg: DictConfig) -> bool:
    """Whether the run trains on a CUDA GPU (``trainer.accelerator`` gpu/cuda, or auto with one present)."""
    acc = str(cfg.trainer.accelerator)
    return acc in GPU_ACCELERATORS or (acc == "auto" and torch.cuda.is_available())


def device_resident(cfg: DictConfig) -> bool:
    """``loader.device_resident``: true/false, or auto (default) = true when training on a GPU."""
    value = cfg.loader.get("device_resident", False)
    if str(value) == "auto":
        return on_gpu(cfg)
    return bool(value)


def pin_memory(cfg: DictConfig) -> bool:
    """``loader.pin_memory``; null means: pin when training on a CUDA GPU."""
    if cfg.loader.pin_memory is not None:
        return bool(cfg.loader.pin_memory)
    return str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def datamodule(cfg: DictConfig, cohort: PreparedCohort,
               feats: Features) -> CohortDataModule | DeviceCohortDataModule:
    """The run's batches: a DataLoader over host arrays, or (``loader.device_resident``) the device-resident one."""
    augment = OmegaConf.to_container(cfg.augment, resolve=True)
    case_ids, split = cohort.df["case_id"].astype(str).tolist(), cohort.df["split"].to_numpy()
    if device_resident(cfg):
        return DeviceCohortDataModule(feats.images, feats.tabular, feats.labels, case_ids, split,
                                      batch_size=int(cfg.loader.batch_size), augment=augment,  # type: ignore[arg-type]
                                      seed=int(cfg.seed))
    return CohortDataModule(
        feats.images, feats.tabular, feats.labels, case_ids, split, batch_size=int(cfg.loader.batch_size),
        num_workers=int(cfg.loader.num_workers), pin_memory=pin_memory(cfg),
        augment=augment,  # type: ignore[arg-type]
    )


def build_module(cfg: DictConfig, feats: Features) -> NoduleClassifier:
    """The LightningModule of ``model`` for this run's modality set."""
    _, channels_last = trainer_kwargs(cfg)
    n_tab = feats.preprocessor.n_features_out
    net = build_net(net_config(cfg.model.net, bool(cfg.modalities.image), n_tab))
    scheduler = cfg.model.get("scheduler")
    return NoduleClassifier(
        net, use_image=bool(cfg.modalities.image), use_tabular=n_tab > 0,
        optimizer=instantiate(cfg.model.optimizer),
        scheduler=None if scheduler is None else instantiate(scheduler),
        pos_weight=cfg.model.pos_weight, channels_last=channels_last,
        label_smoothing=float(cfg.model.get("label_smoothing", 0.0) or 0.0),
        ema_decay=cfg.model.ema.decay if cfg.model.get("ema") and cfg.model.ema.get("enabled") else None,
    )


def predict(module: NoduleClassifier, dm: CohortDataModule | DeviceCohortDataModule,
            splits: Sequence[str] = EVAL_SPLITS) -> np.ndarray:
    """Probabilities (n,) for the rows of ``splits`` in cohort order, by a one-device Trainer (eval mode):
    on the CPU, or on the GPU that holds a device-resident cohort; the module is left on the CPU."""
    import pytorch_lightning as pl

    device = dm.data.device if isinstance(dm, DeviceCohortDataModule) and dm.data is not None else None
    accel, devices = ("gpu", [device.index or 0]) if device is not None and device.type == "cuda" else ("cpu", 1)
    trainer = pl.Trainer(accelerator=accel, devices=devices, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    out = trainer.predict(module, dataloaders=dm.predict_loader(list(splits)))
    module.cpu()
    return torch.cat(out).float().cpu().numpy().astype(np.float64) if out else np.zeros(0)


@dataclass(frozen=True)
class Fitted:
    """A fitted model: dev+test probabilities (n,) in cohort order, the model, and how many processes trained it."""

    probs: np.ndarray
    model: Any
    world_size: int = 1
    epoch_seconds: tuple[float, ...] = ()  # wall time of each training epoch incl. its dev pass (Lightning only)


class _Interrupted(KeyboardInterrupt):
    """Lightning turns Ctrl-C into ``SystemExit(1)`` after its graceful shutdown; this restores it."""


def fit_lightning(cfg: DictConfig, cohort: PreparedCohort, feats: Features,
                  callbacks: Sequence[object] = ()) -> Fitted | None:
    """Train the fusion network, keep the weights of the best dev-AUC epoch; the fitted module on rank 0 (None elsewhere).

    Raises ``KeyboardInterrupt`` when the run was interrupted (Ctrl-C / SIGINT / SIGTERM).
    """
    from pytorch_lightning.callbacks import EarlyStopping

    kwargs, _ = trainer_kwargs(cfg)
    kwargs["enable_checkpointing"] = False  # no checkpoint files: the best weights are kept in memory
    module = build_module(cfg, feats)
    dm = datamodule(cfg, cohort, feats)
    root = tempfile.mkdtemp(prefix="liver-mm-fit-")  # the Trainer's default_root_dir; nothing is kept there
    try:
        select_best = str((cfg.get("checkpoint") or {}).get("select", "best")) == "best"
        best = [BestWeights("dev_auc")] if select_best else []
        stopping = []
        if cfg.early_stopping.get("enabled", True):
            stopping.append(EarlyStopping(monitor="dev_auc", mode="max", patience=int(cfg.early_stopping.patience)))
        timer = EpochTimes()
        trainer = instantiate(kwargs, logger=False, callbacks=[*best, *stopping, timer, *callbacks],
                              default_root_dir=root)
        compiled = torch.compile(module) if bool(cfg.trainer.get("compile", False)) else module
        try:
            trainer.fit(compiled, datamodule=dm)  # Lightning unwraps a compiled module (forward is compiled)
        except SystemExit:
            if trainer.interrupted:
                raise _Interrupted() from None
            raise
        if trainer.interrupted:
            raise _Interrupted()
        if trainer.global_rank != 0:
            return None
        if best and best[0].restore(module):
            log.info("best epoch %d: dev AUC %.4f", best[0].best_epoch + 1, best[0].best_score)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if timer.seconds:
        log.info("epoch 1: %.2f s (incl. warm-up%s); later epochs: %.2f s each", timer.seconds[0],
                 ", torch.compile" if compiled is not module else "",
                 float(np.mean(timer.seconds[1:])) if len(timer.seconds) > 1 else float("nan"))
    module = module.cpu()
    return Fitted(predict(module, dm), module, int(trainer.world_size), tuple(timer.seconds))


def fit_sklearn(cfg: DictConfig, cohort: PreparedCohort, feats: Features) -> Fitted:
    """Fit ``model.estimator`` on the training rows' preprocessed labs."""
    if feats.tabular.shape[1] == 0:
        raise ValueError("model=logreg needs clinical features: use modalities=tabular_only or m2..m5")
    est = instantiate(cfg.model.estimator)
    split = cohort.df["split"].to_numpy()
    train = split == "train"
    est.fit(feats.tabular[train], feats.labels[train])
    rows = np.isin(split, EVAL_SPLITS)
    return Fitted(est.predict_proba(feats.tabular[rows])[:, 1].astype(np.float64), est)
