"""A study's identity and its parent run: the study key, the parent MLflow run, the checks made before any arm.

A study is identified by its *study key*: its name, the cohort and split hashes and every setting the arms share
(all but ``arm``, ``modalities`` and ``model``). Rerunning the same study with the same cohort finds the same key,
hence the same parent and finished children.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from liver_mm.training.cohort import PreparedCohort

ARM_SPECIFIC = ("modalities", "model", "fusion", "hydra", "arm")
#: arm-specific groups a study command may still set for all arms (then part of the key: a study run with
#: ``fusion=film`` is another study than the same command without it)
STUDY_WIDE_GROUPS = ("fusion",)
# settings that change how a run executes or where it is tracked, never its results: a study resumed
# with other threads, workers, logger, cache or report folder is the same study
EXECUTION_ONLY = {"trainer": ("num_threads",), "loader": ("num_workers", "pin_memory"), "study": ("out_dir",),
                  "cv": ("job",)}
NOT_IN_KEY = ("logger", "cache_dir")
MARKER = ".liver-mm-study"


def study_key(cfg: DictConfig, cohort: PreparedCohort) -> str:
    """Hash of the study's name, cohort, split and shared settings (16 hex digits)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    for key in (*ARM_SPECIFIC, *NOT_IN_KEY):  # (the hydra node only resolves inside a job)
        raw.pop(key, None)
    for group, keys in EXECUTION_ONLY.items():
        for key in keys:
            (raw.get(group) or {}).pop(key, None)
    shared = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    assert isinstance(shared, dict)
    study = dict(shared.pop("study", {}) or {})
    for key in ("arm", "parent_run_id", "key", "level", "repeat", "fold", "run_name"):
        study.pop(key, None)
    ident = {"name": study.get("name"), "settings": shared, "study": study, "manifest": cohort.manifest_hash,
             "split": cohort.split_hash}
    wide = command_line_groups(STUDY_WIDE_GROUPS)
    if wide:
        ident["command_line_groups"] = wide
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parent_run(cfg: DictConfig, cohort: PreparedCohort):
    """(client, experiment id, study key, parent run id): the study's parent run, created if new."""
    from liver_mm.tracking.registry import ensure_parent
    from liver_mm.tracking.store import connect

    client, exp_id = connect(cfg.logger)
    key = study_key(cfg, cohort)
    tags = {"synthetic": str(bool(cohort.synthetic)).lower(), "manifest_hash": cohort.manifest_hash,
            "split_hash": cohort.split_hash}
    params = {"seed": cfg.seed, "image_size": cfg.image_size, "arms": ",".join(cfg.study.arms)}
    return client, exp_id, key, ensure_parent(client, exp_id, key, str(cfg.study.name), tags, params)


def command_line_groups(groups: tuple[str, ...]) -> list[str]:
    """The study command's overrides of ``groups`` (e.g. ``fusion=film``), sorted; [] outside Hydra.

    Read from Hydra's task overrides, which the sweep callback and every job see alike."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return sorted(o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") in groups)


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


def check_out_dir(out: Path) -> None:
    """A study writes only into a folder it owns: new, empty, or marked by an earlier study (``.liver-mm-study``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"study.out_dir={out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ValueError(f"study.out_dir={out} holds files that a liver-mm study did not write (no {MARKER} "
                         "marker); choose an empty or new folder: the study replaces its folder's content")


