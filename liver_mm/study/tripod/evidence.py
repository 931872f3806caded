"""What a study knows when it writes report.md, gathered for the TRIPOD+AI section (pandas only, no I/O).

:class:`Evidence` holds the provenance dict (seed, hashes, commit, versions, config summary, child runs,
``model_settings`` per arm), the cohort frame, the train / dev / test part of every case in every analysis
(the single split, or each (repeat, fold) of a cross-validation) and the report's own formatted numbers.
The helpers below derive counts from it; :mod:`liver_mm.study.tripod.answers` writes the items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liver_mm.dictionary import active
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.stats import encode_labels

PARTS = ("train", "dev", "test")
ANSWERED, PARTLY, AUTHORS = "answered here", "partly answered here", "for the authors to write"
Answer = tuple[str, str, str]  # status, text, evidence (file names or report.md sections)
REPORT_PROVENANCE = "report.md: How this was produced"
MODEL_SETTINGS = "report.md: Model settings of each arm"


@dataclass(frozen=True)
class Evidence:
    """The study's records. ``design``: ``split`` (one train/dev/test split) or ``cv``.

    cohort: one row per nodule (case_id, patient_id, label, clinical columns) or None; parts: indexed by
    case_id (text), one column per analysis (``split``, or ``r0f1`` for repeat 0, fold 1) holding train / dev /
    test; discrimination / calibration / thresholds: arm -> the report's text ({} where the report has none);
    files: names in the study folder; level: the CI level in percent.
    """

    design: str
    provenance: Mapping[str, object]
    arms: tuple[str, ...]
    reference: str
    synthetic: bool
    command: str
    cohort: pd.DataFrame | None
    parts: pd.DataFrame | None
    discrimination: Mapping[str, str]
    calibration: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, str] = field(default_factory=dict)
    files: frozenset[str] = frozenset()
    level: int = 95
    performance_note: str = ""

    def config(self, *keys: str) -> object:
        """A value of the provenance's config summary (``config("split", "fractions")``), None when absent."""
        node: object = self.provenance.get("config")
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node

    def settings(self, arm: str) -> Mapping[str, object]:
        """The arm's model settings from the provenance ({} when not recorded)."""
        all_settings = self.provenance.get("model_settings")
        mine = all_settings.get(arm) if isinstance(all_settings, Mapping) else None
        return mine if isinstance(mine, Mapping) else {}

    def features(self, arm: str) -> list[str] | None:
        """The arm's clinical features in input order, None when the provenance does not record them."""
        value = self.settings(arm).get("features")
        return None if value is None else [str(f) for f in value]  # type: ignore[union-attr]

    def image(self, arm: str) -> bool | None:
        """Whether the arm sees the image, None when not recorded."""
        value = self.settings(arm).get("image")
        return None if value is None else bool(value)

    def model(self, arm: str) -> Mapping[str, object]:
        """The arm's resolved ``model`` node ({} when not recorded)."""
        value = self.settings(arm).get("model")
        return value if isinstance(value, Mapping) else {}

    def all_features(self) -> list[str]:
        """Every clinical feature some arm uses, in first-use order ([] when none is recorded)."""
        return list(dict.fromkeys(f for a in self.arms for f in (self.features(a) or [])))

    def y(self) -> pd.Series:
        """Labels 0/1 (malignant = 1) indexed by case_id (text); needs a cohort."""
        assert self.cohort is not None
        return pd.Series(encode_labels(self.cohort["label"].to_numpy(dtype=object)),
                         index=self.cohort["case_id"].astype(str).to_numpy())

    def pointer(self, *names: str) -> str:
        """The names that exist in the study folder, joined (``report.md`` sections always exist)."""
        return ", ".join(n for n in names if n.startswith("report.md") or n in self.files)


def part_counts(ev: Evidence) -> pd.DataFrame:
    """analysis, part, n, malignant: nodules and events (malignant) in each part of each analysis."""
    assert ev.parts is not None
    y = ev.y()
    rows = []
    for analysis in ev.parts.columns:
        part = ev.parts[analysis]
        for name in PARTS:
            ids = part.index[part == name]
            rows.append({"analysis": analysis, "part": name, "n": len(ids), "malignant": int(y.loc[ids].sum())})
    return pd.DataFrame(rows, columns=["analysis", "part", "n", "malignant"])


def n_inputs(cohort: pd.DataFrame, train: np.ndarray, features: list[str]) -> int | None:
    """The number of clinical input columns a model on ``features`` gets when fitted on the ``train`` rows
    (N,) bool: the features plus missing-value and censored indicators
    (:class:`~liver_mm.features.tabular.TabularPreprocessor`); None when it cannot be fitted."""
    try:
        return TabularPreprocessor(features).fit(cohort[train]).n_features_out
    except ValueError:
        return None


def epp(ev: Evidence, arm: str) -> str:
    """Events (malignant training cases) per input parameter of one arm, as text: per analysis, or the range
    over the folds of a cross-validation; ``not defined`` for image arms and ``not recorded`` without features."""
    features, image, kind = ev.features(arm), ev.image(arm), ev.model(arm).get("kind")
    if features is None or image is None or ev.cohort is None or ev.parts is None:
        return f"{arm}: not recorded (the provenance lacks the arm's inputs)"
    if image:
        extra = f" and {len(features)} clinical feature(s)" if features else ""
        return f"{arm}: not defined (the image enters through a CNN{extra})"
    ids = ev.cohort["case_id"].astype(str).to_numpy()
    y = ev.y().to_numpy()
    events, inputs = [], []
    for analysis in ev.parts.columns:
        train = (ev.parts[analysis].reindex(ids) == "train").to_numpy()
        events.append(int(y[train].sum()))
        inputs.append(1 if kind == "score" else n_inputs(ev.cohort, train, features))
    if any(p is None for p in inputs):
        return f"{arm}: not computed (the lab preprocessing cannot be fitted on the training rows)"
    ratios = [e / p for e, p in zip(events, inputs, strict=True)]  # type: ignore[operator]
    what = (f"fitted predictor (log {ev.model(arm).get('score')}, a published formula)" if kind == "score"
            else f"input parameter ({_span(inputs)} inputs: {len(features)} features and their indicators)")
    return f"{arm}: {_span(ratios, 1)} malignant training cases per {what}; events {_span(events)}"


def _span(values: list, digits: int = 0) -> str:
    lo, hi = min(values), max(values)
    fmt = (lambda v: f"{v:.{digits}f}") if digits else (lambda v: str(int(v)))
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def inputs_text(ev: Evidence, arm: str) -> str:
    """What the arm sees: ``image + age, sex`` (``inputs not recorded`` without model settings)."""
    features, image = ev.features(arm), ev.image(arm)
    if features is None or image is None:
        return "inputs not recorded"
    return " + ".join((["image"] if image else []) + ([", ".join(features)] if features else [])) or "none"


def sub(node: object, key: str) -> Mapping[str, object]:
    """``node[key]`` when both are mappings, else {}."""
    value = node.get(key) if isinstance(node, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def model_type(ev: Evidence, arm: str) -> str:
    """The arm's kind of model in words, from its recorded ``model`` node."""
    model = ev.model(arm)
    kind = model.get("kind")
    if kind == "lightning":
        net = sub(model, "net")
        parts = [f"CNN {sub(net, 'image').get('name')} on the crop"] if ev.image(arm) else []
        if ev.features(arm):
            parts.append(f"MLP {sub(net, 'tabular').get('hidden')} on the labs")
        fusion = ev.settings(arm).get("fusion")
        return "neural network: " + " + ".join(parts) + (f", {fusion} fusion" if fusion else "")
    if kind == "sklearn":
        return f"scikit-learn {str(sub(model, 'estimator').get('_target_', '?')).rsplit('.', 1)[-1]}"
    if kind == "score":
        return f"{model.get('description', model.get('score'))}, logistic calibration on log score (training rows)"
    return f"model kind {kind}" if kind else "model not recorded"


def missing_text(ev: Evidence) -> str:
    """Missing values per clinical feature (those the arms use, else every clinical column) in the cohort."""
    assert ev.cohort is not None
    cols = ev.all_features() or [c for c in active().variables if c in ev.cohort.columns]
    counts = ", ".join(f"{c} {int(ev.cohort[c].isna().sum())}" if c in ev.cohort.columns else f"{c} (no column)"
                       for c in cols)
    return f"missing values among the {len(ev.cohort)} nodules: {counts or 'no clinical column'}"
