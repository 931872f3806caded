"""A study's identity and its parent run: the study key, each arm's key, the parent MLflow run, the checks made
before any arm.

Both keys are hashes of resolved config values, never of the command line as typed (``model.ema.enabled=true``
and Hydra's rewritten ``model.ema.enabled=True`` are one setting), and both read the one declared partition of
the config (:mod:`liver_mm.conf.partition`):

* the *study key* (the parent run) holds only what defines the study's cohort, split and folds: its name, the
  ``cohort`` settings, the manifest's content hash, the content hash of every image and mask it uses and the split
  hash. Rerunning with another model setting, another arm list, another reference or other report settings finds
  the same parent;
* each child carries its *arm key*, the hash of the arm's result-defining settings (cohort, inputs, training and,
  when it tunes, its own search): a finished child is reused exactly while its arm key is the one the arm's
  settings give now (an edited config file or ``++model.optimizer.lr=3e-4`` retrains the arm), and while it holds
  the outputs the command asks for (:mod:`liver_mm.study.reuse`). Comparison and report settings are recomputed
  from the finished arms.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.conf.partition import COHORT, RESULT, TUNING, select
from liver_mm.dictionary import dictionary_key
from liver_mm.training.tune_space import tuning_identity

#: the sweep's own overrides of each job (not the user's command)
SWEEP_PARAMS = ("arm", "cv.job")
MARKER = ".liver-mm-study"


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolved(cfg: DictConfig) -> dict:
    """The config's resolved values, without the ``hydra`` node (it only resolves inside a job)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    raw.pop("hydra", None)
    out = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(out, dict)
    return out


def study_key(cfg: DictConfig, cohort: PreparedCohort) -> str:
    """Hash of the study's name, cohort settings, split and folds settings, and the cohort's content (manifest,
    images and masks) and split (16 hex digits); the same in the sweep's callbacks and in its jobs."""
    ident = {"settings": select(resolved(cfg), COHORT), "manifest": cohort.manifest_hash,
             "content": cohort.content_hash, "split": cohort.split_hash}
    ident.update(dictionary_key(cfg))  # a changed data dictionary is another study
    return _hash(ident)


def arm_key(cfg: DictConfig) -> str:
    """Hash of one arm's result-defining settings (:data:`~liver_mm.conf.partition.RESULT`; of ``tune`` only what
    this arm's own search can change): equal arm keys train the same model on the same data."""
    settings = select(resolved(cfg), *(p for p in RESULT if p != TUNING))
    ident: dict[str, object] = {"settings": settings, **dictionary_key(cfg)}
    tuning = tuning_identity(cfg)
    if tuning is not None:
        ident["tune"] = tuning
    return _hash(ident)


def task_overrides(cfg: DictConfig) -> list[str]:
    """The study command's overrides, less the sweep's per-job ones: from ``cfg.hydra`` in the sweep's callbacks
    (where Hydra's global config is not set), from Hydra's global config in a job; [] outside Hydra."""
    from liver_mm.training.checks import task_overrides as command_overrides

    return [o for o in command_overrides(cfg) if _override_key(o) not in SWEEP_PARAMS]


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
            "content_hash": cohort.content_hash, "split_hash": cohort.split_hash}
    params = {"seed": cfg.seed, "arms": ",".join(cfg.study.arms)}  # (the arms it was created with)
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


