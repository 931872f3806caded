"""Scoring requests: one row per case, checked field by field before anything is predicted.

A request row holds ``case_id``, the frame as ``image_b64`` (base64 PNG/JPEG bytes) or
``image_path`` (a file the server can read), an optional box ``bbox_x0, bbox_y0, bbox_x1,
bbox_y1`` (pixels, x1/y1 exclusive; absent = the whole frame) and the model's clinical fields
in the paper's units (:data:`liver_mm.data.schema.CLINICAL`). Every problem is collected as a
:class:`Problem` naming the case and the field; :class:`RequestError` carries them all.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liver_mm.data.crops import BBOX_COLUMNS
from liver_mm.data.images import ImageReadError, read_gray
from liver_mm.data.schema import CLINICAL, SEX_CODES, ClinicalColumn, normalise_sex

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


def _fmt(x: float) -> str:
    return f"{x:g}"


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
    """Out of the plausible range, or atypical in a way another unit explains: a message."""
    lo, hi = spec.plausible
    tlo, thi = spec.typical
    units = [u for u, f in spec.conversions.items() if tlo <= x * f <= thi]
    hint = (f"; it looks like {units[0]} (= {_fmt(x * spec.conversions[units[0]])} {spec.unit}): "
            f"send {spec.name} in {spec.unit}") if units else ""
    if not lo <= x <= hi:
        return f"{_fmt(x)} {spec.unit} is outside the plausible {_fmt(lo)}-{_fmt(hi)} {spec.unit}{hint}"
    if not tlo <= x <= thi and units:
        return f"{_fmt(x)} {spec.unit} is atypical (typical {_fmt(tlo)}-{_fmt(thi)} {spec.unit}){hint}"
    return None


def decode_image(case_id: str, row: pd.Series) -> tuple[np.ndarray | None, Problem | None]:
    """The frame (H, W) uint8 of a request row from ``image_b64`` or ``image_path``."""
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
        return read_gray(str(path)), None
    except binascii.Error as exc:
        return None, Problem(case_id, field, f"not valid base64 ({exc})")
    except ImageReadError as exc:
        return None, Problem(case_id, field, str(exc).replace("<bytes>", "the decoded bytes"))


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


def parse_request(df: pd.DataFrame, features: Sequence[str], use_image: bool) -> ParsedCases:
    """Check every row of a request frame; raises :class:`RequestError` listing all problems."""
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
        frame, bad = decode_image(cid, row)
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
