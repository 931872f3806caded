"""A study's configuration checked before any arm trains: a wrong option is an error naming it, never a guess.

* ``cv.folds``: null (the single train/dev/test split) or an integer >= 2; 1, 0, negatives, floats (Hydra reads
  ``cv.folds=2.5`` as a float) and booleans are refused, never rounded or read as "no cross-validation".
* ``cv.repeats``: an integer >= 1.
* ``study.arms``: known arm configs (``conf/arm/<name>.yaml``, or an added config search path), no duplicates.
* ``study.reference``: one of ``study.arms`` (checked before training, not after every arm has trained).
* ``study.holm_families``: a list of ``{name, arms}`` entries, each name once, each with arms.
* ``early_stopping.patience`` given on the command line while early stopping is off
  (:func:`liver_mm.training.checks.idle_settings`).
* ``tune.*`` when ``tune.trials`` > 0, for every arm (:func:`liver_mm.training.tune_space.tune_problems`).
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from liver_mm import catalog


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
    return list(catalog.arm_names())


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


def holm_families(config: DictConfig) -> dict[str, list[str]] | None:
    """``study.holm_families`` (a list of ``{name, arms}``, conf/study.yaml) as {family: [arms]} in list order
    (None when unset: one family). ValueError naming the entry for a malformed or repeated family."""
    fam = config.study.get("holm_families")
    if fam is None:
        return None
    if not OmegaConf.is_list(fam):
        raise ValueError("study.holm_families must be a list of {name: NAME, arms: [a, b, ...]} entries "
                         f"(conf/study.yaml); got {OmegaConf.to_container(fam) if OmegaConf.is_config(fam) else fam!r}")
    out: dict[str, list[str]] = {}
    for i, entry in enumerate(fam):
        name = entry.get("name") if OmegaConf.is_dict(entry) else None
        arms = entry.get("arms") if OmegaConf.is_dict(entry) else None
        if not name or not OmegaConf.is_list(arms) or not arms or set(entry) != {"name", "arms"}:
            raise ValueError(f"study.holm_families[{i}]: expected {{name: NAME, arms: [a, b, ...]}} with at least "
                             f"one arm; got {OmegaConf.to_container(entry) if OmegaConf.is_config(entry) else entry!r}")
        if str(name) in out:
            raise ValueError(f"study.holm_families[{i}]: family {name!r} is listed twice")
        out[str(name)] = [str(a) for a in arms]
    return out


def check_study_config(cfg: DictConfig) -> None:
    """Every check of this module, made before any arm trains (the study's first step)."""
    from liver_mm.dictionary import activate
    from liver_mm.training.checks import check_idle_settings

    activate(cfg.get("dictionary"))  # a bad dictionary is named (file and key) before anything runs
    check_cv(cfg)
    check_idle_settings(cfg)
    arms = cfg.study.arms
    if isinstance(arms, str) or not isinstance(arms, Sequence) or not arms:
        raise ValueError(f"study.arms must be a non-empty list of arm names, e.g. study.arms=[m1,m5]; got {arms!r}")
    check_arms(list(arms), str(cfg.study.reference), known_arms())
    holm_families(cfg)
    check_tune(cfg)


def check_tune(cfg: DictConfig) -> None:
    """``tune.*`` for every arm of the study (each searches its own part of ``tune.space``), when tuning is on."""
    from liver_mm.study.parent import arm_configs
    from liver_mm.training.tune_space import trials, tune_problems

    if trials(cfg) == 0:
        return
    problems = list(dict.fromkeys(p for arm_cfg in arm_configs(cfg).values() for p in tune_problems(arm_cfg)))
    if problems:
        raise ValueError("invalid tuning settings; nothing was trained:\n  " + "\n  ".join(problems))
