"""``liver-mm predict``: score the cases of a manifest with a logged model, to a CSV.

The manifest is validated with the training validator's checks (files, boxes, masks, lab
units and ranges), minus those that need labels or a split: new cases need neither. It must
carry the columns the model's modality set uses. Output: case_id, prob (of malignancy),
label (``malignant`` when prob >= the model's frozen threshold, else ``benign``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from liver_mm.data.crops import BBOX_COLUMNS
from liver_mm.data.images import read_gray
from liver_mm.data.validate import ManifestValidationError, ValidationReport, open_manifest, validate_labs
from liver_mm.data.validate_images import check_bboxes, check_files
from liver_mm.data.validate_report import Collector
from liver_mm.serve.inference import Predictor

log = logging.getLogger(__name__)
BUNDLE_ARTIFACT = "bundle"


class ModelLoadError(ValueError):
    """The model URI cannot be resolved to a liver-mm bundle."""


def resolve_bundle(model_uri: str) -> Path:
    """Local bundle folder of ``model_uri``: ``runs:/<id>/model``, ``models:/...``, a local MLflow
    model folder (pyfunc logged by :func:`liver_mm.serve.pyfunc.log_pyfunc_model`) or a bundle folder."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    local = Path(model_uri).expanduser()
    if not local.is_dir():
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(f"cannot fetch model {model_uri}: {exc}") from None
    if (local / "spec.json").is_file():
        return local
    if not (local / "MLmodel").is_file():
        raise ModelLoadError(f"{model_uri}: neither an MLflow model (no MLmodel file) nor a bundle (no spec.json)")
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    artifact = (flavor.get("artifacts") or {}).get(BUNDLE_ARTIFACT)
    if not artifact:
        raise ModelLoadError(f"{model_uri}: not a liver-mm network model (no {BUNDLE_ARTIFACT!r} artifact; "
                             "scikit-learn baselines are loaded with mlflow.sklearn instead)")
    return local / artifact["path"]


def load_predictor(model_uri: str, batch_size: int = 32) -> Predictor:
    """:class:`Predictor` of a model URI (see :func:`resolve_bundle`)."""
    folder = resolve_bundle(model_uri)
    try:
        return Predictor.from_dir(folder, batch_size=batch_size)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{model_uri}: cannot load the bundle in {folder} ({exc})") from None


def _needed_columns(df: pd.DataFrame, features: Iterable[str], use_image: bool) -> list[str]:
    cols = ["case_id"]
    if use_image:
        cols += ["image_path"] + ([] if "mask_path" in df.columns else list(BBOX_COLUMNS))
    return cols + list(features)


def validate_cases(path: str | Path, units: Mapping[str, str] | None = None, features: Iterable[str] = (),
                   use_image: bool = True) -> tuple[ValidationReport, pd.DataFrame | None]:
    """Validate a manifest of cases to score: the model's columns present, case_ids unique,
    images and boxes (when ``use_image``) and labs checked as for training. Labels and split are
    optional and not checked. Returns (report, frame from ``read_manifest``; None if unreadable)."""
    report, df, cache = open_manifest(path, units)
    if df is None:
        return report, None
    out = Collector(df, str(path))
    features = list(features)
    missing = [c for c in _needed_columns(df, features, use_image) if c not in df.columns]
    for col in missing:
        why = f"clinical feature of this model ({', '.join(features)})" if col in features else "needed"
        out.add("error", "missing_column", f"column {col!r} is missing: {why}; columns found: "
                f"{', '.join(df.columns)}", column=col)
    if df.empty:
        out.add("error", "manifest_empty", "the manifest has a header but no rows: one row per case")
    elif not missing:
        for col in ("case_id", "image_path") if use_image else ("case_id",):
            for idx in df.index[df[col].isna()]:
                out.add("error", "missing_value", f"{col} is empty: every row needs one", idx, col)
        for idx in df.index[df["case_id"].notna() & df["case_id"].duplicated()]:
            out.add("error", "duplicate_case_id", f"case_id {df.at[idx, 'case_id']} is used twice: give "
                    "every nodule its own case_id", idx, "case_id")
        if use_image:
            check_bboxes(df, check_files(df, out, cache), out)
    report.findings = [*out, *validate_labs(df, source=str(path))]
    return report, df


def load_cases(path: str | Path, predictor: Predictor, units: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The validated manifest for ``predictor``; raises ``ManifestValidationError`` (file, line,
    column of every problem) when unusable and logs the warnings."""
    report, df = validate_cases(path, units, predictor.features, predictor.use_image)
    if not report.ok or df is None:
        raise ManifestValidationError(report)
    for finding in report.warnings:
        log.warning("%s", finding)
    return df


def predict_frame(predictor: Predictor, df: pd.DataFrame) -> pd.DataFrame:
    """Score the rows of a validated manifest frame -> case_id, prob, label (row order kept)."""
    case_ids = df["case_id"].astype(str).tolist()
    labs = df[predictor.features].reset_index(drop=True)
    if not predictor.use_image:
        return predictor.predict(case_ids, labs, None)
    paths = df["image_path"].astype(str).tolist()
    boxes = df[list(BBOX_COLUMNS)].to_numpy()
    last: dict[str, object] = {}

    def load(i: int) -> tuple:
        if last.get("path") != paths[i]:  # several nodules of one frame: decode it once
            last.update(path=paths[i], frame=read_gray(paths[i]))
        return last["frame"], tuple(int(v) for v in boxes[i])

    return predictor.predict(case_ids, labs, load)


def predict_manifest(model: str | Predictor, manifest: str | Path, units: Mapping[str, str] | None = None,
                     out: str | Path | None = None) -> pd.DataFrame:
    """Validate ``manifest``, score it with ``model`` (URI or :class:`Predictor`), optionally write ``out``."""
    predictor = load_predictor(model) if isinstance(model, str) else model
    pred = predict_frame(predictor, load_cases(manifest, predictor, units))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pred.to_csv(out, index=False)
    return pred


__all__ = ["ModelLoadError", "ManifestValidationError", "load_cases", "load_predictor", "predict_frame",
           "predict_manifest", "resolve_bundle", "validate_cases"]
