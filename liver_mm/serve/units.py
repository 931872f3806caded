"""Units of a scoring request: the model's canonical unit per lab, and a request's declared ``units``.

A number alone cannot say its unit (90 platelets are plausible in x10^4/uL and in x10^9/L), so a
served model states the unit of each lab it needs (:func:`units_document`, the bundle's
``units.json``, the pyfunc's metadata and input example). A request's values are in those units
unless a record carries ``units`` (``{"platelets": "10^9/L"}``): each declared unit is converted
with the model's own dictionary entries (a saved state older than the dictionary: the shipped data
dictionary's; what ``--unit`` uses for a manifest); a unit it does not know is refused, never guessed.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liver_mm.dictionary import Variable, default_dictionary

UNITS_FIELD = "units"
WHOLE_FRAME_FIELD = "whole_frame"


def is_bool(value: object) -> bool:
    """True for a JSON boolean (Python or numpy bool): never a number here, though ``bool`` is an ``int``."""
    return isinstance(value, bool | np.bool_)


def json_bool(value: object) -> str:
    """``true`` / ``false``: a boolean as the request wrote it."""
    return "true" if bool(value) else "false"


def _absent(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


Variables = Mapping[str, Variable | None]


def _specs(features: Sequence[str], variables: Variables | None) -> dict[str, Variable]:
    """The model's variables: its own dictionary entries (``variables``), else the shipped ones."""
    own = variables or {}
    return {f: v for f in features if (v := own.get(f) or default_dictionary().get(f)) is not None}


def unit_labs(features: Sequence[str], variables: Variables | None = None) -> list[str]:
    """The model's features that have a unit (the continuous labs, age included)."""
    specs = _specs(features, variables)
    return [f for f in features if f in specs and specs[f].kind == "continuous"]


def units_document(features: Sequence[str], variables: Variables | None = None) -> dict[str, dict[str, object]]:
    """Per lab of ``features``: its ``unit`` (what a request's value means without ``units``), what it
    is (``description``) and the units a request may declare instead (``accepted``)."""
    specs = _specs(features, variables)
    return {f: {"unit": specs[f].unit, "description": specs[f].description,
                "accepted": list(specs[f].accepted_units)} for f in unit_labs(features, variables)}


def variables_document(features: Sequence[str], variables: Variables | None = None) -> dict[str, dict[str, object]]:
    """Per clinical field of the model: its ``kind``, and its ``unit`` or its allowed ``categories`` (a
    ``multi`` field also its ``separator``): what the served signature's metadata lists."""
    out: dict[str, dict[str, object]] = {}
    for f, v in _specs(features, variables).items():
        entry: dict[str, object] = {"kind": v.kind, "description": v.description}
        if v.kind == "continuous":
            entry["unit"] = v.unit
        else:
            entry["categories"] = list(v.categories)
            if v.separator:
                entry["separator"] = v.separator
        out[f] = entry
    return out


def canonical_units(features: Sequence[str], variables: Variables | None = None) -> dict[str, str]:
    """``{lab: unit}`` of the model's labs (the signature's units)."""
    specs = _specs(features, variables)
    return {f: specs[f].unit for f in unit_labs(features, variables)}


def parse_units(raw: object, features: Sequence[str], variables: Variables | None = None
                ) -> tuple[dict[str, tuple[str, float]], list[tuple[str, str]]]:
    """A record's ``units``: ``({lab: (declared unit, factor into the canonical unit)}, problems)``.

    ``raw``: absent (canonical units), a JSON object ``{lab: unit}`` or its JSON text. Problems are
    ``(field, message)``: ``units`` when it is not an object, ``units.<lab>`` for a lab the model does
    not take or a unit the unit rules do not know (the message lists the accepted units).
    """
    if _absent(raw):
        return {}, []
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            raw = json.loads(raw)
    if not isinstance(raw, dict):
        example = {"platelets": "10^9/L"}
        return {}, [(UNITS_FIELD, f"{raw!r} is not an object of lab units, e.g. {json.dumps(example)}")]
    labs = unit_labs(features, variables)
    specs = _specs(features, variables)
    out: dict[str, tuple[str, float]] = {}
    problems: list[tuple[str, str]] = []
    for lab, unit in raw.items():
        field = f"{UNITS_FIELD}.{lab}"
        if lab not in labs:
            problems.append((field, f"this model takes no lab {lab!r} with a unit; units may name "
                             f"{', '.join(labs) or 'nothing (the model needs no lab)'}"))
        elif not isinstance(unit, str):
            problems.append((field, f"{unit!r} is not a unit: send text, one of "
                             f"{', '.join(specs[lab].accepted_units)}"))
        else:
            try:
                out[lab] = (unit, specs[lab].factor(unit))
            except KeyError:
                problems.append((field, f"unit {unit!r} is not accepted for {lab}; send one of "
                                 f"{', '.join(specs[lab].accepted_units)} (or convert the value to "
                                 f"{specs[lab].unit} and leave the unit out)"))
    return out, problems


def parse_whole_frame(raw: object) -> tuple[bool, str | None]:
    """A record's ``whole_frame``: (flag, problem). Absent is False; only JSON true/false are accepted."""
    if _absent(raw):
        return False, None
    if is_bool(raw):
        return bool(raw), None
    return False, f"{raw!r} is not true or false"
