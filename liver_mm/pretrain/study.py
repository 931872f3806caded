"""Pretraining inside a training job (``pretrain.enabled=true``): on the job's ``train`` rows only, plus the pool.

A study's image arms of one fold (or of the single split) see the same training crops and settings, so the first
one pretrains and the others reuse the cached file (:mod:`liver_mm.pretrain.cache`). Dev and test crops never
enter; a pool frame pixel-identical to a dev or test image is refused.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, open_dict

from liver_mm.pretrain.cache import CachedEncoder, cached_pretrain
from liver_mm.pretrain.ssl import PretrainSettings

log = logging.getLogger(__name__)

POOL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")


def pool_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (recursively, sorted by relative path)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"pretrain.pool: folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in POOL_SUFFIXES)
    if not files:
        raise ValueError(f"pretrain.pool: no image files ({', '.join(POOL_SUFFIXES)}) under {root}")
    return files


def pool_frames(folder: str | Path, size: int, forbidden: dict[str, str] | None = None) -> np.ndarray:
    """Every pool file's first frame, whole, resized to (size, size) uint8: (M, size, size).

    ``forbidden``: pixel content hash -> description of an image the pool must not hold (dev/test images);
    such a frame is a ValueError naming both files.
    """
    from liver_mm.features.crops import crop_resize
    from liver_mm.io.images import content_hash, read_gray

    frames = []
    for path in pool_files(folder):
        pixels = read_gray(path)
        if forbidden and content_hash(pixels) in forbidden:
            raise ValueError(f"pretrain.pool: {path} is pixel-identical to {forbidden[content_hash(pixels)]}; "
                             "the pool must not hold the study's dev or test images")
        h, w = pixels.shape
        frames.append(crop_resize(pixels, (0, 0, w, h), size))
    return np.stack(frames)


def _held_out_hashes(df) -> dict[str, str]:
    """Content hash -> 'the <split> image of row N' for the rows outside the training part."""
    from liver_mm.features.crops import _row_frames
    from liver_mm.io.images import file_content_hash

    out = {}
    for i, (path, split, frame) in enumerate(zip(df["image_path"], df["split"], _row_frames(df), strict=True)):
        if split != "train":
            out.setdefault(file_content_hash(path, frame), f"the {split} image of cohort row {i + 1}")
    return out


def training_crops(cfg: DictConfig, cohort, images: np.ndarray) -> np.ndarray:
    """The crops pretraining may see: the ``train`` rows' crops (row order), then the pool's frames."""
    train = images[(cohort.df["split"] == "train").to_numpy()]
    pool = cfg.pretrain.get("pool")
    if not pool:
        return train
    frames = pool_frames(pool, int(cfg.image_size), _held_out_hashes(cohort.df))
    return np.concatenate([train, frames])


def _device(cfg: DictConfig) -> str:
    import torch

    wanted = str((cfg.get("trainer") or {}).get("accelerator", "cpu"))
    return "cuda" if wanted in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def pretrain_for_job(cfg: DictConfig, cohort, images: np.ndarray, progress: bool = False) -> CachedEncoder:
    """The (cached) encoder pretrained on this job's training part (+ pool) with ``cfg.pretrain``."""
    crops = training_crops(cfg, cohort, images)
    settings = PretrainSettings.from_config(cfg)
    enc = cached_pretrain(crops, settings, Path(str(cfg.cache_dir)), device=_device(cfg), progress=progress)
    log.info("image encoder: %s pretrained on %d crop(s) (%s, key %s)", settings.method, enc.n_images,
             "trained now" if enc.trained else "cached", enc.key[:12])
    return enc


def pretraining_on(cfg: DictConfig) -> bool:
    """An image network that pretrains first: ``pretrain.enabled`` (study-wide) or its model says so
    (``model=fusion_ssl``: the ``*_ssl`` arms of ``experiment=pretrain_ablation``)."""
    if not cfg.modalities.image or not cfg.get("model") or not (cfg.model.get("net") or {}).get("image"):
        return False
    return bool((cfg.get("pretrain") or {}).get("enabled") or cfg.model.get("pretrain_image"))


def apply_pretraining(cfg: DictConfig, cohort, images: np.ndarray | None) -> DictConfig:
    """``cfg`` with the image arm starting from the pretrained encoder when :func:`pretraining_on`; else ``cfg``."""
    if not pretraining_on(cfg) or images is None:
        return cfg
    image = cfg.model.net.image
    if image.get("pretrained") or image.get("pretrained_path"):
        raise ValueError("self-supervised pretraining (pretrain.enabled=true or model=fusion_ssl) starts the image "
                         "encoder from random weights: unset model.net.image.pretrained / pretrained_path, or turn "
                         "pretraining off")
    enc = pretrain_for_job(cfg, cohort, images)
    out = copy.deepcopy(cfg)
    with open_dict(out):
        out.model.net.image.pretrained_path = str(enc.path)
    return out


def image_init(cfg: DictConfig) -> str | None:
    """How the image encoder of a run starts (None without an image branch), for a tag and the report."""
    if not cfg.modalities.image or not cfg.get("model") or not cfg.model.get("net"):
        return None
    image = cfg.model.net.get("image") or {}
    path = image.get("pretrained_path")
    p = cfg.get("pretrain") or {}
    if path and pretraining_on(cfg):
        extra = " + pool" if p.get("pool") else ""
        return f"self-supervised {p.get('method')} on the training part{extra} ({Path(str(path)).stem[:12]})"
    if path:
        return f"weights file {Path(str(path)).name}"
    if image.get("pretrained"):
        return "timm pretrained weights (ImageNet)"
    return "random (from scratch)"
