"""Reading a data dictionary from YAML, every key checked: an error names the file and the key.

YAML 1.2 booleans only (``true`` / ``false``): a category written ``yes`` / ``no`` / ``on`` stays text, as
does any category written as a number (``"2"`` and ``2`` are both the category ``2``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from liver_mm.dictionary.model import KINDS, TRANSFORMS, Dictionary, Step, Variable

TOP_KEYS = ("missing", "variables", "steps")
COMMON_KEYS = ("kind", "description", "aliases", "constant_per_patient")
KIND_KEYS = {
    "continuous": ("unit", "plausible", "typical", "conversions", "transform", "censorable", "patient_drift",
                   "top_code"),
    "binary": ("categories", "synonyms"),
    "categorical": ("categories", "synonyms"),
    "ordinal": ("categories", "synonyms"),
    "multi": ("categories", "synonyms", "separator"),
}
STEP_KEYS = ("name", "image", "add", "description")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DictionaryError(ValueError):
    """A data dictionary that cannot be used; the message names the file and the key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: only true / false (any case)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def _hint(word: str, options: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> DictionaryError:
        return DictionaryError(f"{self.source}: {key}: {message}")

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        return value

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {value!r}")
        out = []
        for i, item in enumerate(value):
            if item is None or isinstance(item, bool | dict | list):
                raise self.fail(f"{key}[{i}]", f"expected text, got {item!r}")
            out.append(str(item).strip())
        return tuple(out)

    def number(self, value: Any, key: str) -> float:
        if isinstance(value, bool):
            raise self.fail(key, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected a number, got {value!r}") from None

    def pair(self, value: Any, key: str) -> tuple[float, float]:
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(key, f"expected [low, high], got {value!r}")
        lo, hi = self.number(value[0], f"{key}[0]"), self.number(value[1], f"{key}[1]")
        if lo > hi:
            raise self.fail(key, f"low {lo:g} is above high {hi:g}")
        return lo, hi

    def flag(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def variable(self, name: str, spec: Any) -> Variable:
        key = f"variables.{name}"
        if not _NAME.match(name):
            raise self.fail(key, "a variable name is letters, digits and _ (not starting with a digit); "
                            "put the table's header in aliases: [...]")
        spec = self.mapping(spec, key)
        kind = spec.get("kind")
        if kind not in KINDS:
            raise self.fail(f"{key}.kind", f"{kind!r} is not a kind; use one of {', '.join(KINDS)}"
                            + _hint(str(kind), KINDS))
        allowed = (*COMMON_KEYS, *KIND_KEYS[kind])
        for k in spec:
            if k not in allowed:
                raise self.fail(f"{key}.{k}", f"not a key of a {kind} variable; allowed: {', '.join(allowed)}"
                                + _hint(str(k), allowed))
        out: dict[str, Any] = {"name": name, "kind": kind, "description": str(spec.get("description", "") or "")}
        out["aliases"] = self.strings(spec.get("aliases", []), f"{key}.aliases")
        out["constant_per_patient"] = self.flag(spec.get("constant_per_patient", False),
                                                f"{key}.constant_per_patient")
        if kind == "continuous":
            out["unit"] = str(spec.get("unit", "") or "")
            for k in ("plausible", "typical"):
                if k in spec:
                    out[k] = self.pair(spec[k], f"{key}.{k}")
            conv = self.mapping(spec.get("conversions", {}), f"{key}.conversions")
            out["conversions"] = {str(u): self.number(f, f"{key}.conversions.{u}") for u, f in conv.items()}
            bad = [u for u, f in out["conversions"].items() if f <= 0]
            if bad:
                raise self.fail(f"{key}.conversions.{bad[0]}", "a conversion factor must be positive")
            transform = str(spec.get("transform", "none"))
            if transform not in TRANSFORMS:
                raise self.fail(f"{key}.transform", f"{transform!r} is not a transform; use one of "
                                f"{', '.join(TRANSFORMS)}")
            out["transform"] = transform
            out["censorable"] = self.flag(spec.get("censorable", False), f"{key}.censorable")
            for k in ("patient_drift", "top_code"):
                if k in spec:
                    out[k] = self.number(spec[k], f"{key}.{k}")
            if out.get("patient_drift") is not None and out["patient_drift"] < 0:
                raise self.fail(f"{key}.patient_drift", "the largest difference allowed is >= 0")
            return Variable(**out)
        cats = self.strings(spec.get("categories"), f"{key}.categories") if "categories" in spec else ()
        if len(cats) < 2 or (kind == "binary" and len(cats) != 2):
            raise self.fail(f"{key}.categories", f"a {kind} variable needs "
                            + ("exactly two categories" if kind == "binary" else "at least two categories"))
        seen: dict[str, str] = {}
        for c in cats:
            if c.lower() in seen:
                raise self.fail(f"{key}.categories", f"{c!r} is listed twice (categories compare in any case)")
            seen[c.lower()] = c
        out["categories"] = cats
        syn = self.mapping(spec.get("synonyms", {}), f"{key}.synonyms")
        out["synonyms"] = {str(k).strip(): str(v).strip() for k, v in syn.items()}
        for k, v in out["synonyms"].items():
            if v not in cats:
                raise self.fail(f"{key}.synonyms.{k}", f"{v!r} is not one of the categories {list(cats)}")
        if kind == "multi":
            sep = spec.get("separator")
            if not isinstance(sep, str) or not sep:
                raise self.fail(f"{key}.separator", "a multi variable needs the text joining its values, "
                                "e.g. separator: \"&\"")
            out["separator"] = sep
        return Variable(**out)

    def steps(self, value: Any, variables: Mapping[str, Variable]) -> tuple[Step, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail("steps", f"expected a list of steps, got {value!r}")
        out: list[Step] = []
        used: dict[str, str] = {}
        for i, raw in enumerate(value):
            key = f"steps[{i}]"
            raw = self.mapping(raw, key)
            for k in raw:
                if k not in STEP_KEYS:
                    raise self.fail(f"{key}.{k}", f"not a key of a step; allowed: {', '.join(STEP_KEYS)}"
                                    + _hint(str(k), STEP_KEYS))
            name = str(raw.get("name", "")).strip()
            if not _NAME.match(name):
                raise self.fail(f"{key}.name", f"{name!r}: a step needs a name of letters, digits and _")
            if name in (s.name for s in out):
                raise self.fail(f"{key}.name", f"step {name!r} is listed twice")
            add = self.strings(raw.get("add", []) or [], f"{key}.add")
            for v in add:
                if v not in variables:
                    raise self.fail(f"{key}.add", f"{v!r} is not a declared variable"
                                    + _hint(v, list(variables)) + f"; declared: {', '.join(variables)}")
                if v in used:
                    raise self.fail(f"{key}.add", f"{v!r} was already added by step {used[v]!r} (steps are "
                                    "cumulative)")
                used[v] = name
            out.append(Step(name, self.flag(raw.get("image", True), f"{key}.image"), add,
                            str(raw.get("description", "") or "")))
        return tuple(out)


def parse_dictionary(data: Any, source: str = "<dictionary>") -> Dictionary:
    """A :class:`Dictionary` from a loaded YAML mapping; raises :class:`DictionaryError` naming ``source``
    and the key."""
    r = _Reader(source)
    data = r.mapping(data, "(top level)")
    if data.get("draft") is True:
        raise r.fail("draft", "this is a draft written by `liver-mm dictionary draft`: review every entry, then "
                     "delete the line `draft: true` to use it")
    for k in data:
        if k not in TOP_KEYS:
            raise r.fail(str(k), f"not a key of a data dictionary; allowed: {', '.join(TOP_KEYS)}"
                         + _hint(str(k), TOP_KEYS))
    variables_raw = r.mapping(data.get("variables"), "variables")
    if not variables_raw:
        raise r.fail("variables", "declare at least one variable")
    variables = {str(n): r.variable(str(n), spec) for n, spec in variables_raw.items()}
    headers: dict[str, str] = {}
    for v in variables.values():
        for h in (v.name, *v.aliases):
            if h.lower() in headers and headers[h.lower()] != v.name:
                raise r.fail(f"variables.{v.name}.aliases", f"{h!r} also names variable {headers[h.lower()]!r}")
            headers[h.lower()] = v.name
    missing = r.strings(data.get("missing", []) or [], "missing")
    return Dictionary(variables, r.steps(data.get("steps"), variables), missing, source)


def load_dictionary(path: str | Path) -> Dictionary:
    """Read and check the data dictionary at ``path`` (YAML); raises :class:`DictionaryError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DictionaryError(f"{path}: cannot read the data dictionary ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise DictionaryError(f"{path}: not valid YAML ({exc})") from None
    return parse_dictionary(data, str(path))
