"""Comparing several models' AUCs on the same cases: DeLong tests with Holm adjustment (by family)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from liver_mm.stats._inputs import check_binary, check_scores
from liver_mm.stats.delong import DelongTest, auc_ci, delong_test

log = logging.getLogger(__name__)

#: the family of every comparison when no families are given
ALL_FAMILY = "all"


@dataclass(frozen=True, kw_only=True)
class ModelComparison(DelongTest):
    """One paired DeLong test ``a`` vs ``b`` (diff = auc_a - auc_b) with its Holm-adjusted p
    (adjusted within ``family``, see :func:`comparison_families`)."""

    a: str
    b: str
    p_holm: float
    family: str = ALL_FAMILY


def holm_adjust(p_values: object) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, same order as the input (R's ``p.adjust(p, 'holm')``).

    p_values: (m,) in [0, 1]. statsmodels' ``multipletests(p, method="holm")``, after checking the input
    (statsmodels passes NaN through and accepts values outside [0, 1]).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values must be a 1-D array of numbers in [0, 1]")
    if p.size == 0:
        return np.empty(0)
    return np.asarray(multipletests(p, method="holm")[1], dtype=np.float64)


def holm_by_family(p_values: object, family_labels: Sequence[str]) -> np.ndarray:
    """Holm-adjusted p-values (m,), adjusted separately within each family (same order as the input).

    p_values: (m,) in [0, 1]; family_labels: (m,) the family of each p-value.
    """
    p = np.asarray(p_values, dtype=np.float64)
    labels = np.asarray([str(f) for f in family_labels], dtype=object)
    if p.ndim != 1 or labels.shape != p.shape:
        raise ValueError(f"need one family label per p-value, got {labels.size} labels for {p.size} p-values")
    out = np.empty(p.size)
    for fam in dict.fromkeys(labels):
        idx = np.flatnonzero(labels == fam)
        out[idx] = holm_adjust(p[idx])
    return out


def own_family(a: str, b: str) -> str:
    """The family name of a comparison ``a`` vs ``b`` that no given family holds: its own, ``a_vs_b``."""
    return f"{a}_vs_{b}"


def comparison_families(
    pairs: Sequence[tuple[str, str]], families: Mapping[str, Sequence[str]] | None
) -> list[str]:
    """The Holm family of each compared pair.

    families: family name -> models whose pairwise comparisons form that family. A pair belongs to
    the first family (in mapping order) that lists both its models, else it is its own family
    (named ``a_vs_b``: :func:`own_family`, Holm-adjusted alone, so its adjusted p is its p);
    ``None`` puts every pair in one family ``"all"``. A given family named like such a pair's own
    family is an error. Models named in a family but not compared are logged (a warning), not an error.
    """
    if families is None:
        return [ALL_FAMILY] * len(pairs)
    members = {str(name): {str(m) for m in models} for name, models in families.items()}
    compared = {m for pair in pairs for m in pair}
    for name, models in members.items():
        unknown = sorted(models - compared)
        if unknown:
            log.warning("Holm family %r names model(s) %s that are not compared", name, unknown)
    out = []
    for a, b in pairs:
        fam = next((name for name, models in members.items() if a in models and b in models), None)
        if fam is None:
            fam = own_family(a, b)
            if fam in members:
                raise ValueError(f"Holm family {fam!r} does not hold {a} and {b}, whose comparison is its own "
                                 f"family of that name; rename the family")
        out.append(fam)
    return out


def comparison_pairs(names: list[str], reference: str | None = None) -> list[tuple[str, str]]:
    """The pairs compared: reference vs every other model, then each adjacent pair not already listed.

    Order of ``names`` is the stepwise order (m1, m2, ...); the reference defaults to the first.
    """
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate model names in {names}")
    ref = names[0] if reference is None else reference
    if ref not in names:
        raise ValueError(f"reference {ref!r} is not one of the models {names}")
    pairs = [(ref, other) for other in names if other != ref]
    seen = {frozenset(p) for p in pairs}
    for a, b in zip(names[:-1], names[1:], strict=True):
        if frozenset((a, b)) not in seen:
            pairs.append((a, b))
            seen.add(frozenset((a, b)))
    return pairs


def compare_models(
    y_true: object,
    scores: Mapping[str, object],
    reference: str | None = None,
    alpha: float = 0.05,
    families: Mapping[str, Sequence[str]] | None = None,
) -> list[ModelComparison]:
    """Paired DeLong tests of each model against the reference and of each adjacent pair.

    y_true: (N,) 0/1 or benign/malignant; scores: name -> (N,) probability of malignancy, in
    stepwise order. The p-values are Holm-adjusted within each family of comparisons
    (:func:`comparison_families`); ``families=None``: across all comparisons returned (family "all").
    """
    y = check_binary(y_true)
    arrays = {name: check_scores(s, y.size, name) for name, s in scores.items()}
    if len(arrays) < 2:
        raise ValueError(f"need at least two models to compare, got {list(arrays)}")
    pairs = comparison_pairs(list(arrays), reference)
    fams = comparison_families(pairs, families)
    tests = [delong_test(y, arrays[a], arrays[b], alpha=alpha) for a, b in pairs]
    p_holm = holm_by_family([t.p_value for t in tests], fams)
    return [ModelComparison(a=a, b=b, **asdict(t), p_holm=float(ph), family=fam)
            for (a, b), t, ph, fam in zip(pairs, tests, p_holm, fams, strict=True)]


def _json_float(x: float) -> float | None:
    """Finite floats as is; ±inf (a z over a zero variance) as None so the JSON stays strict."""
    return float(x) if math.isfinite(x) else None


def delong_report(
    y_true: object,
    scores: Mapping[str, object],
    reference: str | None = None,
    alpha: float = 0.05,
    families: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """Everything ``liver-mm delong --json`` prints, as a JSON-ready dict.

    ``{"n_pos", "n_neg", "models": {name: {"auc", "ci_low", "ci_high", "var"}},
    "comparisons": [{"a", "b", "auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z",
    "p_value", "p_holm", "family"}]}``; a z of ±inf (zero variance, diff != 0) is written as null.
    p_holm is adjusted within each Holm family (see :func:`compare_models`; None: one family "all").
    A single model gives an empty comparison list.
    """
    y = check_binary(y_true)
    arrays = {name: check_scores(s, y.size, name) for name, s in scores.items()}
    if not arrays:
        raise ValueError("no score columns given")
    if reference is not None and reference not in arrays:
        raise ValueError(f"reference {reference!r} is not one of the models {list(arrays)}")
    models = {}
    for name, s in arrays.items():
        r = auc_ci(y, s, alpha=alpha)
        models[name] = {"auc": r.auc, "ci_low": r.ci_low, "ci_high": r.ci_high, "var": r.var}
    rows = compare_models(y, arrays, reference, alpha=alpha, families=families) if len(arrays) > 1 else []
    keys = ("auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z", "p_value", "p_holm")
    comparisons = [{"a": c.a, "b": c.b, **{k: _json_float(getattr(c, k)) for k in keys}, "family": c.family}
                   for c in rows]
    n_pos = int(y.sum())
    return {"n_pos": n_pos, "n_neg": int(y.size - n_pos), "models": models, "comparisons": comparisons}
