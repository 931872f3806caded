"""After the sweep: gather the children, compare them, write the report, log it to the parent run."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric
from omegaconf import DictConfig, OmegaConf

from liver_mm.study.compare import compare_study, parent_metrics
from liver_mm.study.report import study_provenance, write_report
from liver_mm.study.sweep import ensure_parent, finished_children
from liver_mm.training.cohort import prepare_cohort

log = logging.getLogger(__name__)


def study_command(config: DictConfig) -> str:
    """The command line that reproduces this study (``liver-mm study`` + the task overrides)."""
    hydra = config.get("hydra") if "hydra" in config else None
    overrides = list(hydra.overrides.task) if hydra is not None else []
    overrides = [o for o in overrides if not o.startswith("arm=")]
    return " ".join(["liver-mm", "study", *overrides])


def config_summary(config: DictConfig) -> dict[str, object]:
    keys = ("data", "image_size", "crop", "split", "loader", "augment", "early_stopping", "trainer", "seed")
    return {k: OmegaConf.to_container(config[k], resolve=True) if OmegaConf.is_config(config[k]) else config[k]
            for k in keys if k in config}


def finish_study(config: DictConfig) -> bool:
    """Compare the finished arms, write ``study.out_dir`` and log it to the parent run.

    Returns True when every arm of ``study.arms`` finished (the parent is then FINISHED);
    otherwise the report covers the finished arms and names the missing ones, the parent is
    marked FAILED, and rerunning the same command completes the study.
    """
    cohort = prepare_cohort(config.data, config.split, config.cache_dir)
    client, exp_id, _key, parent_id = ensure_parent(config, cohort)
    done = finished_children(client, exp_id, _key)
    arms = [a for a in config.study.arms if a in done]
    missing = [a for a in config.study.arms if a not in done]
    if missing:
        log.error("study %s: arms %s did not finish; rerun the same command to complete them",
                  config.study.name, ", ".join(missing))
    reference = str(config.study.reference)
    if reference not in done:
        log.error("study %s: the reference arm %s did not finish: no comparison", config.study.name, reference)
        client.set_terminated(parent_id, "FAILED")
        return False
    predictions: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arm in arms:
            path = client.download_artifacts(done[arm].info.run_id, "predictions.csv", f"{tmp}/{arm}")
            predictions[arm] = pd.read_csv(path)
    comparison = compare_study(predictions, arms, reference=reference)
    out = Path(str(config.study.out_dir))
    prov = study_provenance(config_summary(config), cohort.manifest_hash, cohort.split_hash, int(config.seed))
    prov = {**prov, "parent_run_id": parent_id, "child_runs": {a: done[a].info.run_id for a in arms}}
    if missing:
        prov["missing_arms"] = ", ".join(missing)
    # written beside the old folder and swapped in: no file of an earlier report survives
    tmp_out = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp_out, ignore_errors=True)
    tmp_out.mkdir(parents=True)
    (tmp_out / "command.txt").write_text(study_command(config) + "\n")
    write_report(tmp_out, comparison, predictions, cohort.df, prov, cohort.synthetic, study_command(config),
                 title=out.name)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp_out, out)
    report = out / "report.md"
    metrics = parent_metrics(comparison)
    now = int(time.time() * 1000)
    logged = client.get_run(parent_id).data.metrics  # a resumed study logs only what changed
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items() if logged.get(k) != float(v)]
    for i in range(0, len(items), 200):
        client.log_batch(parent_id, metrics=items[i : i + 200], synchronous=True)
    client.log_artifacts(parent_id, str(out))
    client.set_terminated(parent_id, "FINISHED" if not missing else "FAILED")
    log.info("study %s: report %s (parent run %s)", config.study.name, report, parent_id)
    print(f"\nStudy report: {report}\nMLflow parent run: {parent_id}  (make ui, then open http://127.0.0.1:5000)")
    return not missing
