"""``liver-mm pretrain`` (:mod:`liver_mm.pretrain`): the image encoder pretrained self-supervised on the cohort's training crops (+ pool).

One MLflow run (tag ``run_kind=pretrain``): the settings as params, ``pretrain_loss`` per epoch (the loss curve),
throughput, and the encoder as the artifact ``encoder/encoder.safetensors`` (a timm state dict:
``model.net.image.pretrained_path=FILE``). The training split of ``conf/train.yaml``'s split is used: its dev and
test rows never are. The encoder is the same cached file a study with ``pretrain.enabled=true`` would use on the
same training rows and settings.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainRun:
    run_id: str
    encoder: Path
    losses: list[float]


def _loss_files(losses: list[float], method: str, synthetic: bool, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    csv = out / "pretrain_loss.csv"
    pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "loss": losses}).to_csv(csv, index=False)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(losses) + 1), losses, marker="o")
    ax.set(xlabel="epoch", ylabel=f"{method} loss", title=f"Self-supervised pretraining{' [synthetic]' * synthetic}")
    fig.tight_layout()
    png = out / "pretrain_loss.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return [csv, png]


def pretrain_run(cfg: DictConfig, out: Path | None = None, progress: bool = True) -> PretrainRun:
    """Pretrain (or take from the cache) and log one MLflow run; returns its id, the encoder file and the curve."""
    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.features.crops import build_crop_cache
    from liver_mm.fileio import check_writable_dir
    from liver_mm.pretrain.cache import cached_pretrain
    from liver_mm.pretrain.ssl import PretrainSettings
    from liver_mm.pretrain.study import _device, training_crops
    from liver_mm.tracking import artifacts
    from liver_mm.tracking.runs import create_run, flatten, heartbeat, log_metrics, set_status
    from liver_mm.tracking.store import connect
    from liver_mm.training.run import configure_threads, output_dir, sigterm_as_interrupt

    settings = PretrainSettings.from_config(cfg)
    configure_threads(cfg)
    out = out or output_dir(cfg)
    for place in (out, Path(str(cfg.cache_dir))):
        check_writable_dir(place)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=[])
    crops = build_crop_cache(cohort.df, int(cfg.image_size), float(cfg.crop.margin),
                             Path(str(cfg.cache_dir)) / "crops").crops
    images = training_crops(cfg, cohort, crops)
    n_train = int((cohort.df["split"] == "train").sum())
    client, exp_id = connect(cfg.logger)
    tags = {"run_kind": "pretrain", "pretrain_method": settings.method, "synthetic": str(bool(cohort.synthetic)).lower(),
            "manifest_hash": cohort.manifest_hash, "split_hash": cohort.split_hash}
    params = {**flatten({"pretrain": OmegaConf.to_container(cfg.pretrain, resolve=True)}),
              "image_encoder": settings.encoder, "image_size": settings.image_size, "data.kind": str(cfg.data.kind),
              "n_train_crops": n_train, "n_pool_frames": len(images) - n_train}
    run_id = create_run(client, exp_id, f"pretrain-{settings.method}", tags, params)
    status = "FAILED"
    try:
        with sigterm_as_interrupt(), heartbeat(client, run_id):
            start = time.perf_counter()
            enc = cached_pretrain(images, settings, Path(str(cfg.cache_dir)), device=_device(cfg), progress=progress,
                                  on_epoch=lambda e, loss: log_metrics(client, run_id, {"pretrain_loss": loss}, step=e))
            seconds = time.perf_counter() - start
            if not enc.trained:  # from the cache: its recorded curve
                for e, loss in enumerate(enc.losses):
                    log_metrics(client, run_id, {"pretrain_loss": loss}, step=e)
            client.set_tag(run_id, "pretrain_key", enc.key)
            client.set_tag(run_id, "pretrain_cached", str(not enc.trained).lower())
            metrics = {"pretrain_final_loss": enc.losses[-1], "pretrain_images": enc.n_images}
            if enc.trained:
                metrics.update(pretrain_seconds=seconds,
                               pretrain_images_per_s=enc.n_images * settings.epochs / max(seconds, 1e-9))
            log_metrics(client, run_id, metrics, step=len(enc.losses) - 1)
            encoder = out / "encoder.safetensors"
            shutil.copyfile(enc.path, encoder)
            artifacts.log_files(client, run_id, [encoder], "encoder")
            artifacts.log_files(client, run_id, _loss_files(enc.losses, settings.method, cohort.synthetic, out))
        artifacts.mark_outputs_logged(client, run_id)
        status = "FINISHED"
        log.info("pretrain run %s: %s, final loss %.4f; encoder %s (start an image arm from it with "
                 "model.net.image.pretrained_path=%s)", run_id, settings.method, enc.losses[-1], encoder, encoder)
        return PretrainRun(run_id, encoder, list(enc.losses))
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        set_status(client, run_id, status)
