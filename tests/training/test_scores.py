"""Score arms (model=fib4 / model=apri): raw scores equal the formulas from the manifest, units included;
probabilities are a monotone calibration; published cut-offs on the test rows; the arm runs as a tracked run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.features.inputs import build_features
from liver_mm.training.run import train
from liver_mm.training.scores import cutoff_metrics, fit_score
from tests.training.conftest import compose_train


def _expected(manifest: pd.DataFrame, score: str, per_ul: bool = False) -> dict[str, float]:
    """case_id -> the score, computed here from the manifest's own columns (platelets -> 10^9/L)."""
    out = {}
    for r in manifest.itertuples():
        plt = r.platelets / 1e3 if per_ul else r.platelets * 10.0  # /uL -> 10^9/L ; x10^4/uL -> 10^9/L
        out[r.case_id] = (r.age * r.ast / (plt * math.sqrt(r.alt)) if score == "fib4" else r.ast / 40.0 / plt * 100)
    return out


def _fit(cfg):
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    return cohort, fit_score(cfg, cohort, build_features(cfg, cohort))


@pytest.mark.parametrize("score", ["fib4", "apri"])
def test_score_arm_predicts_the_formula(tmp_path, small_overrides, tiny_cohort, score):
    cfg = compose_train([*small_overrides, f"model={score}", "modalities=tabular_only"], tmp_path)
    cohort, fitted = _fit(cfg)
    rows = cohort.df["split"].isin(["dev", "test"]).to_numpy()
    ids = cohort.df.loc[rows, "case_id"].tolist()
    expected = np.array([_expected(pd.read_csv(tiny_cohort), score)[c] for c in ids])
    np.testing.assert_allclose(fitted.model.raw, expected, rtol=1e-12)
    # probabilities: increasing in the score, so the arm's ranks (AUC, DeLong) are the score's own
    order = np.argsort(expected, kind="stable")
    assert (np.diff(fitted.probs[order]) >= 0).all() and fitted.model.slope > 0
    np.testing.assert_allclose(fitted.probs, 1 / (1 + np.exp(-(fitted.model.intercept
                                                              + fitted.model.slope * np.log(expected)))), rtol=1e-12)
    # published cut-offs on the raw test scores, counted here
    test = cohort.df.loc[rows, "split"].to_numpy() == "test"
    y = (cohort.df.loc[rows, "label"].to_numpy() == "malignant")[test]
    table = fitted.model.cutoffs.set_index("cutoff")
    for c in {"fib4": (1.45, 3.25), "apri": (0.5, 1.5)}[score]:
        called = expected[test] >= c
        assert table.loc[c, "sensitivity"] == (called & y).sum() / y.sum()
        assert table.loc[c, "specificity"] == (~called & ~y).sum() / (~y).sum()
        assert fitted.model.metrics[f"test_sensitivity_at_{c:g}"] == table.loc[c, "sensitivity"]
    assert set(table["score"]) == {score} and cutoff_metrics(fitted.model.cutoffs) == fitted.model.metrics
    # the dev-Youden threshold maps back onto the raw scale
    assert fitted.model.raw_threshold(float(fitted.probs[0])) == pytest.approx(expected[0], rel=1e-9)

    res = train(cfg)  # the tracked run: same probabilities, a finished run of kind score, no model logged
    np.testing.assert_allclose(res.predictions["prob"].to_numpy(), fitted.probs, rtol=0, atol=0)
    run = MlflowClient(cfg.logger.tracking_uri).get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["model_kind"] == "score"
    assert run.data.params["model.score"] == score


def test_declared_per_ul_platelets_give_the_same_scores(tmp_path, small_overrides, tiny_cohort):
    raw = pd.read_csv(tiny_cohort)
    per_ul = raw.assign(platelets=(raw["platelets"] * 1e4).round().astype(int),
                        image_path=[str(tiny_cohort.parent / p) for p in raw["image_path"]])
    manifest = tmp_path / "per_ul" / "manifest.csv"
    manifest.parent.mkdir()
    per_ul.to_csv(manifest, index=False)
    ref_cfg = compose_train([*small_overrides, "model=fib4", "modalities=tabular_only"], tmp_path / "ref")
    cfg = compose_train([*small_overrides, "model=fib4", "modalities=tabular_only", f"data.manifest={manifest}"],
                        tmp_path / "ul")
    with open_dict(cfg):
        cfg.data.units = {"platelets": "/uL"}
    ref_cohort, ref = _fit(ref_cfg)
    cohort, got = _fit(cfg)
    assert cohort.df["case_id"].tolist() == ref_cohort.df["case_id"].tolist()  # same split
    ids = cohort.df.loc[cohort.df["split"].isin(["dev", "test"]), "case_id"]
    expected = _expected(per_ul, "fib4", per_ul=True)
    np.testing.assert_allclose(got.model.raw, [expected[c] for c in ids], rtol=1e-12)
    np.testing.assert_allclose(got.model.raw, ref.model.raw, rtol=1e-12)
    np.testing.assert_allclose(got.probs, ref.probs, rtol=1e-9)


def test_missing_score_input_on_a_test_case_names_it(tmp_path, small_overrides, tiny_cohort):
    from liver_mm.training import scores

    cfg = compose_train([*small_overrides, "model=apri", "modalities=tabular_only"], tmp_path)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir, features=list(cfg.modalities.features))
    feats = build_features(cfg, cohort)
    i = int(np.flatnonzero(cohort.df["split"].to_numpy() == "test")[0])
    cohort.df.loc[i, "ast"] = np.nan
    with pytest.raises(ValueError, match=rf"model=apri cannot score 1 dev/test case\(s\).*case {cohort.df.case_id[i]} "
                                         r"\(empty ast\)"):
        scores.fit_score(cfg, cohort, feats)
