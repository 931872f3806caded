"""The data dictionary's model: what a clinical variable is, and the stepwise study's steps.

A :class:`Dictionary` is read from one YAML file (:mod:`liver_mm.dictionary.load`); the shipped default
(``liver.yaml``, the paper's liver labs and models m1..m5) is :func:`liver_mm.dictionary.default_dictionary`.
Kinds:

* ``continuous``: a number in ``unit``; ``plausible`` (values outside are impossible: errors), ``typical``
  (outside: warnings), ``conversions`` (declared unit -> factor into ``unit``), ``transform: log1p``,
  ``censorable`` (``<5`` / ``>1000`` cells may be read as their limit with ``censored=limit``),
  ``patient_drift`` (the most a patient's rows may differ, in ``unit``: more is an error, e.g. age 2 years),
  ``top_code`` (a value registries record for every higher one, e.g. age 90: a warning when reached and
  never exceeded);
* ``binary``: two ``categories``, coded 0 / 1 in the order written (the first is the reference);
* ``categorical``: ``categories``, one-hot with the first as the reference level;
* ``ordinal``: ``categories`` in their order, coded 0, 1, 2, ...;
* ``multi``: several ``categories`` in one cell joined by ``separator`` (multi-hot).

``synonyms`` map other cell texts to a category (``female: F``); a cell is compared stripped and
case-insensitively. ``aliases`` are other column names of the variable; ``constant_per_patient``: the
variable must agree on the rows of one patient. ``missing``: cell texts meaning missing, for every variable.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["continuous", "binary", "categorical", "ordinal", "multi"]
KINDS: tuple[str, ...] = ("continuous", "binary", "categorical", "ordinal", "multi")
CATEGORY_KINDS = frozenset({"binary", "categorical", "ordinal", "multi"})
TRANSFORMS = ("none", "log1p")
_INF = math.inf


def norm_unit(unit: str) -> str:
    """A unit compared loosely: case, spaces, ``µ``/``u``, ``×``/``x``, ``10e``/``10^``, IU/U, year(s)."""
    u = unit.strip().lower().replace("µ", "u").replace("μ", "u").replace("×", "x").replace("*", "x")
    u = re.sub(r"\s+", "", u).replace("10e", "10^").removeprefix("x")
    return {"iu/l": "u/l", "year": "years", "y": "years", "month": "months"}.get(u, u)


def close_match(value: str, categories: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the declared category closest to ``value`` (any case), or ``""``."""
    lower = {c.lower(): c for c in categories}
    hit = difflib.get_close_matches(value.strip().lower(), list(lower), n=1, cutoff=0.75)
    return f" (did you mean {lower[hit[0]]!r}?)" if hit else ""


@dataclass(frozen=True)
class Variable:
    """One clinical variable of the dictionary (see the module docstring for the keys)."""

    name: str
    description: str = ""
    unit: str = ""
    kind: Kind = "continuous"
    plausible: tuple[float, float] = (-_INF, _INF)
    typical: tuple[float, float] = (-_INF, _INF)
    conversions: Mapping[str, float] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    separator: str | None = None
    synonyms: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    transform: str = "none"
    censorable: bool = False
    constant_per_patient: bool = False
    patient_drift: float | None = None
    top_code: float | None = None

    def factor(self, unit: str) -> float:
        """Multiplier from ``unit`` to :attr:`unit`; raises ``KeyError`` if not accepted."""
        table = {norm_unit(u): f for u, f in {self.unit: 1.0, **self.conversions}.items()}
        return table[norm_unit(unit)]

    @property
    def accepted_units(self) -> tuple[str, ...]:
        return (self.unit, *self.conversions)

    @property
    def numeric(self) -> bool:
        """True for a continuous variable (a number in a unit)."""
        return self.kind == "continuous"

    def category(self, cell: object) -> object:
        """The declared category a text cell means (stripped, any case, or a synonym); other cells unchanged
        but stripped (for the validator to name)."""
        if not isinstance(cell, str):
            return cell
        text = cell.strip()
        lookup = {c.lower(): c for c in self.categories} | {k.lower(): v for k, v in self.synonyms.items()}
        return lookup.get(text.lower(), text)

    def split(self, cell: object) -> list[str]:
        """A ``multi`` cell's values (stripped, each mapped by :meth:`category`); [] for a missing cell."""
        if not isinstance(cell, str):
            return []
        parts = cell.split(self.separator) if self.separator else [cell]
        return [str(self.category(p)) for p in parts if p.strip()]

    def canonical(self) -> dict[str, object]:
        """JSON-safe, key-sorted content (infinite bounds as null): what the content hash reads."""
        def bound(pair: tuple[float, float]) -> list[float | None]:
            return [None if math.isinf(x) else float(x) for x in pair]

        return {"name": self.name, "description": self.description, "unit": self.unit, "kind": self.kind,
                "plausible": bound(self.plausible), "typical": bound(self.typical),
                "conversions": {k: float(v) for k, v in sorted(self.conversions.items())},
                "categories": list(self.categories), "separator": self.separator,
                "synonyms": dict(sorted(self.synonyms.items())), "aliases": list(self.aliases),
                "transform": self.transform, "censorable": self.censorable,
                "constant_per_patient": self.constant_per_patient,
                # (only when set: the content of dictionaries without them, and their hashes, stay)
                **({"patient_drift": float(self.patient_drift)} if self.patient_drift is not None else {}),
                **({"top_code": float(self.top_code)} if self.top_code is not None else {})}


@dataclass(frozen=True)
class Step:
    """One step of the stepwise study: its ``name`` (the arm), whether the image is seen, the variables added."""

    name: str
    image: bool = True
    add: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Dictionary:
    """The variables (in the order written), the cumulative steps, the missing tokens, and the file read."""

    variables: Mapping[str, Variable]
    steps: tuple[Step, ...] = ()
    missing: tuple[str, ...] = ()
    source: str = "<dictionary>"

    def __getitem__(self, name: str) -> Variable:
        return self.variables[name]

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def get(self, name: str) -> Variable | None:
        return self.variables.get(name)

    def of_kind(self, *kinds: str) -> tuple[str, ...]:
        """Names of the variables of these kinds, in dictionary order."""
        return tuple(n for n, v in self.variables.items() if v.kind in kinds)

    @property
    def continuous(self) -> tuple[str, ...]:
        return self.of_kind("continuous")

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"{self.source}: no step {name!r} (steps: {', '.join(self.step_names) or 'none'})")

    def features(self, step: str) -> tuple[str, ...]:
        """The variables a step's model uses: every ``add`` up to and including ``step``, in order."""
        out: list[str] = []
        for s in self.steps:
            out += [v for v in s.add if v not in out]
            if s.name == step:
                return tuple(out)
        raise KeyError(f"{self.source}: no step {step!r} (steps: {', '.join(self.step_names) or 'none'})")

    def steps_needing(self, variable: str) -> tuple[str, ...]:
        """The steps whose models use ``variable`` (the step adding it and every later one)."""
        return tuple(s.name for s in self.steps if variable in self.features(s.name))

    def last_features(self) -> tuple[str, ...]:
        """The last step's variables (the controls' inputs); () without steps."""
        return self.features(self.steps[-1].name) if self.steps else ()

    def column_of(self, header: str) -> str | None:
        """The variable a table header names (its name or an alias, case-insensitively), or None."""
        h = header.strip().lower()
        for v in self.variables.values():
            if h == v.name.lower() or h in (a.lower() for a in v.aliases):
                return v.name
        return None

    def canonical(self) -> dict[str, object]:
        """The dictionary's content, JSON-safe and in a fixed form (no file name, no comments)."""
        return {"missing": list(self.missing), "variables": [v.canonical() for v in self.variables.values()],
                "steps": [{"name": s.name, "image": s.image, "add": list(s.add), "description": s.description}
                          for s in self.steps]}

    def content_hash(self) -> str:
        """sha256 of :meth:`canonical` as sorted-key JSON: unchanged by comments, spacing, key order or the
        file's name; changed by any variable, category, range, unit, step or missing token."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()


def variable_from_canonical(d: Mapping[str, object]) -> Variable:
    """The :class:`Variable` of :meth:`Variable.canonical` output (e.g. a saved model's state)."""
    def bound(pair: object) -> tuple[float, float]:
        lo, hi = pair  # type: ignore[misc]
        return (-_INF if lo is None else float(lo), _INF if hi is None else float(hi))

    return Variable(
        name=str(d["name"]), description=str(d.get("description", "")), unit=str(d.get("unit", "")),
        kind=d.get("kind", "continuous"),  # type: ignore[arg-type]
        plausible=bound(d.get("plausible", [None, None])), typical=bound(d.get("typical", [None, None])),
        conversions={str(k): float(v) for k, v in dict(d.get("conversions", {})).items()},  # type: ignore[arg-type]
        categories=tuple(str(c) for c in d.get("categories", [])),  # type: ignore[union-attr]
        separator=d.get("separator"),  # type: ignore[arg-type]
        synonyms={str(k): str(v) for k, v in dict(d.get("synonyms", {})).items()},  # type: ignore[arg-type]
        aliases=tuple(str(a) for a in d.get("aliases", [])),  # type: ignore[union-attr]
        transform=str(d.get("transform", "none")), censorable=bool(d.get("censorable", False)),
        constant_per_patient=bool(d.get("constant_per_patient", False)),
        patient_drift=None if d.get("patient_drift") is None else float(d["patient_drift"]),  # type: ignore[arg-type]
        top_code=None if d.get("top_code") is None else float(d["top_code"]))  # type: ignore[arg-type]
