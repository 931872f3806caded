"""``liver-mm evaluate``: external validation of a finished study on another cohort.

Order of work (each step refuses bad input before the next): the ``--out`` folder (new, empty, or an earlier
evaluate's, marked ``.liver-mm-evaluate``) -> the study (:mod:`.external_source`: MLflow metadata only) -> its
data dictionary as its models saved it (:mod:`.dictionary`), active from here on -> the external manifest,
validated as ``liver-mm predict`` validates it for every feature any arm reads (an empty one only where the models
learned to take it missing: :mod:`.missing`), plus a label on every row -> its overlap with the study's own cohort
(:mod:`.external_overlap`: an error unless ``allow_overlap``) -> the recalibration parts -> each arm's saved model
(:mod:`.external_arms`) -> no category any arm's model never saw in training (:func:`.checks.refuse_unseen`) ->
predictions -> the folder (:mod:`.external_report`, written beside ``--out`` and swapped in whole) -> one MLflow
run in the study's experiment, nested under its parent run. Nothing is trained; each arm's threshold is the study's, frozen.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.io.dialect import TableOptions
from liver_mm.io.schema import manifest_hash
from liver_mm.stats import calibration_metrics, encode_labels
from liver_mm.study.compare import StudyComparison, metric_name, parent_metrics
from liver_mm.study.external import recalibration as rc
from liver_mm.study.external.checks import refuse_unseen, validate_external
from liver_mm.study.external.dictionary import reading_with, study_dictionary
from liver_mm.study.external.missing import imputed_counts, imputed_notice
from liver_mm.study.external.overlap import Overlap
from liver_mm.study.external.source import StudySource, resolve_study
from liver_mm.study.frozen import compare_frozen

log = logging.getLogger(__name__)
MARKER = ".liver-mm-evaluate"
NOTE = "written by liver-mm evaluate; a later evaluate with this --out replaces this folder\n"
RUN_TYPE = "external_validation"


@dataclass(frozen=True)
class Recalibration:
    """``--recalibrate``: method (intercept | logistic) and the declared fit part: ``column`` (fit/eval per row)
    or else a ``fraction`` of the cases drawn with ``seed`` (:mod:`liver_mm.study.external.recalibration`)."""

    method: str
    fraction: float = 0.5
    seed: int = 0
    column: str | None = None


@dataclass(frozen=True)
class Evaluation:
    out: Path
    run_id: str
    comparison: StudyComparison
    recalibration: pd.DataFrame | None
    overlap: Overlap
    missing: tuple[str, ...] = ()


def check_out(out: Path) -> None:
    """``--out`` must be new, empty, or an earlier evaluate's folder (``ValueError`` otherwise)."""
    from liver_mm.study.parent import check_out_dir

    check_out_dir(out, MARKER, "--out", "liver-mm evaluate", "evaluate")


def _wide(df: pd.DataFrame, probs: Mapping[str, np.ndarray], source: StudySource) -> pd.DataFrame:
    """predictions.csv: case_id, label, then per arm its probability (column named by the arm) and its call."""
    wide = pd.DataFrame({"case_id": df["case_id"].astype(str).to_numpy(), "label": df["label"].to_numpy()})
    for arm, p in probs.items():
        wide[arm] = p
        wide[f"{arm}_call"] = np.where(p >= source.arms[arm].threshold, "malignant", "benign")
    return wide


def _compare(wide: pd.DataFrame, source: StudySource, suffix: str = "") -> StudyComparison:
    cols = {f"{a}{suffix}": a for a in source.arms}
    return compare_frozen(wide[["case_id", "label", *cols]].rename(columns=cols), list(source.arms),
                          {a: r.threshold for a, r in source.arms.items()}, source.reference,
                          descriptions={a: r.description for a, r in source.arms.items()}, families=source.families,
                          selection_dev_auc={a: r.selection_dev_auc for a, r in source.arms.items()})


def _recalibrate(wide: pd.DataFrame, parts: pd.Series, source: StudySource, recal: Recalibration
                 ) -> tuple[dict[str, tuple[float, float]], StudyComparison, StudyComparison]:
    """Fit each arm's map on the fit rows, add ``<arm>_recal`` and ``<arm>_recal_call`` to ``wide`` (in place);
    the original and recalibrated comparisons of the eval rows."""
    wide.insert(2, "recal_part", parts.to_numpy())
    fit = (wide["recal_part"] == rc.FIT).to_numpy()
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    fits = {}
    for arm, run in source.arms.items():
        p = wide[arm].to_numpy(dtype=np.float64)
        try:
            fits[arm] = rc.fit_recalibration(y[fit], p[fit], recal.method)
        except ValueError as exc:
            raise ValueError(f"arm {arm}: {exc}") from None
        wide[f"{arm}_recal"] = rc.recalibrate(p, *fits[arm])
        wide[f"{arm}_recal_call"] = np.where(wide[f"{arm}_recal"] >= run.threshold, "malignant", "benign")
    rest = wide[~fit]
    return fits, _compare(rest, source), _compare(rest, source, "_recal")


def run_metrics(comparison: StudyComparison, recal: pd.DataFrame | None) -> dict[str, float]:
    """The evaluate run's metrics, finite only: ``parent_metrics`` named ``external_*`` (+ ``threshold_<arm>``,
    ``delong_*``), ``external_{brier,cal_intercept,cal_slope}_<arm>``, and with a recalibration
    ``recal_{a,b}_<arm>`` and ``eval[_recal]_{brier,cal_intercept,cal_slope,auc,accuracy,sensitivity,
    specificity}_<arm>`` on the evaluation part."""
    out = parent_metrics(comparison, prefix="external")
    y = comparison.y_test
    for arm in comparison.order:
        for key, value in calibration_metrics(y, comparison.prob(arm)).items():
            out[metric_name("external", key, arm)] = value
    keys = ("brier", "cal_intercept", "cal_slope", "auc", "accuracy", "sensitivity", "specificity")
    for row in ([] if recal is None else recal.to_dict("records")):
        part = "eval" if row["version"] == "original" else "eval_recal"
        out.update({metric_name(part, k, row["arm"]): row[k] for k in keys})
        if row["version"] == "recalibrated":
            out.update({metric_name("recal", k, row["arm"]): row[k] for k in ("a", "b")})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def evaluate(study: str, manifest: str | Path, out: str | Path, *, tracking: str | None = None,
             units: Mapping[str, str] | None = None, options: TableOptions | None = None,
             recal: Recalibration | None = None, batch_size: int = 32, command: str = "liver-mm evaluate",
             allow_overlap: bool = False, allow_missing: bool = False) -> Evaluation:
    """Apply every arm of the finished ``study`` (folder or parent run id) to ``manifest`` and write ``out``
    (see the module docstring). Raises ``ValueError`` subclasses naming what is wrong (``StudySourceError``,
    ``ManifestValidationError``, ``OverlapError`` unless ``allow_overlap``, ``ModelLoadError``) and ``OSError`` for
    files."""
    from liver_mm.fileio import check_writable_dir
    from liver_mm.study.external.arms import load_scorer
    from liver_mm.study.external.overlap import check_overlap, overlap_with_study
    from liver_mm.study.finish import replace_folder

    out, manifest = Path(out), Path(manifest)
    check_out(out)
    check_writable_dir(out.parent)  # the folder is written beside --out, then swapped in
    if recal is not None and recal.method not in rc.METHODS:
        raise ValueError(f"--recalibrate {recal.method}: expected one of {', '.join(rc.METHODS)}")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        source = resolve_study(study, tracking, Path(tmp))
        # the external table and the study's own cohort are read with the study's dictionary, as its models saved it
        saved = study_dictionary(source, Path(tmp))
        stack.enter_context(reading_with(saved.dictionary))
        if source.folder is not None and out.resolve().is_relative_to(source.folder.resolve()):
            raise ValueError(f"--out {out} is inside the study folder {source.folder}, which the study replaces whole "
                             "when it is rerun: choose a folder outside it")
        df = validate_external(manifest, source, units, options, recal.column if recal else None,
                               saved.learned_missing, allow_missing)
        imputed = imputed_counts(df, source)
        mhash = manifest_hash(manifest, options)
        overlap = overlap_with_study(df, manifest, source)
        check_overlap(overlap, manifest, allow_overlap)
        for arm in source.missing:
            log.warning("study %s: arm %s never finished (its report names it missing): not evaluated", source.name,
                        arm)
        parts = None
        if recal is not None:
            parts = (rc.column_parts(df, recal.column) if recal.column
                     else rc.fraction_parts(df, recal.fraction, recal.seed))
        models = {a: load_scorer(source.client, r, Path(tmp) / "models" / a, batch_size)
                  for a, r in source.arms.items()}
        refuse_unseen(df, {a: m.preprocessor for a, m in models.items() if m.preprocessor is not None}, manifest)
        wide = _wide(df, {a: m.score(df) for a, m in models.items()}, source)
        comparison = _compare(wide, source)
        recalibrated = None if parts is None else _recalibrate(wide, parts, source, recal)  # type: ignore[arg-type]
        run_id = _create_run(source, manifest, mhash, recal, allow_overlap)
        tmp_out = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            table = _write(tmp_out, source, manifest, mhash, df, wide, comparison, recalibrated, recal, run_id,
                           command, out.resolve().name, overlap, imputed)
            replace_folder(tmp_out, out, check=check_out, marker=MARKER, note=NOTE)
            _finish_run(source, run_id, out, {**run_metrics(comparison, table), "overlap_cases": float(overlap.n)})
        except BaseException:
            from liver_mm.tracking.runs import set_status

            shutil.rmtree(tmp_out, ignore_errors=True)  # (gone already once swapped in)
            set_status(source.client, run_id, "FAILED")
            raise
    return Evaluation(out, run_id, comparison, table, overlap, source.missing)


def _write(tmp_out: Path, source: StudySource, manifest: Path, mhash: str, df: pd.DataFrame, wide: pd.DataFrame,
           comparison: StudyComparison, recalibrated, recal: Recalibration | None, run_id: str, command: str,
           title: str, overlap: Overlap, imputed: Mapping[str, int] | None = None) -> pd.DataFrame | None:
    from liver_mm.cohort.prepare import synthetic_meta
    from liver_mm.study.external.overlap import overlap_notice
    from liver_mm.study.external.report import write_evaluation, write_recalibration
    from liver_mm.tracking.runs import provenance

    meta = synthetic_meta(manifest)
    external_synthetic = meta is not None
    site = meta["site"].get("name") if meta is not None and isinstance(meta.get("site"), dict) else None
    what = [w for w, s in (("the study's cohort", source.synthetic), ("the external cohort", external_synthetic)) if s]
    synthetic = " and ".join(what) + (" were" if len(what) > 1 else " was") + " generated by liver-mm" if what else None
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    note = (", SYNTHETIC" + (f", site {site}" if site else ", home site")) if external_synthetic else ""
    summary = {"study": source.name, "parent_run_id": source.parent_id, "manifest": str(manifest), "title": title,
               "n_cases": int(y.size), "n_malignant": int(y.sum()), "n_benign": int(y.size - y.sum()),
               "cohort_note": note}
    arms = pd.DataFrame({"Model": list(source.arms), "Kind": [r.kind for r in source.arms.values()],
                         "Child run": [r.run_id for r in source.arms.values()],
                         "Frozen threshold": [f"{r.threshold:.4f}" for r in source.arms.values()]})
    settings = None if recal is None else {**asdict(recal), "n_fit": int((wide["recal_part"] == rc.FIT).sum()),
                                           "n_eval": int((wide["recal_part"] == rc.EVAL).sum())}
    prov = {"study": source.name, "study_folder": str(source.folder.resolve()) if source.folder else "",
            "parent_run_id": source.parent_id, "experiment_id": source.experiment_id, "evaluate_run_id": run_id,
            "child_runs": {a: r.run_id for a, r in source.arms.items()},
            **({"missing_arms": ", ".join(source.missing)} if source.missing else {}),
            "study_cohort_overlap": overlap.n,
            "external_manifest": str(manifest.resolve()), "external_manifest_hash": mhash,
            "external_synthetic": external_synthetic, **({"external_site": site} if site else {}),
            **({"recalibration": settings} if settings else {}), **provenance()}
    table = None
    if recalibrated is not None and recal is not None:
        fits, original, recal_cmp = recalibrated
        table = write_recalibration(tmp_out, original, recal_cmp, fits, recal.method, settings["n_fit"],  # type: ignore[index]
                                    synthetic is not None)
    missing = ([f"**Not evaluated: arm(s) {', '.join(source.missing)} of the study never finished (the study's "
                "report names them missing); rerun the study command to complete them.**", ""]
               if source.missing else [])
    write_evaluation(tmp_out, comparison, wide, df, summary, arms, prov, command, synthetic, settings, table,
                     notices=[*overlap_notice(overlap), *missing, *imputed_notice(imputed or {})])
    return table


def _create_run(source: StudySource, manifest: Path, mhash: str, recal: Recalibration | None,
                allow_overlap: bool) -> str:
    """The evaluate run (RUNNING) in the study's experiment, nested under its parent; no patient data."""
    from liver_mm.cohort.prepare import synthetic_meta
    from liver_mm.tracking.runs import create_run

    tags = {"mlflow.parentRunId": source.parent_id, "study_parent_run_id": source.parent_id,
            "evaluated_study": source.name, "run_type": RUN_TYPE,
            "synthetic": str(synthetic_meta(manifest) is not None or source.synthetic).lower(),
            "external_manifest_hash": mhash}
    params = {"evaluated_study": source.name, "study_parent_run_id": source.parent_id,
              "arms": ",".join(source.arms), "reference": source.reference,
              "recalibrate": recal.method if recal else "none", "allow_overlap": allow_overlap}
    if source.missing:
        params["missing_arms"] = ",".join(source.missing)
    if recal is not None:
        params.update({"recal_column": recal.column} if recal.column
                      else {"recal_fraction": recal.fraction, "recal_seed": recal.seed})
    return create_run(source.client, source.experiment_id, f"evaluate:{source.name}", tags, params)


def _finish_run(source: StudySource, run_id: str, out: Path, metrics: Mapping[str, float]) -> None:
    from liver_mm.tracking.artifacts import log_folder
    from liver_mm.tracking.runs import log_metrics, set_status

    log_metrics(source.client, run_id, metrics)
    log_folder(source.client, run_id, out)
    set_status(source.client, run_id, "FINISHED")
