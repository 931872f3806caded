"""Settings refused before anything is read or trained: impossible values get a message, not a traceback, and a
setting that would do nothing is refused rather than silently ignored."""

from __future__ import annotations

from omegaconf import DictConfig

from liver_mm.training.tune_space import tune_problems

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
    problems += idle_settings(cfg)
    problems += tune_problems(cfg)
    if problems:
        raise ValueError("invalid settings; nothing was trained:\n  " + "\n  ".join(problems))


def task_overrides(cfg: DictConfig) -> list[str]:
    """The command line's overrides: from ``cfg.hydra`` (a study's callbacks), else Hydra's global config (a
    job); [] outside Hydra (a config composed in code sets nothing "on the command line")."""
    if "hydra" in cfg:
        return [str(o) for o in cfg.hydra.overrides.task]
    from hydra.core.hydra_config import HydraConfig

    return [str(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []


def idle_settings(cfg: DictConfig) -> list[str]:
    """Settings given that this run would ignore: ``early_stopping.patience`` on the command line while
    ``early_stopping.enabled`` is false (the default, 5, stays in conf/train.yaml; Hydra cannot tell a value
    set in a file from the default), and cross-validation folds in a lone training run (``cv`` is a study
    setting, conf/study.yaml)."""
    problems = []
    keys = {o.split("=", 1)[0].lstrip("+~") for o in task_overrides(cfg)}
    if "early_stopping.patience" in keys and not cfg.early_stopping.enabled:
        problems.append(f"early_stopping.patience={cfg.early_stopping.patience}: does nothing while "
                        "early_stopping.enabled=false; add early_stopping.enabled=true or drop the patience")
    folds = (cfg.get("cv") or {}).get("folds")
    if folds is not None and not (cfg.get("study") or {}).get("arm"):
        problems.append(f"cv.folds={folds}: cross-validation is a study setting (liver-mm study cv.folds={folds}); "
                        "a lone training run trains the single train/dev/test split")
    return problems


def check_idle_settings(cfg: DictConfig) -> None:
    """:func:`idle_settings` as a ``ValueError`` (a study checks its command this way before any arm trains)."""
    problems = idle_settings(cfg)
    if problems:
        raise ValueError("settings that would do nothing; nothing was trained:\n  " + "\n  ".join(problems))
