"""Decision curves against the dcurves package: its answers stored in tests/fixtures/dcurves_golden.json by
tests/fixtures/dcurves_golden.py (run in a throwaway environment: dcurves cannot be installed beside pandas 3)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from liver_mm.stats.decision import THRESHOLDS, decision_curves, net_benefit

TOL = 1e-9


@pytest.fixture(scope="module")
def golden(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "dcurves_golden.json").read_text())


def test_default_thresholds_are_0_01_to_0_99():
    assert THRESHOLDS.size == 99 and THRESHOLDS[0] == 0.01 and THRESHOLDS[-1] == 0.99
    assert THRESHOLDS[28] == 0.29  # rounded: np.arange alone gives 0.29000000000000004
    assert list(net_benefit([0, 1], [0.2, 0.8]).columns) == ["threshold", "net_benefit", "treat_all", "treat_none"]


@pytest.mark.parametrize("model", ["model_a", "model_b"])
def test_net_benefit_matches_dcurves_golden(golden, model):
    """model_b has predictions on the thresholds (0.5, 0.72, ...) and exact 0 and 1: p >= pt is positive."""
    y = np.asarray(golden["y"])
    res = net_benefit(y, np.asarray(golden["prob"][model]), golden["thresholds"])
    assert res["threshold"].tolist() == golden["thresholds"] == THRESHOLDS.tolist()
    np.testing.assert_allclose(res["net_benefit"], golden["net_benefit"][model], rtol=0, atol=TOL)
    np.testing.assert_allclose(res["treat_all"], golden["net_benefit"]["all"], rtol=0, atol=TOL)
    np.testing.assert_allclose(res["treat_none"], golden["net_benefit"]["none"], rtol=0, atol=TOL)


def test_a_prediction_on_the_threshold_is_positive(golden):
    """p >= pt: model_b's predictions sit on thresholds (0.5, 0.72, ...), where p > pt gives another curve. The
    code's curve matches dcurves' and is more than 1e-3 from the strict one (was: only the fixture was checked)."""
    y, p = np.asarray(golden["y"]), np.asarray(golden["prob"]["model_b"])
    t = np.asarray(golden["thresholds"])
    ours = net_benefit(y, p, t)["net_benefit"].to_numpy()
    strict = np.array([((p > pt) & (y == 1)).sum() / y.size - ((p > pt) & (y == 0)).sum() / y.size * pt / (1 - pt)
                       for pt in t])
    np.testing.assert_allclose(ours, golden["net_benefit"]["model_b"], rtol=0, atol=TOL)
    assert np.abs(ours - strict).max() > 1e-3
    # two of three cases exactly on pt = 0.5, both malignant: TP 2, FP 0 -> 2/3 (with p > pt: 0)
    assert net_benefit([1, 1, 0], [0.5, 0.5, 0.2], [0.5])["net_benefit"].tolist() == [2 / 3]


def test_hand_computed_case():
    """4 cases, y = 1, 1, 0, 0, p = 0.9, 0.4, 0.6, 0.1 at pt = 0.5: TP 1, FP 1 -> 1/4 - 1/4 * 1 = 0."""
    res = net_benefit([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], [0.25, 0.5])
    # pt 0.25: TP 2, FP 1 -> 2/4 - 1/4 * (1/3) = 0.41666...; treat all 0.5 - 0.5/3
    assert res["net_benefit"].tolist() == pytest.approx([0.5 - 0.25 / 3, 0.0], abs=1e-15)
    assert res["treat_all"].tolist() == pytest.approx([0.5 - 0.5 / 3, 0.0], abs=1e-15)


def test_decision_curves_long_table(golden):
    y = golden["y"]
    long = decision_curves(y, {"b": golden["prob"]["model_b"], "a": golden["prob"]["model_a"]})
    assert list(long.columns) == ["arm", "threshold", "net_benefit", "treat_all", "treat_none"]
    assert long["arm"].unique().tolist() == ["b", "a"] and len(long) == 2 * 99
    np.testing.assert_allclose(long.loc[long["arm"] == "a", "net_benefit"], golden["net_benefit"]["model_a"],
                               rtol=0, atol=TOL)


@pytest.mark.parametrize("bad", [[0.0, 0.5], [0.5, 1.0], [], [np.nan]])
def test_thresholds_outside_open_interval_are_refused(bad):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        net_benefit([0, 1], [0.2, 0.8], bad)


def test_golden_inputs_are_the_generators(golden, fixtures_dir):
    """The golden file holds dcurves' answers for exactly the inputs its generator makes (a live dcurves
    run cannot be part of the suite: dcurves needs lifelines, which needs pandas < 3)."""
    spec = importlib.util.spec_from_file_location("dcurves_golden", fixtures_dir / "dcurves_golden.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    y, models, thresholds = gen.inputs()
    assert golden["y"] == y and golden["prob"] == models and golden["thresholds"] == thresholds
    assert sorted(golden["net_benefit"]) == sorted([*models, "all", "none"])
    assert all(len(v) == len(thresholds) for v in golden["net_benefit"].values())
    assert golden["source"].startswith("dcurves ") and golden["rule"] == "positive when p >= threshold"
