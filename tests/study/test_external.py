"""External validation (``liver-mm evaluate``), the pure parts: frozen-threshold tables, recalibration and its parts,
a score arm's calibration read back, the study folder's provenance, the external manifest's validation."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from liver_mm.cli import main
from liver_mm.cohort.validate import ManifestValidationError
from liver_mm.stats import (
    auc_ci,
    binary_metrics,
    calibration_in_the_large,
    calibration_metrics,
    delong_report,
    encode_labels,
    recalibration_fit,
    youden_threshold,
)
from liver_mm.study.external import recalibration as rc
from liver_mm.study.external.arms import score_calibration
from liver_mm.study.external.checks import validate_external
from liver_mm.study.external.report import recalibration_table
from liver_mm.study.external.run import MARKER, check_out, run_metrics
from liver_mm.study.external.source import (
    ArmRun,
    StudySource,
    StudySourceError,
    _folder_runs,
    folder_tracking_uri,
    resolve_study,
)
from liver_mm.study.frozen import compare_frozen
from liver_mm.training.scores import ScoreModel

ARMS = ["m1", "m5", "tab_logreg"]
FAMILIES = {"seed": ["m1", "m5"], "controls": ARMS}
THRESHOLDS = {"m1": 0.5, "m5": 0.62, "tab_logreg": 0.3}
RECORDS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    """An external cohort's predictions: arm j separates better than arm j-1, all over-predict (logit + 1.2)."""
    rng = np.random.default_rng(7)
    n = 300
    y = rng.random(n) < 0.45
    out = pd.DataFrame({"case_id": [f"E{i:03d}" for i in range(n)], "label": np.where(y, "malignant", "benign")})
    for j, arm in enumerate(ARMS):
        out[arm] = 1 / (1 + np.exp(-((0.6 + 0.5 * j) * (2 * y - 1) + rng.normal(size=n) + 1.2)))
    return out


@pytest.fixture(scope="module")
def comp(wide):
    return compare_frozen(wide, ARMS, THRESHOLDS, "m1", families=FAMILIES, selection_dev_auc={"m1": 0.71})


def test_table3_and_delong_at_frozen_thresholds_equal_the_stats_functions(wide, comp):
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    t3 = comp.table3.set_index("arm")
    for arm in ARMS:
        p = wide[arm].to_numpy()
        auc = auc_ci(y, p)
        assert (t3.at[arm, "auc"], t3.at[arm, "auc_ci_low"], t3.at[arm, "auc_ci_high"]) == (auc.auc, auc.ci_low,
                                                                                             auc.ci_high)
        bm = binary_metrics(y, p, THRESHOLDS[arm])
        for m in ("accuracy", "sensitivity", "specificity"):
            for s in ("", "_k", "_n", "_ci_low", "_ci_high"):
                assert t3.at[arm, f"{m}{s}"] == bm[f"{m}{s}"], (arm, m, s)
        assert t3.at[arm, "threshold"] == THRESHOLDS[arm]  # frozen: never Youden's on these cases
        assert youden_threshold(y, p).threshold != THRESHOLDS[arm]
        assert t3.at[arm, "n_test"] == 300
    assert t3.at["m1", "selection_dev_auc"] == 0.71 and math.isnan(t3.at["m5", "selection_dev_auc"])
    assert comp.delong == delong_report(y, {a: wide[a].to_numpy() for a in ARMS}, reference="m1", families=FAMILIES)
    assert [c["family"] for c in comp.delong["comparisons"]] == ["seed", "controls", "controls"]
    with pytest.raises(ValueError, match="no frozen threshold for arm"):
        compare_frozen(wide, ARMS, {"m1": 0.5}, "m1")


def test_intercept_recalibration_zeroes_the_intercept_on_its_fit_cases(wide):
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    p = wide["m5"].to_numpy()
    a, b = rc.fit_recalibration(y, p, "intercept")
    assert b == 1.0 and a == calibration_in_the_large(y, p) and a < -0.8  # the over-prediction
    assert calibration_in_the_large(y, rc.recalibrate(p, a, b)) == pytest.approx(0.0, abs=1e-8)
    assert auc_ci(y, rc.recalibrate(p, a, b)).auc == auc_ci(y, p).auc


def test_logistic_recalibration_gives_intercept_0_and_slope_1_on_its_fit_cases(wide):
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    p = wide["tab_logreg"].to_numpy()
    a, b = rc.fit_recalibration(y, p, "logistic")
    assert (a, b) == recalibration_fit(y, p)
    np.testing.assert_allclose(recalibration_fit(y, rc.recalibrate(p, a, b)), [0.0, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match="unknown recalibration 'slope'"):
        rc.fit_recalibration(y, p, "slope")


def _cohort(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = [f"P{i // 2 if i < 20 else i:03d}" for i in range(n)]  # the first 20 rows: 10 two-nodule patients
    labels = np.where(rng.random(n) < 0.5, "malignant", "benign")
    labels[1:20:2] = labels[0:20:2]  # a patient's nodules share a label
    return pd.DataFrame({"case_id": [f"C{i:03d}" for i in range(n)], "patient_id": patients, "label": labels})


def test_fraction_parts_are_seeded_stratified_and_keep_a_patient_together():
    df = _cohort()
    parts = rc.fraction_parts(df, 0.5, seed=3)
    assert parts.equals(rc.fraction_parts(df, 0.5, seed=3)) and not parts.equals(rc.fraction_parts(df, 0.5, seed=4))
    assert set(parts) == {"fit", "eval"} and 0.4 <= (parts == "fit").mean() <= 0.6
    assert (parts.groupby(df["patient_id"]).nunique() == 1).all()
    share = pd.crosstab(parts, df["label"], normalize="index")["malignant"]
    assert abs(share["fit"] - share["eval"]) < 0.1
    no_patient = rc.fraction_parts(df.drop(columns="patient_id"), 0.25, seed=0)
    assert 0.15 <= (no_patient == "fit").mean() <= 0.35
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        rc.fraction_parts(df, 1.0, seed=0)


def test_column_parts_and_a_part_without_both_classes_is_refused():
    df = _cohort(12).assign(part=["Fit ", "eval"] * 6)
    assert rc.column_parts(df, "part").tolist() == ["fit", "eval"] * 6
    df["label"] = np.where(df["part"] == "eval", "benign", df["label"])
    with pytest.raises(ValueError, match="eval part has 6 case.* not both classes"):
        rc.column_parts(df, "part")


def test_a_score_arms_calibration_is_read_back_exactly(tmp_path):
    raw = np.random.default_rng(1).lognormal(0.3, 0.6, 60)
    model = ScoreModel("fib4", -1.3, 2.1, raw, pd.DataFrame())
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"prob": model.predict_proba(raw), "score": raw}).to_csv(path, index=False)  # as a run writes it
    back = pd.read_csv(path)
    a, b = score_calibration(back["score"].to_numpy(), back["prob"].to_numpy())
    assert a == pytest.approx(-1.3, abs=1e-9) and b == pytest.approx(2.1, abs=1e-9)
    with pytest.raises(ValueError, match="not linear"):
        score_calibration(raw, 1 / (1 + np.exp(-raw)))


def test_the_study_folders_provenance_names_the_parent_and_each_arms_run(tmp_path):
    """The provenance section write_report writes (with settings rows between) is read back run by run."""
    from liver_mm.study.parent import MARKER as STUDY_MARKER
    from liver_mm.study.report.provenance import provenance_section

    runs = {"m1": "a" * 32, "m5": "b" * 32, "tab_logreg": "c" * 32}
    provenance = {"seed": 0, "config": {"image_size": 96}, "parent_run_id": "f" * 32, "child_runs": runs,
                  "model_settings": {a: {"modalities": a} for a in runs}}
    (tmp_path / STUDY_MARKER).write_text("")
    (tmp_path / "report.md").write_text("\n".join(provenance_section(provenance, "liver-mm study")) + "\n")
    parent, children, missing = _folder_runs(tmp_path)
    assert parent == "f" * 32 and children == runs and list(children) == ["m1", "m5", "tab_logreg"] and not missing
    # the committed demo record: one parent and the seven arms, in report order
    parent, children, missing = _folder_runs(RECORDS / "stepwise-synthetic")
    assert re.fullmatch("[0-9a-f]{32}", parent)
    assert list(children) == ["m1", "m2", "m3", "m4", "m5", "tab_mlp", "tab_logreg"]


def test_bad_study_sources_are_refused_with_what_to_give_instead(tmp_path):
    with pytest.raises(StudySourceError, match=r"cross-validated .*run the single-split study"):
        resolve_study(str(RECORDS / "stepwise-synthetic-cv5"), None, tmp_path)
    with pytest.raises(StudySourceError, match="not a study folder"):
        resolve_study(str(tmp_path), None, tmp_path)
    with pytest.raises(StudySourceError, match="neither a study folder nor a parent run id"):
        resolve_study("no-such-study", None, tmp_path)
    (tmp_path / ".liver-mm-study").write_text("")
    (tmp_path / "report.md").write_text("# Study report\n")
    with pytest.raises(StudySourceError, match="no provenance rows parent_run_id"):
        resolve_study(str(tmp_path), None, tmp_path)
    db = tmp_path / "elsewhere" / "mlflow.db"
    with pytest.raises(StudySourceError, match="no MLflow store at .*pass --tracking-uri"):
        resolve_study(str(RECORDS / "stepwise-synthetic"), f"sqlite:///{db}", tmp_path)
    assert not db.parent.exists()  # nothing created where the store is not


def test_the_study_commands_tracking_uri_is_read_from_command_txt(tmp_path):
    assert folder_tracking_uri(tmp_path) is None
    (tmp_path / "command.txt").write_text("liver-mm study data=manifest logger.tracking_uri=sqlite:////x/m.db seed=1\n")
    assert folder_tracking_uri(tmp_path) == "sqlite:////x/m.db"
    (tmp_path / "command.txt").write_text("liver-mm study experiment=demo\n")
    assert folder_tracking_uri(tmp_path) is None


def _source(features: list[str]) -> StudySource:
    cfg = OmegaConf.create({"modalities": {"features": features, "image": False}, "model": {"kind": "sklearn"}})
    arm = ArmRun("tab_logreg", "r" * 32, "sklearn", cfg, 0.5, math.nan, "", frozenset(), frozenset())
    return StudySource("s", "p" * 32, "1", {"tab_logreg": arm}, "tab_logreg", None, True, None, None)


def test_the_external_manifest_is_refused_naming_file_line_and_column(tmp_path):
    path = tmp_path / "external.csv"
    path.write_text("case_id,label,age,albumin,part\nA1,benign,50,4.1,fit\nA2,,61,3.9,fit\nA3,maybe,70,abc,eval\n"
                    "A4,malignant,66,,train\nA5,malignant,71,3.5,eval\n")
    with pytest.raises(ManifestValidationError) as exc:
        validate_external(path, _source(["age", "albumin"]), recal_column="part")
    text = str(exc.value)
    for where in ("line 3 (case A2, column label)", "line 4 (case A3, column label)",
                  "line 4 (case A3, column albumin)", "line 5 (case A4, column albumin)", "line 5 (case A4, column part)"):
        assert f"{path}, {where}" in text, where
    path.write_text("case_id,label,age,albumin\nA1,benign,50,4.1\nA2,benign,61,3.9\n")
    with pytest.raises(ManifestValidationError, match="one_class"):
        validate_external(path, _source(["age", "albumin"]))
    with pytest.raises(ManifestValidationError, match="column 'platelets' is missing"):
        validate_external(path, _source(["platelets"]))
    path.write_text("case_id,label,age,albumin\nA1,benign,50,4.1\nA2,malignant,61,3.9\n")
    assert validate_external(path, _source(["age", "albumin"]))["label"].tolist() == ["benign", "malignant"]


def test_the_out_folder_must_be_new_empty_or_an_earlier_evaluates(tmp_path):
    check_out(tmp_path / "new")
    (tmp_path / "mine").mkdir()
    check_out(tmp_path / "mine")
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(ValueError, match=r"--out=.*mine holds files that liver-mm evaluate did not write"):
        check_out(tmp_path / "mine")
    (tmp_path / "mine" / MARKER).write_text("")
    check_out(tmp_path / "mine")


def test_recalibration_table_and_run_metrics_equal_a_recomputation(wide, comp):
    parts = pd.Series(np.where(np.arange(len(wide)) % 2 == 0, "fit", "eval"))
    y = encode_labels(wide["label"].to_numpy(dtype=object))
    fit = (parts == "fit").to_numpy()
    fits = {a: rc.fit_recalibration(y[fit], wide[a].to_numpy()[fit], "intercept") for a in ARMS}
    rest = wide[~fit]
    recal = rest.assign(**{a: rc.recalibrate(rest[a].to_numpy(), *fits[a]) for a in ARMS})
    original, recalibrated = (compare_frozen(t, ARMS, THRESHOLDS, "m1") for t in (rest, recal))
    table = recalibration_table(original, recalibrated, fits, "intercept", int(fit.sum()))
    assert list(zip(table["arm"], table["version"], strict=True)) == [
        (a, v) for a in ARMS for v in ("original", "recalibrated")]
    y_rest = y[~fit]
    for row in table.to_dict("records"):
        p = (rest if row["version"] == "original" else recal)[row["arm"]].to_numpy()
        cal = calibration_metrics(y_rest, p)
        assert (row["brier"], row["cal_intercept"], row["cal_slope"]) == (cal["brier"], cal["cal_intercept"],
                                                                         cal["cal_slope"])
        assert row["sensitivity"] == binary_metrics(y_rest, p, THRESHOLDS[row["arm"]])["sensitivity"]
    metrics = run_metrics(comp, table)
    assert metrics["external_auc_m5"] == comp.table3.set_index("arm").at["m5", "auc"]
    assert metrics["external_cal_intercept_m5"] == calibration_metrics(y, wide["m5"].to_numpy())["cal_intercept"]
    assert metrics["threshold_m5"] == 0.62 and "delong_p_holm_m1_vs_m5" in metrics
    assert metrics["recal_a_m5"] == fits["m5"][0] and metrics["recal_b_m5"] == 1.0
    got = table.set_index(["arm", "version"])
    assert metrics["eval_cal_intercept_m5"] == got.at[("m5", "original"), "cal_intercept"]
    assert metrics["eval_recal_cal_intercept_m5"] == got.at[("m5", "recalibrated"), "cal_intercept"]


def test_the_cli_refuses_two_fit_parts_or_a_part_without_a_method(capsys):
    base = ["evaluate", "--study", "s", "--manifest", "m.csv", "--out", "o"]
    assert main([*base, "--recalibrate", "intercept", "--recal-column", "c", "--recal-fraction", "0.3"]) == 1
    assert "give one" in capsys.readouterr().err
    assert main([*base, "--recal-fraction", "0.3"]) == 1
    assert "need --recalibrate" in capsys.readouterr().err


def test_an_arm_without_a_saved_model_is_a_clear_error(tmp_path):
    from liver_mm.serve.predict import ModelLoadError
    from liver_mm.study.external.arms import load_scorer

    cfg = OmegaConf.create({"modalities": {"features": ["age"], "image": True}, "model": {"kind": "x"}})
    for kind, remedy in (("sklearn", "rerun the study with logger.log_model=true"),
                         ("lightning", "no logged model 'model', no model_bundle artifact")):
        run = ArmRun("arm_x", "f" * 32, kind, cfg, 0.5, math.nan, "", frozenset({"config.yaml"}), frozenset())
        with pytest.raises(ModelLoadError, match=rf"arm arm_x \(run f{{32}}\): .*{re.escape(remedy)}"):
            load_scorer(None, run, tmp_path)


def test_a_negative_or_zero_recalibration_slope_is_refused_with_its_value(wide):
    y = np.array([0, 1] * 4)
    flat = np.array([0.2] * 4 + [0.8] * 4)  # each risk with one event in two: the fitted slope is exactly 0
    assert recalibration_fit(y, flat)[1] == 0.0
    with pytest.raises(ValueError, match=r"slope on the fit part is b = 0 \(<= 0\): the model ranks the new site's "
                                         r"cases backwards \(or not at all\), which recalibration cannot fix"):
        rc.fit_recalibration(y, flat, "logistic")
    assert rc.fit_recalibration(y, flat, "intercept")[1] == 1.0  # intercept only: the slope is fixed at 1
    # an arm that ranks the external cases backwards: evaluate names the arm and its slope
    from liver_mm.study.external.run import Recalibration, _recalibrate

    backwards = wide.assign(m5=1 - wide["m5"])
    parts = pd.Series(np.where(np.arange(len(wide)) % 2 == 0, "fit", "eval"))
    fit = (parts == "fit").to_numpy()
    b = recalibration_fit(encode_labels(wide["label"].to_numpy(dtype=object))[fit], backwards["m5"].to_numpy()[fit])[1]
    assert b < -0.5
    cfg = OmegaConf.create({"modalities": {"features": [], "image": False}})
    source = StudySource("s", "p" * 32, "1", {a: ArmRun(a, "r" * 32, "sklearn", cfg, THRESHOLDS[a], math.nan, "",
                                                         frozenset(), frozenset()) for a in ARMS}, "m1", FAMILIES,
                         True, None, None)
    with pytest.raises(ValueError, match=rf"^arm m5: the logistic recalibration's slope on the fit part is "
                                         rf"b = {b:.4g} \(<= 0\)"):
        _recalibrate(backwards.copy(), parts, source, Recalibration("logistic"))
    _recalibrate(wide.copy(), parts, source, Recalibration("logistic"))  # the forward arms pass


def _forged_study(tmp_path: Path, report: bool = True) -> tuple[str, str, dict[str, str]]:
    """A tracking store holding a study parent and finished children as liver-mm study logs them (tags, config.yaml,
    threshold); the report names tab_logreg's first child and tab_mlp as missing, then a newer tab_logreg child with
    another arm key finishes. Returns (store URI, parent run id, arm -> run id)."""
    from mlflow.tracking import MlflowClient

    from liver_mm.study.report.provenance import provenance_section
    from liver_mm.tracking.registry import OUTPUTS_LOGGED

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("forged", artifact_location=str(tmp_path / "art"))
    common = {"study": "forged", "study_key": "k" * 16}
    parent = client.create_run(exp, tags={**common, "is_study_parent": "true", "synthetic": "true"},
                               start_time=1_000).info.run_id
    client.log_param(parent, "arms", "tab_logreg,fib4,tab_mlp")
    runs = {}
    for name, arm, key, start in (("tab_logreg", "tab_logreg", "a1", 2_000), ("fib4", "fib4", "f1", 3_000),
                                  ("newer", "tab_logreg", "a0", 9_000)):
        cfg = {"model": {"kind": "sklearn"}, "modalities": {"features": ["age"], "image": False},
               "study": {"reference": "tab_logreg", "holm_families": None}}
        rid = client.create_run(exp, start_time=start, tags={
            **common, "mlflow.parentRunId": parent, "is_study_parent": "false", "study_level": "arm", "arm": arm,
            "arm_key": key, "model_kind": "sklearn", OUTPUTS_LOGGED: "true"}).info.run_id
        (tmp_path / name).mkdir()
        OmegaConf.save(OmegaConf.create(cfg), tmp_path / name / "config.yaml")
        client.log_artifact(rid, str(tmp_path / name / "config.yaml"))
        client.log_metric(rid, "threshold", 0.4)
        client.set_terminated(rid, "FINISHED")
        runs[name] = rid
    if report:
        prov = {"parent_run_id": parent, "child_runs": {"tab_logreg": runs["tab_logreg"], "fib4": runs["fib4"]},
                "missing_arms": "tab_mlp"}
        (tmp_path / "report").mkdir()
        (tmp_path / "report" / "report.md").write_text("\n".join(provenance_section(prov, "liver-mm study")) + "\n")
        client.log_artifacts(parent, str(tmp_path / "report"))
    return uri, parent, runs


def test_a_parent_run_id_gives_the_children_the_studys_report_compared_and_names_a_missing_arm(tmp_path):
    uri, parent, runs = _forged_study(tmp_path)
    source = resolve_study(parent, uri, tmp_path / "tmp")
    assert {a: r.run_id for a, r in source.arms.items()} == {"tab_logreg": runs["tab_logreg"], "fib4": runs["fib4"]}
    assert source.arms["tab_logreg"].run_id != runs["newer"]  # the latest finished child has another arm key
    assert source.missing == ("tab_mlp",) and source.reference == "tab_logreg"


def test_a_parent_run_without_a_report_is_refused_with_the_remedy(tmp_path):
    uri, parent, _runs = _forged_study(tmp_path, report=False)
    with pytest.raises(StudySourceError, match=rf"parent run {parent}\) logged no report.md: its report step never "
                                               r"ran.*rerun the study command"):
        resolve_study(parent, uri, tmp_path / "tmp")


def test_categories_the_model_never_saw_are_refused_naming_lines_arms_and_known_ones(tmp_path):
    """A real fitted preprocessing (the lesion dictionary's descriptors) trained without ``round`` shapes, BI-RADS
    5 or an ``angular`` margin; the external cohort holds them (any case, a multi cell, an undeclared ``lobular``):
    one error per variable and value, with its lines, the arm and what the model knows; a cohort of seen
    categories passes."""
    from liver_mm.features.tabular import TabularPreprocessor
    from liver_mm.study.external.checks import refuse_unseen
    from liver_mm.synth.lesions import lesions_dictionary

    d = lesions_dictionary()
    feats = ["shape", "margin", "birads", "halo"]
    train = pd.DataFrame({"shape": ["oval", "irregular", "oval", "irregular"],
                          "margin": ["circumscribed", "not circumscribed - indistinct", "circumscribed",
                                     "circumscribed&not circumscribed - spiculated"],
                          "birads": ["2", "3", "4a", "4c"], "halo": ["no", "yes", "no", "no"]})
    prep = TabularPreprocessor(feats, d).fit(train)
    external = pd.DataFrame({"case_id": ["X1", "X2", "X3", "X4"], "shape": ["oval", " Round", "round", "lobular"],
                             "margin": ["circumscribed", "circumscribed&not circumscribed - angular",
                                        "circumscribed", "not available"],
                             "birads": ["5", "2", "3", "5"], "halo": ["no", "yes", "yes", "no"]})
    path = tmp_path / "external.csv"
    with pytest.raises(ManifestValidationError) as exc:
        refuse_unseen(external, {"tab_logreg": prep, "m5": prep}, path)
    errors = exc.value.report.errors
    assert [(f.column, f.row) for f in errors] == [("shape", 3), ("shape", 5), ("margin", 3), ("birads", 2)]
    text = str(exc.value)
    assert (f"{path}, line 3 (case X2, column shape): shape = 'round' (lines 3, 4): a category the model of arm(s) "
            "tab_logreg, m5 never saw in training (it knows oval, irregular)") in text
    assert "shape = 'lobular' (line 5)" in text
    assert ("margin = 'not circumscribed - angular' (line 3): a category the model of arm(s) tab_logreg, m5 never "
            "saw in training (it knows circumscribed, not circumscribed - indistinct, not circumscribed - "
            "spiculated)") in text
    assert "birads = '5' (lines 2, 5)" in text and "(it knows 2, 3, 4a, 4c)" in text
    refuse_unseen(train.assign(case_id=["A", "B", "C", "D"]), {"tab_logreg": prep}, path)  # all seen: no error
