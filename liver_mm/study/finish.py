"""After the sweep: gather the children, compare them, write the report, log it to the parent run."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.study.checks import holm_families
from liver_mm.study.clinical_value import gather_child_outputs
from liver_mm.study.compare import compare_study, parent_metrics
from liver_mm.study.parent import MARKER, arm_configs, arm_key, check_out_dir, parent_run
from liver_mm.study.report.markdown import write_report
from liver_mm.study.report.provenance import study_provenance
from liver_mm.study.steps import skipped_scores
from liver_mm.study.tripod.records import study_records
from liver_mm.study.tuning_report import mark_tuned, tuning_table

log = logging.getLogger(__name__)


def study_command(config: DictConfig) -> str:
    """The command line that reproduces this study (``liver-mm study`` + the task overrides)."""
    hydra = config.get("hydra") if "hydra" in config else None
    overrides = list(hydra.overrides.task) if hydra is not None else []
    overrides = [o for o in overrides if not o.startswith(("arm=", "+cv.job="))]
    return " ".join(["liver-mm", "study", *overrides])


def config_summary(config: DictConfig) -> dict[str, object]:
    """The study-wide settings for the report's provenance: every result-defining and report setting of the
    config's partition (:mod:`liver_mm.conf.partition`) outside the per-arm nodes (each arm's model settings are
    listed apart) and the study node (its arms and reference are the report's subject); ``tune`` only when on."""
    from liver_mm.conf.partition import ARM_ROOTS, REPORT, RESULT, select
    from liver_mm.study.parent import resolved

    values = {k: v for k, v in resolved(config).items() if k not in ARM_ROOTS}
    out = select(values, *RESULT, REPORT)
    if not (out.get("tune") or {}).get("trials"):
        out.pop("tune", None)  # tuning off: its search space is not a setting of this study
    return out


STUDY_NOTE = "written by liver-mm study; the next run of the same study replaces this folder\n"


def replace_folder(tmp_out: Path, out: Path, check: Callable[[Path], None] = check_out_dir, marker: str = MARKER,
                   note: str = STUDY_NOTE) -> None:
    """Swap a freshly written report folder in for ``out`` (which must be ours: ``check`` passes, i.e. empty or
    marked); ``tmp_out`` gets the ``marker`` file holding ``note``."""
    check(out)
    (tmp_out / marker).write_text(note)
    if out.exists():
        old = out.with_name(out.name + f".old{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp_out, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_out, out)


def current_children(client, exp_id: str, key: str, configs: dict[str, DictConfig]) -> dict[str, object]:
    """arm -> its latest finished child run trained with the arm's settings now (the arm key of ``configs[arm]``;
    a cross-validated arm's container run and its fold runs carry it too) holding the outputs the arm's config
    asks for (:func:`liver_mm.study.reuse.reusable`: the run the sweep reused or trained)."""
    from liver_mm.study.reuse import reusable
    from liver_mm.tracking.registry import finished_by, study_runs

    runs = study_runs(client, exp_id, key)
    current = []
    for arm, cfg in configs.items():
        akey = arm_key(cfg)
        mine = [r for r in runs if r.data.tags.get("arm") == arm and r.data.tags.get("arm_key") == akey]
        current += reusable(client, mine, cfg, f"arm {arm}")
    return {k[0]: r for k, r in finished_by(current, "arm").items()}


def model_settings(cfg: DictConfig) -> dict[str, object]:
    """One arm's model settings for the report: its modality set (name, image or not, clinical features), its
    resolved ``model`` node and, for a network with both branches, the fusion (no patient data: configuration
    only)."""
    out: dict[str, object] = {"modalities": str(cfg.modalities.name), "image": bool(cfg.modalities.image),
                              "features": [str(f) for f in cfg.modalities.features]}
    from liver_mm.training.estimators import estimator_for

    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(model, dict)
    model.pop("_target_", None)  # the class that runs model.kind: code, not a setting
    out["model"] = model
    if estimator_for(cfg).has_network and cfg.modalities.image and list(cfg.modalities.features):
        out["fusion"] = str(cfg.fusion.name)
    return out


def child_commits(client, runs: dict) -> dict[str, str]:
    """arm -> the git commit its child run was trained at."""
    return {arm: client.get_run(run.info.run_id).data.params.get("git_commit", "unknown") for arm, run in runs.items()}


def finish_study(config: DictConfig) -> bool:
    """Compare the finished arms, write ``study.out_dir`` and log it to the parent run.

    Returns True when every arm of ``study.arms`` finished (the parent is then FINISHED);
    otherwise the report covers the finished arms and names the missing ones, the parent is
    marked FAILED, and rerunning the same command completes the study.
    """
    from liver_mm.study.cv.run import finish_cv, uses_cv
    from liver_mm.tracking.artifacts import log_folder
    from liver_mm.tracking.runs import existing_metrics, log_metrics, set_status

    cohort = prepare_cohort(config.data, config.split, config.cache_dir)
    client, exp_id, key, parent_id = parent_run(config, cohort)
    configs = arm_configs(config)
    done = current_children(client, exp_id, key, configs)
    arms = [a for a in config.study.arms if a in done]
    missing = [a for a in config.study.arms if a not in done]
    if missing:
        log.error("study %s: arms %s did not finish; rerun the same command to complete them",
                  config.study.name, ", ".join(missing))
    reference = str(config.study.reference)
    if reference not in done:
        log.error("study %s: the reference arm %s did not finish: no comparison", config.study.name, reference)
        set_status(client, parent_id, "FAILED")
        return False
    out = Path(str(config.study.out_dir))
    prov = study_provenance(config_summary(config), cohort.manifest_hash, cohort.split_hash, int(config.seed))
    commits = child_commits(client, {a: done[a] for a in arms})
    prov = {**prov, "content_hash": cohort.content_hash, "parent_run_id": parent_id,
            "child_runs": {a: done[a].info.run_id for a in arms},
            "model_settings": {a: mark_tuned(model_settings(configs[a]), configs[a]) for a in arms}}
    if set(commits.values()) != {prov.get("git_commit")}:
        prov["child_commits"] = commits  # trained at other commits than this report was written at
    if missing:
        prov["missing_arms"] = ", ".join(missing)
    skipped = skipped_scores(config.get("dictionary"))  # FIB-4 / APRI on a dictionary without their inputs
    if skipped:
        prov["skipped_arms"] = skipped
    prov.update(study_records(config, cohort, client, exp_id, {a: configs[a] for a in arms}))  # split, tune sources
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else tmp))
        (tmp_out / "command.txt").write_text(study_command(config) + "\n")
        if uses_cv(config):
            arm_keys = {a: done[a].data.tags["arm_key"] for a in arms}
            metrics = finish_cv(config, cohort, client, exp_id, key, arm_keys, tmp_out, prov, study_command(config),
                                holm_families(config), out.name)
        else:
            predictions: dict[str, pd.DataFrame] = {}
            for arm in arms:
                path = client.download_artifacts(done[arm].info.run_id, "predictions.csv", f"{tmp}/{arm}")
                predictions[arm] = pd.read_csv(path)
            comparison = compare_study(predictions, arms, reference=reference,
                                       descriptions=arm_descriptions(client, {a: done[a] for a in arms}),
                                       families=holm_families(config))
            children = gather_child_outputs(client, {a: done[a] for a in arms}, tmp_out, Path(tmp))
            children["youden_scores"] = {a: done[a].data.metrics["threshold_score"] for a in arms
                                         if "threshold_score" in done[a].data.metrics}
            children["tuning"] = tuning_table({(a,): done[a] for a in arms}, arms)
            write_report(tmp_out, comparison, predictions, cohort.df, prov, cohort.synthetic,
                         study_command(config), title=out.name, child_outputs=children)
            metrics = parent_metrics(comparison)
        replace_folder(tmp_out, out)
    logged = existing_metrics(client, parent_id)  # a resumed study logs only what changed
    log_metrics(client, parent_id, {k: v for k, v in metrics.items() if logged.get(k) != float(v)})
    log_folder(client, parent_id, out)
    set_status(client, parent_id, "FINISHED" if not missing else "FAILED")
    report = out / "report.md"
    log.info("study %s: report %s (parent run %s)", config.study.name, report, parent_id)
    print(f"\nStudy report: {report}\nMLflow parent run: {parent_id}\n{ui_hint(client, exp_id, parent_id)}")
    return not missing


def arm_descriptions(client, runs: dict) -> dict[str, str]:
    """arm -> what it sees, from the config its child run logged: ``modalities.description``, for an
    arm without the image also ``model.description`` (MLP or logistic regression), for a clinical score
    only ``model.description``, the fusion when a two-branch network does not concatenate, and the image
    encoder's start (tag ``image_init``) when it was not random."""
    out = {}
    for arm, run in runs.items():
        data = client.get_run(run.info.run_id).data
        params = data.params
        text = params.get("modalities.description", "")
        if params.get("model.kind") == "score":
            text = params.get("model.description", text)
        elif params.get("modalities.image") == "False" and params.get("model.description"):
            text = f"{text}, {params['model.description']}"
        fusion = params.get("model.net.fusion") or params.get("fusion.name")
        if (params.get("model.kind") == "lightning" and fusion and fusion != "concat"
                and params.get("modalities.image") == "True" and params.get("modalities.features", "[]") != "[]"):
            text = f"{text}; {fusion} fusion"
        init = data.tags.get("image_init")  # how the image encoder started, when not from random weights
        if init and init != "random (from scratch)" and params.get("modalities.image") == "True":
            text = f"{text}; image encoder: {init}"
        out[arm] = text
    return out


def ui_hint(client, exp_id: str, parent_id: str) -> str:
    """Where the study's runs are in the MLflow UI (``make ui``) and which columns to show."""
    from liver_mm.tracking.ui import runs_link, ui_base

    return runs_link(exp_id, parent_id, ui_base(str(client.tracking_uri)))
