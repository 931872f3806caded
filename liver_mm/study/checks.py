"""A study's configuration checked before any arm trains: a wrong option is an error naming it, never a guess.

* ``cv.folds``: null (the single train/dev/test split) or an integer >= 2; 1, 0, negatives, floats (Hydra reads
  ``cv.folds=2.5`` as a float) and booleans are refused, never rounded or read as "no cross-validation".
* ``cv.repeats``: an integer >= 1.
* ``study.arms``: known arm configs (``conf/arm/<name>.yaml``, or an added config search path), no duplicates.
* ``study.reference``: one of ``study.arms`` (checked before training, not after every arm has trained).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from omegaconf import DictConfig


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_cv(cfg: DictConfig) -> int | None:
    """``cv.folds`` (None or K >= 2) after checking ``cv.folds`` and ``cv.repeats``; ValueError naming the option."""
    cv = cfg.get("cv") or {}
    folds = cv.get("folds")
    if folds is not None and (not _is_int(folds) or folds < 2):
        raise ValueError(f"cv.folds={folds!r}: must be null (the single train/dev/test split) or a whole number of "
                         "folds >= 2 (e.g. cv.folds=5)")
    repeats = cv.get("repeats", 1)
    if not _is_int(repeats) or repeats < 1:
        raise ValueError(f"cv.repeats={repeats!r}: must be a whole number >= 1 (fold assignments, e.g. cv.repeats=1)")
    return folds


def known_arms() -> list[str]:
    """The arm configs Hydra can load: the config group ``arm`` (with any added search path), else conf/arm/."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return list(GlobalHydra.instance().config_loader().get_group_options("arm"))
    folder = resources.files("liver_mm.conf") / "arm"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_arms(arms: Sequence[str], reference: str, available: Sequence[str]) -> None:
    """``study.arms`` are known and distinct and ``study.reference`` is one of them; ValueError naming the option."""
    arms = [str(a) for a in arms]
    unknown = [a for a in arms if a not in available]
    if unknown:
        raise ValueError(f"study.arms: no arm config for {unknown} (known arms: {', '.join(sorted(available))})")
    dup = sorted({a for a in arms if arms.count(a) > 1})
    if dup:
        raise ValueError(f"study.arms lists {dup} more than once: {arms}")
    if reference not in arms:
        raise ValueError(f"study.reference={reference}: not one of study.arms {arms}; every arm is compared with the "
                         f"reference, so add it to study.arms or set study.reference to one of them")


def check_study_config(cfg: DictConfig) -> None:
    """Every check of this module, made before any arm trains (the study's first step)."""
    check_cv(cfg)
    arms = cfg.study.arms
    if isinstance(arms, str) or not isinstance(arms, Sequence) or not arms:
        raise ValueError(f"study.arms must be a non-empty list of arm names, e.g. study.arms=[m1,m5]; got {arms!r}")
    check_arms(list(arms), str(cfg.study.reference), known_arms())
