"""Scoring requests: one row per case, checked field by field before anything is predicted.

A request row holds ``case_id``, the frame as ``image_b64`` (base64 PNG/JPEG bytes) or
``image_path`` (only under the server's image root, :mod:`liver_mm.serve.image_root`), an
optional box ``bbox_x0, bbox_y0, bbox_x1, bbox_y1`` (pixels, x1/y1 exclusive; absent = the
whole frame) and the model's clinical fields in the paper's units (:data:`liver_mm.data.schema.CLINICAL`). Every problem is collected as a
:class:`Problem` naming the case and the field; :class:`RequestError` carries them all.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from liver_mm.data.images import ImageReadError, read_gray
from liver_mm.data.schema import BBOX_COLUMNS, CLINICAL, SEX_CODES, ClinicalColumn, normalise_sex
from liver_mm.data.validate_labs import judge_value
from liver_mm.serve.image_root import ImagePathRefused, resolve_request_path

IMAGE_FIELDS = ("image_b64", "image_path")


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one case."""

    case_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"case {self.case_id}, field {self.field}: {self.message}"


class RequestError(ValueError):
    """The request cannot be scored; ``problems`` names every bad (case, field)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("invalid request: " + "; ".join(map(str, self.problems)))


@dataclass(frozen=True)
class ParsedCases:
    """A checked request: case ids (N,), frames (H, W) uint8 (empty without an image branch),
    boxes (None = whole frame) and the clinical columns in paper units (N rows)."""

    case_ids: list[str]
    frames: list[np.ndarray]
    boxes: list[tuple[int, int, int, int] | None]
    labs: pd.DataFrame


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def check_lab(name: str, value: object) -> str | None:
    """None if ``value`` is usable for clinical field ``name``, else what is wrong (ranges and unit
    sniffing from :data:`~liver_mm.data.schema.CLINICAL`, for one value)."""
    spec = CLINICAL.get(name)
    if _missing(value):
        unit = f" in {spec.unit}" if spec is not None and spec.unit else ""
        return f"missing: this model needs {name}{unit}"
    if name == "sex" or (spec is not None and spec.kind == "categorical"):
        code = normalise_sex(pd.Series([value], dtype=object)).iloc[0] if name == "sex" else value
        allowed = spec.categories if spec is not None else SEX_CODES
        return None if code in allowed else f"{value!r} is not one of {', '.join(allowed)}"
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{value!r} is not a number"
    if not math.isfinite(x):
        return f"{value!r} is not a finite number"
    return None if spec is None else _check_range(spec, x)


def _check_range(spec: ClinicalColumn, x: float) -> str | None:
    """A message when ``x`` is impossible in the paper's unit (the validator's rule,
    :func:`~liver_mm.data.validate_labs.judge_value`); borderline values are accepted."""
    verdict = judge_value(spec, x)
    if verdict is None or verdict.severity != "error":
        return None
    return verdict.message + (f": send {spec.name} in {spec.unit}" if verdict.unit else "")


def decode_image(case_id: str, row: pd.Series, image_root: Path | None = None
                 ) -> tuple[np.ndarray | None, Problem | None]:
    """The frame (H, W) uint8 of a request row from ``image_b64``, or from ``image_path`` when it lies
    under ``image_root`` (:mod:`liver_mm.serve.image_root`; None = inline images only)."""
    b64 = row.get("image_b64")
    path = row.get("image_path")
    has_b64, has_path = not _missing(b64), not _missing(path)
    if has_b64 == has_path:
        what = "both given" if has_b64 else "neither given"
        return None, Problem(case_id, "image_b64", f"give exactly one of image_b64 / image_path ({what})")
    field = "image_b64" if has_b64 else "image_path"
    try:
        if has_b64:
            text = str(b64).strip()
            if text.startswith("data:") and "," in text:  # a data URL: data:image/png;base64,....
                text = text.split(",", 1)[1]
            data = base64.b64decode(text, validate=True)
            return read_gray(data), None
        return read_gray(str(resolve_request_path(str(path), image_root))), None
    except binascii.Error as exc:
        return None, Problem(case_id, field, f"not valid base64 ({exc})")
    except ImagePathRefused as exc:
        return None, Problem(case_id, field, str(exc))
    except ImageReadError as exc:
        if exc.reason == "too_large":
            return None, Problem(case_id, field, _too_large(str(exc)))
        return None, Problem(case_id, field, str(exc).replace("<bytes>", "the decoded bytes"))
    except Image.DecompressionBombError as exc:
        return None, Problem(case_id, field, _too_large(str(exc)))


def _too_large(detail: str) -> str:
    """The answer to an image over Pillow's pixel limit (its count when ``detail`` gives it)."""
    found = re.search(r"([\d,]+) pixels", detail)
    count = f" ({found[1]} pixels)" if found else ""
    return (f"image too large{count}: the limit is {Image.MAX_IMAGE_PIXELS or 0:,} pixels per image; "
            "crop or downscale it")


def parse_box(case_id: str, row: pd.Series, shape: tuple[int, int] | None
              ) -> tuple[tuple[int, int, int, int] | None, Problem | None]:
    """The bbox of a request row (None when all four fields are absent), checked against ``shape`` (H, W)."""
    values = [row.get(c) for c in BBOX_COLUMNS]
    absent = [c for c, v in zip(BBOX_COLUMNS, values, strict=True) if _missing(v)]
    if len(absent) == 4:
        return None, None
    if absent:
        return None, Problem(case_id, absent[0], f"incomplete box: {', '.join(absent)} missing "
                             "(give all four bbox fields or none for the whole image)")
    box = []
    for col, v in zip(BBOX_COLUMNS, values, strict=True):
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = math.nan
        if not (math.isfinite(x) and x.is_integer()):
            return None, Problem(case_id, col, f"{v!r} is not an integer pixel coordinate")
        box.append(int(x))
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return None, Problem(case_id, "bbox_x0", f"box {tuple(box)} has no area (x1 > x0 and y1 > y0 needed)")
    if shape is not None and (x0 < 0 or y0 < 0 or x1 > shape[1] or y1 > shape[0]):
        return None, Problem(case_id, "bbox_x0", f"box {tuple(box)} extends outside the "
                             f"{shape[1]}x{shape[0]} px image")
    return (x0, y0, x1, y1), None


def expected_fields(features: Sequence[str], use_image: bool) -> list[str]:
    """The request fields of a model: case_id, the image and box fields when it sees images, its labs."""
    image = ["image_b64 (or image_path)", *BBOX_COLUMNS] if use_image else []
    return ["case_id", *image, *features]


def parse_request(df: pd.DataFrame, features: Sequence[str], use_image: bool,
                  image_root: Path | None = None) -> ParsedCases:
    """Check every row of a request frame; raises :class:`RequestError` listing all problems.
    ``image_root``: the folder ``image_path`` may point into (None: inline ``image_b64`` only)."""
    if len(df) == 0:
        raise RequestError([Problem("(none)", "dataframe_records", "the request holds no case: send one "
                                    "record per case with the fields "
                                    f"{', '.join(expected_fields(features, use_image))}")])
    problems: list[Problem] = []
    ids = [str(v) if not _missing(v) else f"#{i}" for i, v in
           enumerate(df["case_id"] if "case_id" in df.columns else [None] * len(df))]
    frames: list[np.ndarray] = []
    boxes: list[tuple[int, int, int, int] | None] = []
    for i, (_, row) in enumerate(df.iterrows()):
        cid = ids[i]
        for name in features:
            if (msg := check_lab(name, row.get(name))) is not None:
                problems.append(Problem(cid, name, msg))
        if not use_image:
            continue
        frame, bad = decode_image(cid, row, image_root)
        box, bad_box = parse_box(cid, row, None if frame is None else frame.shape)
        problems += [p for p in (bad, bad_box) if p is not None]
        frames.append(frame)  # type: ignore[arg-type]  # only used when there is no problem
        boxes.append(box)
    if problems:
        raise RequestError(problems)
    labs = pd.DataFrame({name: _lab_column(df, name) for name in features}, index=range(len(df)))
    return ParsedCases(ids, frames, boxes, labs)


def _lab_column(df: pd.DataFrame, name: str) -> pd.Series:
    if name == "sex":
        return normalise_sex(pd.Series(list(df[name]), dtype=object))
    return pd.Series(pd.to_numeric(pd.Series(list(df[name]), dtype=object)).to_numpy(np.float64))
