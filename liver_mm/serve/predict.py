"""``liver-mm predict``: score the cases of a manifest with a logged model, to a CSV.

The manifest is validated with the training validator's checks (files, boxes, masks,
pixel-identical images, lab units and ranges), minus those that need labels or a split: new
cases need neither. It must carry the columns the model's modality set uses, filled: an empty
model input is refused unless ``allow_missing`` (then the training median is imputed and the
output's ``imputed`` column names the filled features per case). Output: case_id, prob (of
malignancy), label (``malignant`` when prob >= the model's frozen threshold, else ``benign``),
written atomically and never over the input manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cohort.validate import ManifestValidationError, ValidationReport, open_manifest, validate_labs
from liver_mm.cohort.validate_images import check_bboxes, check_files, check_identical
from liver_mm.cohort.validate_report import Collector
from liver_mm.dictionary import active
from liver_mm.fileio import atomic_to_csv, check_writable_dir, same_file
from liver_mm.io.dialect import TableOptions
from liver_mm.io.images import ImageCache, read_gray
from liver_mm.io.schema import BBOX_COLUMNS, NON_NUMERIC_ATTR
from liver_mm.serve.inference import Predictor

log = logging.getLogger(__name__)
BUNDLE_ARTIFACT = "bundle"


class ModelLoadError(ValueError):
    """The model URI cannot be resolved to a liver-mm bundle."""


def resolve_bundle(model_uri: str) -> Path:
    """Local bundle folder of ``model_uri``: ``runs:/<id>/model``, ``models:/...``, a local MLflow
    model folder (pyfunc logged by :func:`liver_mm.tracking.models.log_network_models`) or a bundle folder."""
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


def _blank(df: pd.DataFrame, col: str) -> pd.Series:
    """Rows whose ``col`` cell is empty (a non-numeric cell is reported as such, not as empty)."""
    not_numeric = list(df.attrs.get(NON_NUMERIC_ATTR, {}).get(col, {}))
    return df[col].isna() & ~df.index.isin(not_numeric)


def _check_feature_values(df: pd.DataFrame, features: list[str], out: Collector) -> None:
    """A model input left empty is an error (``missing_value``): row by row, or once for a column
    empty on every row."""
    for col in features:
        blank = _blank(df, col)
        if not blank.any():
            continue
        spec = active().get(col)
        need = f"this model needs {col}" + (f" ({spec.unit})" if spec is not None and spec.unit else "")
        fix = ("fill it in, or pass --allow-missing to impute the training median (listed per case in "
               "the output's imputed column)")
        if blank.all() and len(df) > 1:
            out.add("error", "missing_value", f"{col} is empty on every row ({out.where(df.index)}): "
                    f"{need}; {fix}", column=col)
            continue
        for idx in df.index[blank]:
            out.add("error", "missing_value", f"{col} is empty: {need}; {fix}", idx, col)


def _check_identical(df: pd.DataFrame, cache: ImageCache, out: Collector) -> None:
    """Training's pixel-identical image check; without a patient_id column only overlapping boxes
    on one frame count as the same nodule, without labels no conflict is possible."""
    view = df.copy(deep=False)
    if "patient_id" not in view.columns:
        view["patient_id"] = ""
    if "label" not in view.columns:
        view["label"] = np.nan
    check_identical(view, cache, out)


def validate_cases(path: str | Path, units: Mapping[str, str] | None = None, features: Iterable[str] = (),
                   use_image: bool = True, allow_missing: bool = False, options: TableOptions | None = None
                   ) -> tuple[ValidationReport, pd.DataFrame | None]:
    """Validate a manifest of cases to score: the model's columns present and filled (unless
    ``allow_missing``), case_ids unique, images, boxes and pixel-identical images (when
    ``use_image``) and labs checked as for training. Labels and split are optional and not checked.
    ``options``: how the table is written and coded (separator, decimal mark, censored cells, code maps).
    Returns (report, frame from ``read_manifest``; None if unreadable)."""
    report, df, cache = open_manifest(path, units, options)
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
        if not allow_missing:
            _check_feature_values(df, features, out)
        if use_image:
            check_bboxes(df, check_files(df, out, cache), out)
            _check_identical(df, cache, out)
    report.findings = [*out, *validate_labs(df, source=str(path))]
    return report, df


def load_cases(path: str | Path, predictor: Predictor, units: Mapping[str, str] | None = None,
               allow_missing: bool = False, options: TableOptions | None = None) -> pd.DataFrame:
    """The validated manifest for ``predictor``; raises ``ManifestValidationError`` (file, line,
    column of every problem) when unusable and logs the warnings."""
    report, df = validate_cases(path, units, predictor.features, predictor.use_image, allow_missing, options)
    if not report.ok or df is None:
        raise ManifestValidationError(report)
    for finding in report.warnings:
        log.warning("%s", finding)
    return df


def imputed_features(df: pd.DataFrame, features: Iterable[str]) -> pd.Series:
    """Per row, the features left empty (imputed by the model), ``;``-joined ("" when none)."""
    features = list(features)
    blank = {f: _blank(df, f).to_numpy() for f in features}
    return pd.Series([";".join(f for f in features if blank[f][i]) for i in range(len(df))],
                     index=df.index, dtype=object)


def predict_frame(predictor: Predictor, df: pd.DataFrame, mark_imputed: bool = False) -> pd.DataFrame:
    """Score the rows of a validated manifest frame -> case_id, prob, label (row order kept), and
    with ``mark_imputed`` an ``imputed`` column naming each case's empty (imputed) features."""
    case_ids = df["case_id"].astype(str).tolist()
    censored = [f"{f}_censored" for f in predictor.features if f"{f}_censored" in df.columns]
    labs = df[[*predictor.features, *censored]].reset_index(drop=True)  # indicators: read as 0 when absent
    if not predictor.use_image:
        pred = predictor.predict(case_ids, labs, None)
    else:
        paths = df["image_path"].astype(str).tolist()
        frames = (df["frame"].fillna(0).astype(int).tolist() if "frame" in df.columns else [0] * len(df))
        boxes = df[list(BBOX_COLUMNS)].to_numpy()
        last: dict[str, object] = {}

        def load(i: int) -> tuple:
            if last.get("key") != (paths[i], frames[i]):  # several nodules of one frame: decode it once
                last.update(key=(paths[i], frames[i]), frame=read_gray(paths[i], frames[i]))
            return last["frame"], tuple(int(v) for v in boxes[i])

        pred = predictor.predict(case_ids, labs, load)
    if mark_imputed:
        pred["imputed"] = imputed_features(df, predictor.features).to_numpy()
    return pred


def check_output(manifest: str | Path, out: str | Path) -> None:
    """Refuse an ``out`` that is the input manifest (any spelling: ``..``, symlink, hard link) or a
    folder; create its folder and prove it writable (``NotWritableError`` naming it)."""
    if same_file(out, manifest):
        raise ValueError(f"{out}: the predictions CSV must be a new file, not the input manifest "
                         f"{manifest} itself: choose another --out")
    if Path(out).is_dir():
        raise IsADirectoryError(f"{out}: is a folder; --out names the predictions CSV to write")
    check_writable_dir(Path(out).parent)


def write_predictions(pred: pd.DataFrame, out: str | Path) -> None:
    """Write the predictions CSV atomically (a reader never sees half a file; an error keeps the old one)."""
    atomic_to_csv(pred, out)


def predict_manifest(model: str | Predictor, manifest: str | Path, units: Mapping[str, str] | None = None,
                     out: str | Path | None = None, allow_missing: bool = False,
                     options: TableOptions | None = None) -> pd.DataFrame:
    """Validate ``manifest``, score it with ``model`` (URI or :class:`Predictor`), optionally write ``out``
    (never the manifest itself). ``allow_missing``: impute empty model inputs with the training
    median instead of refusing them, and add the ``imputed`` column."""
    if out is not None:
        check_output(manifest, out)
    predictor = load_predictor(model) if isinstance(model, str) else model
    pred = predict_frame(predictor, load_cases(manifest, predictor, units, allow_missing, options), allow_missing)
    if out is not None:
        write_predictions(pred, out)
    return pred


__all__ = ["ModelLoadError", "ManifestValidationError", "check_output", "imputed_features", "load_cases",
           "load_predictor", "predict_frame", "predict_manifest", "resolve_bundle", "validate_cases",
           "write_predictions"]
