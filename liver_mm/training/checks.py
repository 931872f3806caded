"""Settings refused before anything is read or trained: impossible values get a message, not a traceback."""

from __future__ import annotations

from omegaconf import DictConfig

MIN_IMAGE_SIZE = 32  # the encoders' total stride: smaller crops shrink to nothing before pooling


def check_settings(cfg: DictConfig) -> None:
    """Raise ``ValueError`` naming the setting for values no run can use."""
    problems = []
    epochs = cfg.trainer.get("max_epochs")
    if epochs is None or int(epochs) < 1:
        problems.append(f"trainer.max_epochs={epochs}: at least 1 epoch is needed (0 would log an untrained model)")
    if cfg.modalities.image and int(cfg.image_size) < MIN_IMAGE_SIZE:
        problems.append(f"image_size={cfg.image_size}: crops must be at least {MIN_IMAGE_SIZE} px (the image "
                        f"encoder downsamples by {MIN_IMAGE_SIZE})")
    if int(cfg.loader.batch_size) < 2:
        problems.append(f"loader.batch_size={cfg.loader.batch_size}: at least 2 (batch normalisation needs "
                        "more than one case per batch)")
    if int(cfg.loader.num_workers) < 0:
        problems.append(f"loader.num_workers={cfg.loader.num_workers}: must be 0 or more")
    if int(cfg.early_stopping.patience) < 1:
        problems.append(f"early_stopping.patience={cfg.early_stopping.patience}: must be at least 1")
    if not 0 <= float(cfg.crop.margin) <= 1:
        problems.append(f"crop.margin={cfg.crop.margin}: a fraction of the box in [0, 1]")
    if problems:
        raise ValueError("invalid settings; nothing was trained:\n  " + "\n  ".join(problems))
