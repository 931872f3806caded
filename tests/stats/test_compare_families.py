"""Holm adjustment within families of comparisons (issue 11) and the unchanged default."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from liver_mm.stats import (
    compare_models,
    comparison_families,
    comparison_pairs,
    delong_report,
    holm_by_family,
)

ARMS = ["m1", "m2", "m3", "m4", "m5", "tab_mlp", "tab_logreg"]
SEED = ["m1", "m2", "m3", "m4", "m5"]


def r_holm(p) -> np.ndarray:
    """R's p.adjust(p, "holm") written out: i <- seq_len(n); o <- order(p); ro <- order(o);
    pmin(1, cummax((n - i + 1) * p[o]))[ro]."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    o = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((n - np.arange(n)) * p[o]))
    out = np.empty(n)
    out[o] = stepped
    return out


def _load(fixtures_dir, name):
    df = pd.read_csv(fixtures_dir / f"{name}.csv")
    gold = json.loads((fixtures_dir / f"{name}.json").read_text())
    return df["malignant"].to_numpy(), df, gold


def test_families_of_the_study_pairs():
    pairs = comparison_pairs(ARMS)
    assert len(pairs) == 11
    fams = comparison_families(pairs, {"stepwise": SEED, "controls": ["m5", "tab_mlp", "tab_logreg"]})
    assert dict(zip(pairs, fams, strict=True)) == {
        ("m1", "m2"): "stepwise", ("m1", "m3"): "stepwise", ("m1", "m4"): "stepwise", ("m1", "m5"): "stepwise",
        ("m1", "tab_mlp"): "m1_vs_tab_mlp", ("m1", "tab_logreg"): "m1_vs_tab_logreg",
        ("m2", "m3"): "stepwise", ("m3", "m4"): "stepwise", ("m4", "m5"): "stepwise",
        ("m5", "tab_mlp"): "controls", ("tab_mlp", "tab_logreg"): "controls",
    }
    assert comparison_families(pairs, None) == ["all"] * 11
    # the first family listing both models wins
    assert comparison_families([("m4", "m5")], {"late": ["m4", "m5"], "stepwise": SEED}) == ["late"]
    assert comparison_families([("m4", "m5")], {}) == ["m4_vs_m5"]


def test_family_split_gives_the_smaller_adjusted_p():
    pairs = comparison_pairs(ARMS)
    raw = {("m1", "m2"): 0.001, ("m1", "m3"): 0.0004, ("m1", "m4"): 0.0002, ("m1", "m5"): 0.0001,
           ("m1", "tab_mlp"): 0.002, ("m1", "tab_logreg"): 0.003, ("m2", "m3"): 0.1114, ("m3", "m4"): 0.3,
           ("m4", "m5"): 0.6, ("m5", "tab_mlp"): 0.2, ("tab_mlp", "tab_logreg"): 0.5}
    p = np.array([raw[pair] for pair in pairs])
    fams = comparison_families(pairs, {"stepwise": SEED, "controls": ["m5", "tab_mlp", "tab_logreg"]})
    adjusted = dict(zip(pairs, holm_by_family(p, fams), strict=True))
    one_family = dict(zip(pairs, holm_by_family(p, ["all"] * 11), strict=True))
    # m2 vs m3 (p = 0.111): 7th smallest of all 11 -> (11 - 7 + 1) * 0.1114 = 0.557;
    # 5th smallest of the 7 stepwise comparisons -> (7 - 5 + 1) * 0.1114 = 0.3342
    assert one_family[("m2", "m3")] == pytest.approx(0.557, abs=1e-12)
    assert adjusted[("m2", "m3")] == pytest.approx(0.3342, abs=1e-12)
    expect = {("m1", "m2"): 0.004, ("m1", "m3"): 0.002, ("m1", "m4"): 0.0012, ("m1", "m5"): 0.0007,
              ("m2", "m3"): 0.3342, ("m3", "m4"): 0.6, ("m4", "m5"): 0.6,
              ("m1", "tab_mlp"): 0.002, ("m1", "tab_logreg"): 0.003,  # each its own family: p as it is
              ("m5", "tab_mlp"): 0.4, ("tab_mlp", "tab_logreg"): 0.5}
    assert adjusted == pytest.approx(expect, abs=1e-12)
    for fam in set(fams):
        idx = [i for i, f in enumerate(fams) if f == fam]
        assert np.allclose([adjusted[pairs[i]] for i in idx], r_holm(p[idx]), rtol=1e-14, atol=0)
    assert np.allclose(list(one_family.values()), r_holm(p), rtol=1e-14, atol=0)


def test_holm_by_family_input_checks():
    with pytest.raises(ValueError, match="one family label per p-value"):
        holm_by_family([0.1, 0.2], ["a"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_by_family([0.1, 1.2], ["a", "b"])
    # a declared family named like a lone pair's own family would merge them: refused
    with pytest.raises(ValueError, match="Holm family 'a_vs_c' does not hold a and c"):
        comparison_families([("a", "b"), ("a", "c")], {"a_vs_c": ["a", "b"]})
    # "other" is an ordinary family name now
    assert comparison_families([("a", "b"), ("a", "c")], {"other": ["a", "b"]}) == ["other", "a_vs_c"]


@pytest.mark.parametrize("name", ["delong_stepwise_108", "delong_stepwise_1200"])
def test_no_families_is_unchanged(fixtures_dir, name):
    y, df, gold = _load(fixtures_dir, name)
    scores = {m: df[m] for m in SEED}
    rows = compare_models(y, scores)
    p = np.array([gold["paired_delong"][f"{r.a}_vs_{r.b}"]["p_value"] for r in rows])
    assert [f"{r.a}_vs_{r.b}" for r in rows] == list(gold["paired_delong"])
    assert np.allclose([r.p_holm for r in rows], r_holm(p), rtol=1e-9, atol=0)
    assert {r.family for r in rows} == {"all"}
    rep = delong_report(y, scores)
    assert [c["family"] for c in rep["comparisons"]] == ["all"] * 7
    assert [c["p_holm"] for c in rep["comparisons"]] == [r.p_holm for r in rows]
    # one family listing every model is the same as no families
    assert delong_report(y, scores, families={"all": SEED}) == rep
    keys = {"a", "b", "auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z", "p_value", "p_holm", "family"}
    assert all(set(c) == keys for c in rep["comparisons"])


def test_families_in_compare_models_and_report(fixtures_dir, caplog):
    y, df, gold = _load(fixtures_dir, "delong_stepwise_108")
    scores = {m: df[m] for m in SEED}
    families = {"early": ["m1", "m2", "m3"], "late": ["m3", "m4", "m5", "tab_mlp"]}
    with caplog.at_level(logging.WARNING, logger="liver_mm.stats.compare"):
        rows = compare_models(y, scores, families=families)
    assert "'late' names model(s) ['tab_mlp']" in caplog.text
    fam = {f"{r.a}_vs_{r.b}": r.family for r in rows}
    assert fam == {"m1_vs_m2": "early", "m1_vs_m3": "early", "m1_vs_m4": "m1_vs_m4", "m1_vs_m5": "m1_vs_m5",
                   "m2_vs_m3": "early", "m3_vs_m4": "late", "m4_vs_m5": "late"}
    gold_p = {k: g["p_value"] for k, g in gold["paired_delong"].items()}
    for family in ("early", "late", "m1_vs_m4", "m1_vs_m5"):
        keys = [k for k, f in fam.items() if f == family]
        expect = r_holm([gold_p[k] for k in keys])
        got = [r.p_holm for r in rows if f"{r.a}_vs_{r.b}" in keys]
        assert np.allclose(got, expect, rtol=1e-9, atol=0), family
    everything = compare_models(y, scores)
    assert all(r.p_holm <= e.p_holm for r, e in zip(rows, everything, strict=True))
    assert any(r.p_holm < e.p_holm for r, e in zip(rows, everything, strict=True))
    rep = delong_report(y, scores, families=families)
    assert [c["family"] for c in rep["comparisons"]] == [r.family for r in rows]
    assert [c["p_holm"] for c in rep["comparisons"]] == [r.p_holm for r in rows]


def test_each_pair_in_no_family_is_its_own_family():
    """Issue 21 item 6: pairs that no declared family lists are adjusted alone (README), not pooled as one
    "other" family: with m1 vs tab_mlp p = 0.01 and m1 vs tab_logreg p = 0.02 both outside the family,
    each keeps its p (pooled, m1 vs tab_mlp would become 2 * 0.01 = 0.02)."""
    pairs = [("m1", "m2"), ("m1", "tab_mlp"), ("m1", "tab_logreg")]
    fams = comparison_families(pairs, {"seed": ["m1", "m2"]})
    assert fams == ["seed", "m1_vs_tab_mlp", "m1_vs_tab_logreg"]
    assert holm_by_family([0.03, 0.01, 0.02], fams).tolist() == [0.03, 0.01, 0.02]
