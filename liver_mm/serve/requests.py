"""Scoring requests: one row per case, checked field by field before anything is predicted.

A request row holds ``case_id``, the frame as ``image_b64`` (base64 PNG/JPEG bytes) or
``image_path`` (only under the server's image root, :mod:`liver_mm.serve.image_root`), the lesion's
box ``bbox_x0, bbox_y0, bbox_x1, bbox_y1`` (pixels, x1/y1 exclusive; the model was trained on crops,
so a record without one is refused unless it says ``whole_frame: true``) and the model's clinical
fields in the units of the model's data dictionary or in the units its ``units``
object declares (:mod:`liver_mm.serve.units`). A JSON boolean is never a number. Every problem is
collected as a :class:`Problem` naming the case and the field; :class:`RequestError` carries them all.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from liver_mm.cohort.validate_labs import judge_value
from liver_mm.dictionary import close_match, default_dictionary
from liver_mm.io.dicom import DicomReadError
from liver_mm.io.images import ImageReadError, read_gray
from liver_mm.io.schema import BBOX_COLUMNS, ClinicalColumn
from liver_mm.serve.image_root import ImagePathRefused, relative_name, resolve_request_path
from liver_mm.serve.units import (
    UNITS_FIELD,
    WHOLE_FRAME_FIELD,
    is_bool,
    json_bool,
    parse_units,
    parse_whole_frame,
)

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
    boxes (None = whole frame, only where ``whole_frame`` is True) and the clinical columns
    converted to the paper's units (N rows)."""

    case_ids: list[str]
    frames: list[np.ndarray]
    boxes: list[tuple[int, int, int, int] | None]
    labs: pd.DataFrame
    whole_frame: list[bool]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def check_lab(name: str, value: object, declared: tuple[str, float] | None = None,
              spec: ClinicalColumn | None = None) -> str | None:
    """None if ``value`` is usable for clinical field ``name``, else what is wrong (ranges and unit
    sniffing from the variable ``spec``, the model's own dictionary entry, else the shipped
    data dictionary's, for one value). ``declared``: the record's (unit, factor into the
    variable's unit) for this lab; the range is checked after converting. A category variable's value must
    be one of its categories (case, spaces and synonyms ignored; a ``multi`` value each of its parts)."""
    spec = spec if spec is not None else default_dictionary().get(name)
    if _missing(value):
        unit = f" in {spec.unit}" if spec is not None and spec.unit else ""
        return f"missing: this model needs {name}{unit}"
    if spec is not None and spec.kind != "continuous":
        text = str(value) if isinstance(value, str | int | float) and not is_bool(value) else None
        parts = [] if text is None else spec.split(text) if spec.kind == "multi" else [str(spec.category(text))]
        wrong = [p for p in parts if p not in spec.categories] if parts else [repr(value)]
        if not wrong:
            return None
        return (f"{wrong[0] if parts else value!r} is not one of {', '.join(spec.categories)}"
                f"{close_match(str(wrong[0]), spec.categories)} (the categories of {name} this model knows)")
    if is_bool(value):
        unit = f" in {spec.unit}" if spec is not None and spec.unit else ""
        return f"{json_bool(value)} is a JSON boolean, not a number: send {name} as a number{unit}"
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{value!r} is not a number"
    if not math.isfinite(x):
        return f"{value!r} is not a finite number"
    if spec is None:
        return None
    if declared is None:
        return _check_range(spec, x)
    msg = _check_range(spec, x * declared[1], suggest_units=False)
    return None if msg is None else f"{x:g} {declared[0]} = {msg}"


def _check_range(spec: ClinicalColumn, x: float, suggest_units: bool = True) -> str | None:
    """A message when ``x`` is impossible in the paper's unit (the validator's rule,
    :func:`~liver_mm.cohort.validate_labs.judge_value`); borderline values are accepted."""
    verdict = judge_value(spec, x, suggest_units)
    if verdict is None or verdict.severity != "error":
        return None
    if verdict.unit:
        return verdict.message + f": send {spec.name} in {spec.unit}, or declare units: " \
            f"{{\"{spec.name}\": \"{verdict.unit}\"}}"
    return verdict.message


def decode_image(case_id: str, row: Mapping[str, object], image_root: Path | None = None
                 ) -> tuple[np.ndarray | None, Problem | None]:
    """The frame (H, W) uint8 of a request row from ``image_b64``, or from ``image_path`` when it lies
    under ``image_root`` (:mod:`liver_mm.serve.image_root`; None = inline images only)."""
    b64 = row.get("image_b64")
    path = row.get("image_path")
    has_b64, has_path = not _missing(b64), not _missing(path)
    if has_b64 == has_path:
        what = "both given" if has_b64 else "neither given"
        return None, Problem(case_id, "image_b64", f"give exactly one of image_b64 / image_path ({what})")
    if has_path:
        return _read_path(case_id, str(path), image_root)
    try:
        text = str(b64).strip()
        if text.startswith("data:") and "," in text:  # a data URL: data:image/png;base64,....
            text = text.split(",", 1)[1]
        return read_gray(base64.b64decode(text, validate=True)), None
    except binascii.Error as exc:
        return None, Problem(case_id, "image_b64", f"not valid base64 ({exc})")
    except (ImageReadError, DicomReadError, Image.DecompressionBombError) as exc:
        return None, Problem(case_id, "image_b64", _read_problem(exc, "<bytes>", "the decoded bytes"))


def _read_path(case_id: str, path: str, image_root: Path | None) -> tuple[np.ndarray | None, Problem | None]:
    """The frame at a request's ``image_path``; a problem names the file relative to the image root
    (never the server's absolute path)."""
    try:
        real = resolve_request_path(path, image_root)
    except ImagePathRefused as exc:
        return None, Problem(case_id, "image_path", str(exc))
    assert image_root is not None  # resolve_request_path refuses a path without a root
    try:
        return read_gray(str(real)), None
    except (ImageReadError, DicomReadError, Image.DecompressionBombError, OSError) as exc:
        name = relative_name(real, image_root)
        text = _read_problem(exc, str(real), name)
        if isinstance(exc, OSError) and not isinstance(exc, ImageReadError | DicomReadError):
            text = f"{name}: cannot be read ({exc.strerror or type(exc).__name__})"
        for root in {str(image_root), os.path.realpath(image_root)}:
            text = text.replace(root, "<image root>")
        return None, Problem(case_id, "image_path", text)


def _read_problem(exc: Exception, name: str, shown: str) -> str:
    """The message of an image that cannot be decoded, with ``name`` shown as ``shown``."""
    if isinstance(exc, Image.DecompressionBombError) or getattr(exc, "reason", None) == "too_large":
        return _too_large(str(exc))
    return str(exc).replace(name, shown)


def _too_large(detail: str) -> str:
    """The answer to an image over Pillow's pixel limit (its count when ``detail`` gives it)."""
    found = re.search(r"([\d,]+) pixels", detail)
    count = f" ({found[1]} pixels)" if found else ""
    return (f"image too large{count}: the limit is {Image.MAX_IMAGE_PIXELS or 0:,} pixels per image; "
            "crop or downscale it")


NO_BOX = ("no lesion box: send bbox_x0..bbox_y1, or whole_frame: true to score the whole frame "
          "(the model was trained on crops)")


def parse_box(case_id: str, row: Mapping[str, object], shape: tuple[int, int] | None, whole_frame: bool = False
              ) -> tuple[tuple[int, int, int, int] | None, Problem | None]:
    """The bbox of a request row, checked against ``shape`` (H, W); None (the whole frame) only when
    the row has no box and says ``whole_frame`` (a row with neither is a problem: :data:`NO_BOX`)."""
    values = [row.get(c) for c in BBOX_COLUMNS]
    absent = [c for c, v in zip(BBOX_COLUMNS, values, strict=True) if _missing(v)]
    if len(absent) == 4:
        return None, (None if whole_frame else Problem(case_id, "bbox_x0", NO_BOX))
    if whole_frame:
        return None, Problem(case_id, WHOLE_FRAME_FIELD, "whole_frame is true but a box is given: send the "
                             "box, or whole_frame: true without one")
    if absent:
        return None, Problem(case_id, absent[0], f"incomplete box: {', '.join(absent)} missing "
                             "(give all four bbox fields)")
    box = []
    for col, v in zip(BBOX_COLUMNS, values, strict=True):
        if is_bool(v):
            return None, Problem(case_id, col, f"{json_bool(v)} is a JSON boolean, not a pixel coordinate")
        try:
            x = float(v)  # type: ignore[arg-type]
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
                  image_root: Path | None = None, variables: Mapping[str, ClinicalColumn | None] | None = None
                  ) -> ParsedCases:
    """Check every row of a request frame; raises :class:`RequestError` listing all problems.
    ``image_root``: the folder ``image_path`` may point into (None: inline ``image_b64`` only).
    ``variables``: the model's own dictionary entries (its preprocessor's), else the shipped ones."""
    variables = variables or {}
    if len(df) == 0:
        raise RequestError([Problem("(none)", "dataframe_records", "the request holds no case: send one "
                                    "record per case with the fields "
                                    f"{', '.join(expected_fields(features, use_image))}")])
    problems: list[Problem] = []
    records = df.to_dict("records")  # per-column types kept (a row Series would mix them)
    ids = [str(r["case_id"]) if not _missing(r.get("case_id")) else f"#{i}" for i, r in enumerate(records)]
    frames: list[np.ndarray] = []
    boxes: list[tuple[int, int, int, int] | None] = []
    flags: list[bool] = []
    labs: dict[str, list[object]] = {name: [] for name in features}
    for cid, row in zip(ids, records, strict=True):
        units, bad_units = parse_units(row.get(UNITS_FIELD), features, variables)
        problems += [Problem(cid, f, m) for f, m in bad_units]
        for name in features:
            value = row.get(name)
            if (msg := check_lab(name, value, units.get(name), variables.get(name))) is not None:
                problems.append(Problem(cid, name, msg))
            elif name in units:
                value = float(value) * units[name][1]  # type: ignore[arg-type]
            labs[name].append(value)
        whole, bad_flag = parse_whole_frame(row.get(WHOLE_FRAME_FIELD))
        flags.append(whole)
        if bad_flag is not None:
            problems.append(Problem(cid, WHOLE_FRAME_FIELD, bad_flag))
        if not use_image:
            continue
        frame, bad = decode_image(cid, row, image_root)
        box, bad_box = parse_box(cid, row, None if frame is None else frame.shape, whole)
        problems += [p for p in (bad, bad_box) if p is not None]
        frames.append(frame)  # type: ignore[arg-type]  # only used when there is no problem
        boxes.append(box)
    if problems:
        raise RequestError(problems)
    table = pd.DataFrame({name: _lab_column(labs[name], variables.get(name) or default_dictionary().get(name))
                          for name in features}, index=range(len(df)))
    return ParsedCases(ids, frames, boxes, table, flags)


def _lab_column(values: list[object], spec: ClinicalColumn | None) -> pd.Series:
    if spec is not None and spec.kind == "multi":
        return pd.Series(values, dtype=object)
    if spec is not None and spec.kind != "continuous":
        return pd.Series(values, dtype=object).map(lambda v: spec.category(str(v)) if not _missing(v) else v)
    return pd.Series(pd.to_numeric(pd.Series(values, dtype=object)).to_numpy(np.float64))
