"""A study's identity and its parent run: the study key, each arm's key, the parent MLflow run, the checks made
before any arm.

A study is identified by its *study key*: its name, the cohort and split hashes, every setting the arms share
(all but ``arm``, ``modalities``, ``model`` and ``fusion``) and every command-line override of those arm-specific
nodes (``++model.optimizer.lr=0.5``, ``fusion=film``). Rerunning the same study with the same cohort finds the
same key, hence the same parent and finished children. Each child also carries its *arm key*, the hash of the
arm's whole resolved config less what only changes how it runs: a finished child counts only while its arm key
is the one the arm's settings give now (an edited config file retrains the arm instead of reusing it).
With ``tune.trials`` > 0 the ``tune`` node enters the study key and each arm's own search (trials, sampler, seed,
its part of the space) its arm key; with tuning off (the default) neither key changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.dictionary import dictionary_key
from liver_mm.training.tune_space import trials, tuning_identity

ARM_SPECIFIC = ("modalities", "model", "fusion", "hydra", "arm")
#: the sweep's own overrides of each job (not the user's command)
SWEEP_PARAMS = ("arm", "cv.job")
# settings that change how a run executes or where it is tracked, never its results: a study resumed
# with other threads, workers, logger, cache or report folder is the same study (``model._target_``, the class
# that fits the model, is a result setting: another class is another arm)
EXECUTION_ONLY = {"trainer": ("num_threads",), "loader": ("num_workers", "pin_memory"), "study": ("out_dir",),
                  "cv": ("job",)}
NOT_IN_KEY = ("logger", "cache_dir", "dictionary")  # dictionary: its content enters the keys (dictionary_key)
MARKER = ".liver-mm-study"


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _without_execution(cfg: DictConfig, drop: tuple[str, ...]) -> dict:
    """The resolved config less ``drop``, :data:`NOT_IN_KEY` and :data:`EXECUTION_ONLY`."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    for key in (*drop, *NOT_IN_KEY):  # (the hydra node only resolves inside a job)
        raw.pop(key, None)
    if not trials(cfg):  # tuning off: the tune node changes nothing (the keys of studies made before it stay)
        raw.pop("tune", None)
    for group, keys in EXECUTION_ONLY.items():
        for key in keys:
            (raw.get(group) or {}).pop(key, None)
    out = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(out, dict)
    return out


def study_key(cfg: DictConfig, cohort: PreparedCohort) -> str:
    """Hash of the study's name, cohort, split, shared settings and command-line overrides of the arm-specific
    nodes (16 hex digits); the same in the sweep's callbacks (``cfg`` with its ``hydra`` node) and in its jobs."""
    shared = _without_execution(cfg, ARM_SPECIFIC)
    study = dict(shared.pop("study", {}) or {})
    for key in ("arm", "parent_run_id", "key", "arm_key", "level", "repeat", "fold", "run_name"):
        study.pop(key, None)
    ident = {"name": study.get("name"), "settings": shared, "study": study, "manifest": cohort.manifest_hash,
             "split": cohort.split_hash}
    ident.update(dictionary_key(cfg))  # a changed data dictionary is another study
    wide = arm_overrides(cfg)
    if wide:
        ident["command_line_groups"] = wide  # (the name older keys of fusion=... studies were made with)
    return _hash(ident)


def arm_key(cfg: DictConfig) -> str:
    """Hash of one arm's resolved config (its modalities, model, fusion and every shared setting) less the
    execution-only settings and the study's bookkeeping: equal arm keys train the same model on the same data."""
    settings = _without_execution(cfg, ("hydra",))
    study = settings.pop("study", {}) or {}
    settings.pop("tune", None)  # only what this arm's search can change (another kind's space is not its own)
    ident = {"arm": study.get("arm"), "settings": settings}
    ident.update(dictionary_key(cfg))
    tuning = tuning_identity(cfg)
    if tuning is not None:
        ident["tune"] = tuning
    return _hash(ident)


def task_overrides(cfg: DictConfig) -> list[str]:
    """The study command's overrides, less the sweep's per-job ones: from ``cfg.hydra`` in the sweep's callbacks
    (where Hydra's global config is not set), from Hydra's global config in a job; [] outside Hydra."""
    from liver_mm.training.checks import task_overrides as command_overrides

    return [o for o in command_overrides(cfg) if _override_key(o) not in SWEEP_PARAMS]


def arm_overrides(cfg: DictConfig) -> list[str]:
    """The study command's overrides of arm-specific nodes (``fusion=film``, ``++model.optimizer.lr=0.5``), sorted:
    the shared settings leave those nodes out, so they enter the study key this way."""
    roots = {k for k in ARM_SPECIFIC if k not in ("hydra", "arm")}
    return sorted(o for o in task_overrides(cfg) if _override_key(o).split(".", 1)[0] in roots)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def arm_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """arm -> its job's config (without ``hydra``), composed from the study command's overrides as the sweep
    composes it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    overrides = task_overrides(cfg)
    arms = [str(a) for a in cfg.study.arms]

    def composed() -> dict[str, DictConfig]:
        return {arm: compose("study", overrides=[*overrides, f"arm={arm}"]) for arm in arms}

    if GlobalHydra.instance().is_initialized():
        return composed()
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return composed()


def parent_run(cfg: DictConfig, cohort: PreparedCohort):
    """(client, experiment id, study key, parent run id): the study's parent run, created if new.

    In the sweep's callbacks (``cfg`` with its ``hydra`` node: the study's own process) the parent is claimed for
    this process, and a parent another live process holds is refused (:func:`~liver_mm.tracking.registry.ensure_parent`): two studies of one
    key never run side by side."""
    from liver_mm.tracking.registry import ensure_parent
    from liver_mm.tracking.store import connect

    client, exp_id = connect(cfg.logger)
    key = study_key(cfg, cohort)
    tags = {"synthetic": str(bool(cohort.synthetic)).lower(), "manifest_hash": cohort.manifest_hash,
            "split_hash": cohort.split_hash}
    params = {"seed": cfg.seed, "image_size": cfg.image_size, "arms": ",".join(cfg.study.arms)}
    parent_id = ensure_parent(client, exp_id, key, str(cfg.study.name), tags, params, claim="hydra" in cfg)
    return client, exp_id, key, parent_id


def check_arm(cfg: DictConfig) -> None:
    """The study sets modalities and model per arm: a ``modalities=`` or ``model=`` group override on the
    study command would relabel every arm, so it is refused (choose arms with ``study.arms``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("modalities", "model"):
            raise ValueError(f"{override}: the study sets modalities and model per arm (conf/arm/); drop this "
                             "override and choose arms with study.arms=[...]")


def check_out_dir(out: Path, marker: str = MARKER, option: str = "study.out_dir", writer: str = "a liver-mm study",
                  who: str = "the study") -> None:
    """A study writes only into a folder it owns: new, empty, or marked by an earlier study (``.liver-mm-study``).
    Another command that replaces a folder whole (``liver-mm evaluate``) passes its own ``marker``, the
    ``option`` naming the folder, the ``writer`` of the marker and ``who`` replaces the content."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option}={out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise ValueError(f"{option}={out} holds files that {writer} did not write (no {marker} "
                         f"marker); choose an empty or new folder: {who} replaces its folder's content")


