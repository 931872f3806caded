"""The served model: an MLflow pyfunc over a bundle, scoring one request row per case.

Logged as an MLflow "model from code" (:mod:`liver_mm.serve.pyfunc_model_code`, no pickled
Python object); its only artifact is the bundle folder (safetensors weights + JSON), so
loading it unpickles nothing. ``mlflow models serve -m URI --env-manager local`` then answers
``/invocations`` with ``{"dataframe_records": [{"case_id": ..., "image_b64": ..., "bbox_x0": ...,
"age": ...}]}`` (see :mod:`liver_mm.serve.requests`) and returns one ``{case_id, prob, label}`` per
case (plus ``whole_frame`` when a record asked for the whole frame). Labs are in the units the model
states (its metadata ``units``, the bundle's ``units.json``) unless a record declares ``units``
(:mod:`liver_mm.serve.units`). A bad field raises an ``MlflowException`` with
``INVALID_PARAMETER_VALUE``: HTTP 400 naming the case and the field. Images come inline (``image_b64``); ``image_path`` is read only under the folder
named by ``$LIVER_MM_SERVE_IMAGE_ROOT`` when the model is loaded (:mod:`liver_mm.serve.image_root`).
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType
from PIL import Image

from liver_mm.dictionary import Variable, default_dictionary
from liver_mm.features.tabular import LEGACY_KINDS
from liver_mm.io.schema import BBOX_COLUMNS
from liver_mm.serve.image_root import image_root_from_env
from liver_mm.serve.inference import OUTPUT_COLUMNS, Predictor
from liver_mm.serve.requests import IMAGE_FIELDS, RequestError, parse_request
from liver_mm.serve.units import (
    UNITS_FIELD,
    WHOLE_FRAME_FIELD,
    Variables,
    canonical_units,
    units_document,
    variables_document,
)

ARTIFACT_KEY = "bundle"
MODEL_CODE = Path(__file__).with_name("pyfunc_model_code.py")


def score_request(predictor: Predictor, model_input: pd.DataFrame, image_root: Path | None = None) -> pd.DataFrame:
    """Check and score a request frame -> case_id, prob, label (and ``whole_frame`` when a record
    asked to be scored on its whole frame); bad fields raise an ``MlflowException``
    (INVALID_PARAMETER_VALUE, i.e. HTTP 400) listing every (case, field).
    ``image_root``: the only folder ``image_path`` may name (None: inline images only)."""
    df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    try:
        cases = parse_request(df, predictor.features, predictor.use_image, image_root,
                              predictor.preprocessor.variables)
    except RequestError as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    load = (lambda i: (cases.frames[i], cases.boxes[i])) if predictor.use_image else None
    out = predictor.predict(cases.case_ids, cases.labs, load)
    if any(cases.whole_frame):
        out[WHOLE_FRAME_FIELD] = cases.whole_frame
    return out


class NodulePyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a :class:`~liver_mm.serve.inference.Predictor` (artifact ``bundle``)."""

    def __init__(self) -> None:
        self.predictor: Predictor | None = None
        self.image_root: Path | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.image_root = image_root_from_env()
        self.predictor = Predictor.from_dir(context.artifacts[ARTIFACT_KEY])

    # pd.DataFrame is a hint MLflow infers no schema from: the explicit signature stays in
    # charge and requests keep the dataframe_records / dataframe_split formats.
    def predict(self, context: mlflow.pyfunc.PythonModelContext | None, model_input: pd.DataFrame,
                params: dict | None = None) -> pd.DataFrame:
        if self.predictor is None:
            raise MlflowException("model not loaded: load_context() was not called")
        return score_request(self.predictor, model_input, self.image_root)


def request_signature(features: list[str], use_image: bool, variables: Variables | None = None) -> ModelSignature:
    """Input: case_id, image fields, bbox and ``whole_frame`` (when the model sees images), the
    clinical features and ``units``, all optional at the schema level (the model checks them and
    names the case). Numbers are typed ``Any``: a double column would turn a JSON ``true`` into 1.0
    before the model could refuse it. Output: case_id, prob, label (and whole_frame)."""
    cols = [ColSpec("string", "case_id", required=False)]
    if use_image:
        cols += [ColSpec("string", f, required=False) for f in IMAGE_FIELDS]
        cols += [ColSpec(AnyType(), c, required=False) for c in (*BBOX_COLUMNS, WHOLE_FRAME_FIELD)]
    kinds = {f: v["kind"] for f, v in variables_document(features, variables).items()}
    cols += [ColSpec(AnyType() if kinds.get(f, "continuous") == "continuous" else "string", f, required=False)
             for f in features]
    cols += [ColSpec(AnyType(), UNITS_FIELD, required=False)]
    types = {"case_id": "string", "prob": "double", "label": "string"}
    outputs = [ColSpec(types[c], c) for c in OUTPUT_COLUMNS]
    if use_image:
        outputs.append(ColSpec("boolean", WHOLE_FRAME_FIELD, required=False))
    return ModelSignature(Schema(cols), Schema(outputs))


def model_metadata(features: list[str], variables: Variables | None = None) -> dict[str, object]:
    """The served model's metadata: each clinical field's kind and unit or allowed categories (``variables``),
    the unit of each lab it needs and the units a request may declare."""
    return {"variables": variables_document(features, variables), "units": units_document(features, variables),
            "units_note": "lab values are in these units unless a record declares others in 'units'"}


def example_png(height: int = 96, width: int = 128) -> bytes:
    """A small deterministic grayscale PNG (a bright disc on speckle-like texture)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    disc = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (min(height, width) / 4) ** 2
    px = np.clip(rng.gamma(2.0, 30.0, (height, width)) + 60 * disc, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG")
    return buf.getvalue()


def _typical_value(name: str, stats: dict, variable: Variable | None = None) -> object:
    """The training median (mode) of one feature back on the request scale (its unit, or a category)."""
    variable = variable or default_dictionary().get(name)  # a state older than the dictionary: the shipped one
    cats = variable.categories if variable is not None else ()
    kind = LEGACY_KINDS.get(stats["kind"], stats["kind"])
    if kind in ("binary", "ordinal"):
        return cats[min(int(round(stats["median"])), len(cats) - 1)]
    if kind == "categorical":
        return cats[stats["fill"].index(1.0)]
    if kind == "multi":
        return (variable.separator if variable is not None else "&").join(
            c for c, f in zip(cats, stats["fill"], strict=True) if f) or cats[0]
    value = math.expm1(stats["median"]) if stats["kind"] == "log1p" else stats["median"]
    return round(float(value), 2)


def input_example(predictor: Predictor) -> pd.DataFrame:
    """One request row: an example image, its box, the training medians of the clinical features
    and ``units`` stating the unit of each (the model's own units)."""
    row: dict[str, object] = {"case_id": "example-1"}
    if predictor.use_image:
        row["image_b64"] = base64.b64encode(example_png()).decode("ascii")
        row.update(dict(zip(BBOX_COLUMNS, (32.0, 24.0, 96.0, 72.0), strict=True)))
    stats = predictor.preprocessor.stats_ or {}
    own = predictor.preprocessor.variables
    row.update({f: _typical_value(f, stats[f], own.get(f)) for f in predictor.features})
    if canonical_units(predictor.features, own):
        row[UNITS_FIELD] = canonical_units(predictor.features, own)
    return pd.DataFrame([row])


def pip_requirements() -> list[str]:
    """What a served liver-mm model needs installed."""
    import torch

    import liver_mm

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"liver-mm=={liver_mm.__version__}"]
