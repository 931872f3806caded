"""Which finished study ``liver-mm evaluate`` applies: its parent run, each arm's child run and what the child saved.

``--study`` is a study folder (``.liver-mm-study`` marker) or a parent run id (32 hex digits). Either way the arms
are exactly the child runs the study's report compared: the ``report.md`` provenance (``parent_run_id``,
``child_runs.<arm>``, ``missing_arms``) of the folder, or of the parent run's artifacts (the report the study logged
last), never a newer child trained with other settings. An arm the report names as missing (it never finished) is
named in the evaluation, not dropped silently. The tracking store is ``--tracking-uri``,
else the ``logger.tracking_uri=`` override of the folder's ``command.txt``, else ``$MLFLOW_TRACKING_URI``, else
``./mlflow.db`` (:func:`liver_mm.tracking.store.tracking_uri`). Only MLflow metadata and each child's
``config.yaml`` are read here: no model is loaded, so a bad external manifest is refused before any is.

A cross-validated study is refused: each arm has one model per fold, each with its own dev-chosen threshold, and
no single final model whose threshold was frozen before its test cases.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from liver_mm.features.scores import SCORE_INPUTS
from liver_mm.study.checks import holm_families
from liver_mm.study.parent import MARKER

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_PROVENANCE_ROW = re.compile(r"^\| (parent_run_id|child_runs\.([^ |]+)) \| ([0-9a-f]{32}) \|$", re.MULTILINE)
_MISSING_ROW = re.compile(r"^\| missing_arms \| ([^|]*) \|$", re.MULTILINE)


class StudySourceError(ValueError):
    """``--study`` does not name a finished single-split study that evaluate can apply."""


@dataclass(frozen=True)
class ArmRun:
    """One arm of the study: its finished child run, model kind (lightning | sklearn | score), resolved config,
    frozen threshold (the run's ``threshold``: dev Youden, Table 3's), the artifacts it logged (top level) and
    the models it logged (``model``, ``torch_model``: MLflow logged models)."""

    arm: str
    run_id: str
    kind: str
    config: DictConfig
    threshold: float
    selection_dev_auc: float
    description: str
    artifacts: frozenset[str]
    models: frozenset[str]

    @property
    def features(self) -> list[str]:
        """The manifest columns this arm's model reads (a clinical score: the score's inputs only)."""
        if self.kind == "score":
            return list(SCORE_INPUTS[str(self.config.model.score)])
        return [str(f) for f in self.config.modalities.features]

    @property
    def use_image(self) -> bool:
        return self.kind == "lightning" and bool(self.config.modalities.image)


@dataclass(frozen=True)
class StudySource:
    """A finished study: name, parent run, experiment, arms in study order, reference, Holm families (None: one
    family), synthetic cohort or not, the folder it was read from (None for a run id), an MLflow client, the
    content hash of the study's cohort manifest (:func:`liver_mm.io.schema.manifest_hash`) and the arms its report
    names as never finished (not evaluated)."""

    name: str
    parent_id: str
    experiment_id: str
    arms: dict[str, ArmRun]
    reference: str
    families: dict[str, list[str]] | None
    synthetic: bool
    folder: Path | None
    client: object
    manifest_hash: str = ""
    missing: tuple[str, ...] = ()


def folder_tracking_uri(folder: Path) -> str | None:
    """The ``logger.tracking_uri=`` override of a study folder's ``command.txt`` (None when it has none)."""
    command = folder / "command.txt"
    if not command.is_file():
        return None
    for token in command.read_text(encoding="utf-8").split():
        key, sep, value = token.partition("=")
        if sep and key.lstrip("+~") == "logger.tracking_uri" and value not in ("", "null"):
            return value
    return None


def _folder_runs(folder: Path) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(parent run id, arm -> child run id in report order, missing arms) from a study folder's report.md."""
    if not (folder / MARKER).is_file():
        raise StudySourceError(f"--study {folder}: not a study folder (no {MARKER} marker, written by liver-mm "
                               "study); give the study's out_dir or its parent run id")
    if (folder / "cv_summary.csv").is_file() or (folder / "oof_predictions.csv").is_file():
        raise cross_validated(folder.name, "a cross-validated study folder")
    report = folder / "report.md"
    return report_runs(report.read_text(encoding="utf-8") if report.is_file() else "", str(report))


def report_runs(text: str, where: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(parent run id, arm -> child run id in report order, arms named missing) from a study report's provenance
    rows (``StudySourceError`` naming ``where`` without them)."""
    rows = _PROVENANCE_ROW.findall(text)
    parent = [run for key, _arm, run in rows if key == "parent_run_id"]
    children = {arm: run for key, arm, run in rows if key != "parent_run_id"}
    if len(parent) != 1 or not children:
        raise StudySourceError(f"{where}: no provenance rows parent_run_id and child_runs.<arm> (a report of "
                               "liver-mm study names them); give the parent run id instead")
    missing = tuple(a.strip() for m in _MISSING_ROW.findall(text) for a in m.split(",") if a.strip())
    return parent[0], children, missing


def _parent_report(client, parent_id: str, name: str, tmp: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """(arm -> child run id, missing arms) of the report the study logged to its parent run."""
    if "report.md" not in {a.path for a in client.list_artifacts(parent_id)}:
        raise StudySourceError(f"study {name} (parent run {parent_id}) logged no report.md: its report step never "
                               "ran, so which child run stands for each arm was never decided; rerun the study "
                               "command (it reuses the finished arms and writes the report), then evaluate")
    path = Path(client.download_artifacts(parent_id, "report.md", str(tmp / "parent")))
    parent, children, missing = report_runs(path.read_text(encoding="utf-8"), f"parent run {parent_id}: report.md")
    if parent != parent_id:
        raise StudySourceError(f"parent run {parent_id}: its report.md names parent run {parent}")
    return children, missing


def cross_validated(name: str, why: str) -> StudySourceError:
    return StudySourceError(
        f"study {name} is cross-validated ({why}): each arm has one model per fold, each with its own dev-chosen "
        "threshold, and no single final model frozen before its test cases (an ensemble or a refit would be a new "
        "model no test split validated); run the single-split study (the same command without cv.folds) and "
        "evaluate that")


def _open(uri: str):
    from liver_mm.tracking.store import open_client, sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise StudySourceError(f"no MLflow store at {db} (tracking URI {uri}): pass --tracking-uri, the store the "
                               "study logged to (or run where its mlflow.db is)")
    return open_client(uri)


def _arm_run(client, arm: str, run, tmp: Path, description: str) -> ArmRun:
    from liver_mm.tracking.models import run_models

    rid = run.info.run_id
    folds = run.data.params.get("cv.folds")
    if folds not in (None, "", "None", "null"):
        raise cross_validated(run.data.tags.get("study", "?"), f"cv.folds={folds} on arm {arm}'s run {rid}")
    artifacts = frozenset(a.path for a in client.list_artifacts(rid))
    if "config.yaml" not in artifacts:
        raise StudySourceError(f"arm {arm}: run {rid} logged no config.yaml: not a finished liver-mm training run")
    config = OmegaConf.load(client.download_artifacts(rid, "config.yaml", str(tmp / arm)))
    threshold = float(run.data.metrics.get("threshold", math.nan))
    if not math.isfinite(threshold):
        raise StudySourceError(f"arm {arm}: run {rid} logged no finite threshold metric (dev Youden, frozen at "
                               "training): nothing to apply unchanged")
    kind = str(run.data.tags.get("model_kind") or config.model.get("kind"))
    if kind not in ("lightning", "sklearn", "score"):
        raise StudySourceError(f"arm {arm}: run {rid} has model kind {kind!r}; evaluate applies lightning, sklearn "
                               "and score arms")
    return ArmRun(arm, rid, kind, config, threshold, float(run.data.metrics.get("selection_dev_auc", math.nan)),
                  description, artifacts, run_models(client, run))


def _check_table3(folder: Path, arms: dict[str, ArmRun]) -> None:
    """The folder's table3.csv must give each arm the threshold its run logged (else they are two studies)."""
    path = folder / "table3.csv"
    if not path.is_file():
        return
    table = pd.read_csv(path).set_index("arm")
    for arm, run in arms.items():
        if arm in table.index and not math.isclose(float(table.at[arm, "threshold"]), run.threshold,
                                                   rel_tol=1e-9, abs_tol=1e-12):
            raise StudySourceError(f"{path}: arm {arm}'s threshold {table.at[arm, 'threshold']} differs from its run "
                                   f"{run.run_id}'s {run.threshold}: the folder and the tracking store disagree")


def resolve_study(study: str, tracking: str | None, tmp: Path) -> StudySource:
    """The finished study ``study`` names (a study folder or a parent run id); ``tmp``: where child configs go.

    Raises :class:`StudySourceError` (one line: what is wrong and what to give instead)."""
    from liver_mm.study.finish import arm_descriptions
    from liver_mm.tracking.registry import is_finished, run_or_none
    from liver_mm.tracking.store import tracking_uri

    folder = Path(study).expanduser()
    if folder.is_dir():
        parent_id, child_ids, missing = _folder_runs(folder)
        client = _open(tracking or folder_tracking_uri(folder) or tracking_uri(None))
    elif RUN_ID.match(study):
        folder, parent_id = None, study
        client = _open(tracking_uri(tracking))
    else:
        raise StudySourceError(f"--study {study}: neither a study folder nor a parent run id (32 hex digits)")
    where = f" in the tracking store {client.tracking_uri}"
    parent = run_or_none(client, parent_id)
    if parent is None or parent.data.tags.get("is_study_parent") != "true":
        raise StudySourceError(f"--study {study}: {'no' if parent is None else 'not a study parent'} run {parent_id}"
                               f"{where}; pass --tracking-uri, the store the study logged to")
    name, exp_id = parent.data.tags.get("study", "?"), parent.info.experiment_id
    if folder is None:
        child_ids, missing = _parent_report(client, parent_id, name, tmp)
    runs = {}
    for arm, rid in child_ids.items():
        run = run_or_none(client, rid)
        if run is None or run.data.tags.get("mlflow.parentRunId") != parent_id or not is_finished(run):
            raise StudySourceError(f"{folder or f'parent run {parent_id}'}: the report's arm {arm} (run {rid}) is "
                                   f"not a finished child of {parent_id}{where}")
        runs[arm] = run
    if not runs:
        raise StudySourceError(f"study {name} (parent run {parent_id}) has no finished arm{where}")
    descriptions = arm_descriptions(client, runs)
    arms = {a: _arm_run(client, a, r, tmp, descriptions[a]) for a, r in runs.items()}
    if folder is not None:
        _check_table3(folder, arms)
    config = next(iter(arms.values())).config
    reference = str(config.study.get("reference") or next(iter(arms)))
    if reference not in arms:
        raise StudySourceError(f"study {name}: its reference arm {reference} has no finished run{where}")
    return StudySource(name, parent_id, exp_id, arms, reference, holm_families(config),
                       parent.data.tags.get("synthetic") == "true", folder, client,
                       parent.data.tags.get("manifest_hash", ""), tuple(a for a in missing if a not in arms))
