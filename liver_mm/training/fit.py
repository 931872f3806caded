"""The two ways a study model is fitted: a Lightning fusion network, or a scikit-learn estimator.

Both return the probabilities of malignancy for the dev and test rows, in cohort order.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from liver_mm.training.datamodule import CohortDataModule
from liver_mm.training.module import NoduleClassifier
from liver_mm.training.tracking import tracking_uri

if TYPE_CHECKING:
    from liver_mm.training.cohort import PreparedCohort
    from liver_mm.training.run import Features

log = logging.getLogger(__name__)
EVAL_SPLITS = ("dev", "test")


def net_config(cfg: DictConfig, n_tabular: int) -> dict:
    """The network's constructor arguments for this modality set (saved with the model)."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert isinstance(net, dict)
    if not cfg.modalities.image:
        net["image"] = None
    net["n_tabular"] = int(n_tabular)
    return net


def build_net(net_cfg: dict) -> nn.Module:
    return instantiate(net_cfg, _convert_="all")


def trainer_kwargs(cfg: DictConfig) -> tuple[dict, bool]:
    """(Trainer arguments, channels_last) from the ``trainer`` group."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(kwargs, dict)
    channels_last = bool(kwargs.pop("channels_last", False))
    kwargs.pop("num_threads", None)
    return kwargs, channels_last


def pin_memory(cfg: DictConfig) -> bool:
    """``loader.pin_memory``; null means: pin when training on a CUDA GPU."""
    if cfg.loader.pin_memory is not None:
        return bool(cfg.loader.pin_memory)
    return str(cfg.trainer.accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def datamodule(cfg: DictConfig, cohort: PreparedCohort, feats: Features) -> CohortDataModule:
    aug = OmegaConf.to_container(cfg.augment, resolve=True)
    return CohortDataModule(
        feats.images,
        feats.tabular,
        feats.labels,
        cohort.df["case_id"].astype(str).tolist(),
        cohort.df["split"].to_numpy(),
        batch_size=int(cfg.loader.batch_size),
        num_workers=int(cfg.loader.num_workers),
        pin_memory=pin_memory(cfg),
        augment=aug,  # type: ignore[arg-type]
    )


@torch.inference_mode()
def predict_probs(module: NoduleClassifier, dm: CohortDataModule, splits: Sequence[str]) -> np.ndarray:
    """Probabilities (n,) for the rows of ``splits``, in cohort row order, with the module in eval mode."""
    module.eval()
    out = [module.predict_step(batch, i).cpu() for i, batch in enumerate(dm.predict_loader(splits))]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def fit_lightning(
    cfg: DictConfig, cohort: PreparedCohort, feats: Features, run_id: str | None
) -> tuple[np.ndarray, NoduleClassifier] | None:
    """Train the fusion network; best checkpoint on dev AUC; returns (dev+test probs, module) on rank 0."""
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import MLFlowLogger

    kwargs, channels_last = trainer_kwargs(cfg)
    net = build_net(net_config(cfg, feats.preprocessor.n_features_out))
    module = NoduleClassifier(
        net,
        use_image=bool(cfg.modalities.image),
        use_tabular=feats.preprocessor.n_features_out > 0,
        lr=float(cfg.model.optimizer.lr),
        weight_decay=float(cfg.model.optimizer.weight_decay),
        warmup_epochs=float(cfg.model.scheduler.warmup_epochs),
        pos_weight=cfg.model.pos_weight,
        channels_last=channels_last,
    )
    dm = datamodule(cfg, cohort, feats)
    logger = MLFlowLogger(
        experiment_name=str(cfg.logger.experiment_name),
        tracking_uri=tracking_uri(cfg.logger.tracking_uri),
        run_id=run_id,
        log_model=False,
    )
    ckpt_dir = Path(tempfile.mkdtemp(prefix="liver-mm-ckpt-"))
    try:
        ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="dev_auc", mode="max",
                               save_top_k=1, save_weights_only=True)
        stop = EarlyStopping(monitor="dev_auc", mode="max", patience=int(cfg.early_stopping.patience))
        trainer = instantiate(kwargs, logger=logger, callbacks=[ckpt, stop], default_root_dir=str(ckpt_dir))
        trainer.fit(module, datamodule=dm)
        if trainer.global_rank != 0:
            return None
        # Lightning's logger marks the run FINISHED when fit ends; it is not finished until its
        # predictions, metrics and model are logged (run.train sets the final status)
        logger.experiment.update_run(run_id, "RUNNING")
        logger.experiment.set_tag(run_id, "world_size", str(trainer.world_size))
        best = ckpt.best_model_path
        if best:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
            log.info("best checkpoint: epoch with dev AUC %.4f", float(ckpt.best_model_score or float("nan")))
    finally:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the weights live on in the run's model bundle
    module = module.cpu()
    return predict_probs(module, dm, EVAL_SPLITS), module


def fit_sklearn(cfg: DictConfig, cohort: PreparedCohort, feats: Features) -> tuple[np.ndarray, object]:
    """Fit ``model.estimator`` on the training rows' preprocessed labs; (dev+test probabilities, estimator)."""
    if feats.tabular.shape[1] == 0:
        raise ValueError("model=logreg needs clinical features: use modalities=tabular_only or m2..m5")
    est = instantiate(cfg.model.estimator)
    split = cohort.df["split"].to_numpy()
    train = split == "train"
    est.fit(feats.tabular[train], feats.labels[train])
    rows = np.isin(split, EVAL_SPLITS)
    return est.predict_proba(feats.tabular[rows])[:, 1].astype(np.float64), est
