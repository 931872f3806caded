"""The TRIPOD+AI section: every checklist item once, answered items carrying numbers recomputed here from the
cohort frame and the report's tables, the authors' items listed as such, the synthetic statement."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from liver_mm.study.clinical_value import calibration_table, format_calibration
from liver_mm.study.compare import compare_study
from liver_mm.study.cv.report import format_summary, write_cv_study
from liver_mm.study.report.tables import format_table3
from liver_mm.study.tripod.checklist import TITLE, split_evidence, tripod_rows, tripod_section
from liver_mm.study.tripod.evidence import ANSWERED, AUTHORS, PARTLY
from liver_mm.study.tripod.items import CHECKLIST, NUMBERS
from liver_mm.study.tripod.records import SPLIT_MADE
from tests.study.test_compare import make_predictions

ARMS = ["m1", "m3", "tab_logreg", "fib4"]
M5 = ["age", "sex", "ast", "alt", "platelets", "albumin"]
NET = {"kind": "lightning", "net": {"image": {"name": "mobilenetv2_100"}, "tabular": {"hidden": [64, 32]}},
       "pos_weight": None}
SETTINGS = {
    "m1": {"modalities": "m1", "image": True, "features": [], "model": NET},
    "m3": {"modalities": "m3", "image": True, "features": ["age", "sex", "ast", "alt"], "model": NET,
           "fusion": "concat"},
    "tab_logreg": {"modalities": "tabular_only", "image": False, "features": M5,
                   "model": {"kind": "sklearn", "estimator": {"_target_": "sklearn.linear_model.LogisticRegression",
                                                              "C": 1.0}}},
    "fib4": {"modalities": "tabular_only", "image": False, "features": M5,
             "model": {"kind": "score", "score": "fib4", "description": "FIB-4 score (age, AST, ALT, platelets)"}},
}
PROVENANCE = {"seed": 7, "manifest_hash": "abc123", "split_hash": "def456", "liver_mm_version": "0.1.0",
              "git_commit": "0123abcd", "torch_version": "2.x", "numpy_version": "2.y", "parent_run_id": "parent9",
              "config": {"data": {"kind": "synthetic", "n": 80, "seed": 3}, "image_size": 48, "crop": {"margin": 0.0},
                         "split": {"fractions": [0.8, 0.1, 0.1], "seed": 7}, "cv": {"folds": 2, "repeats": 1,
                                                                                    "dev_fraction": 0.125},
                         "augment": {"enabled": True, "hflip": 0.5}, "checkpoint": {"select": "best"},
                         "early_stopping": {"enabled": False, "patience": 5}, "trainer": {"max_epochs": 2}},
              "child_runs": {a: f"run-{a}" for a in ARMS}, "model_settings": SETTINGS, "split_source": SPLIT_MADE}
COMMAND = "liver-mm study data.n=80"


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """80 nodules of 40 patients, 40% malignant, split 8/1/1 by position (both classes in every part); ast missing
    in 3 training rows,
    albumin in one test row (so only ast gets a missing-value indicator)."""
    n, rng = 80, np.random.default_rng(1)
    i = np.arange(n)
    df = pd.DataFrame({"case_id": [f"c{k:03d}" for k in i], "patient_id": [f"p{k // 2:03d}" for k in i],
                       "label": np.where(i % 5 < 2, "malignant", "benign"),
                       "split": np.select([np.isin(i % 20, [0, 3]), np.isin(i % 20, [1, 7])], ["test", "dev"],
                                          "train"),
                       "diagnostic_basis": np.where(i % 3 == 0, "histology", "follow-up"),
                       "age": rng.normal(60, 10, n).round(), "sex": rng.choice(["F", "M"], n),
                       "ast": rng.uniform(15, 90, n).round(), "alt": rng.uniform(10, 80, n).round(),
                       "platelets": rng.uniform(8, 30, n).round(1), "albumin": rng.uniform(3, 5, n).round(1)})
    df.loc[[4, 12, 25], "ast"] = np.nan
    df.loc[0, "albumin"] = np.nan
    return df


@pytest.fixture(scope="module")
def comparison(cohort):
    preds = make_predictions(cohort["case_id"], cohort["label"], cohort["split"], seed=2, arms=ARMS)
    return compare_study(preds, ARMS, reference="m1")


def _rows(tmp_path, comparison, cohort, synthetic=True, provenance=PROVENANCE) -> pd.DataFrame:
    ev = split_evidence(tmp_path, comparison, cohort, provenance, synthetic, COMMAND, calibration_table(comparison))
    return tripod_rows(ev).set_index("item")


def test_every_checklist_item_appears_once_in_order(tmp_path, comparison, cohort):
    assert len(CHECKLIST) == 52 and len(set(NUMBERS)) == 52
    assert sorted({int(n.rstrip("abcdefg")) for n in NUMBERS}) == list(range(1, 28))  # 27 main items
    ev = split_evidence(tmp_path, comparison, cohort, PROVENANCE, True, COMMAND, calibration_table(comparison))
    lines = tripod_section(ev, tmp_path)
    assert lines[0] == f"## {TITLE}"
    table = [ln for ln in "\n".join(lines).splitlines() if ln.startswith("| ") and not ln.startswith("| Item")]
    assert [ln.split(" | ")[0].removeprefix("| ") for ln in table] == list(NUMBERS)
    written = pd.read_csv(tmp_path / "tripod.csv", dtype=str, keep_default_na=False)
    assert written["item"].tolist() == list(NUMBERS)
    assert written.equals(tripod_rows(ev).astype(str))


def test_events_per_part_and_per_parameter_are_the_cohort_counts(tmp_path, comparison, cohort):
    rows = _rows(tmp_path, comparison, cohort)
    mal = cohort["label"] == "malignant"
    for part in ("train", "dev", "test"):
        n, m = int((cohort["split"] == part).sum()), int((mal & (cohort["split"] == part)).sum())
        assert f"{part} {n} ({m} malignant)" in rows.at["21", "text"], part
    train = cohort["split"] == "train"
    events = int((mal & train).sum())
    inputs = len(M5) + sum(bool(cohort.loc[train, f].isna().any()) for f in M5)
    assert inputs == 7  # ast gets its missing-value indicator, albumin (missing only in test) does not
    text = rows.at["10", "text"]
    assert (f"tab_logreg: {events / inputs:.1f} malignant training cases per input parameter (7 inputs: 6 features "
            f"and their indicators); events {events}") in text
    assert f"fib4: {events:.1f} malignant training cases per fitted predictor (log fib4" in text
    assert "m1: not defined (the image enters through a CNN)" in text
    assert "m3: not defined (the image enters through a CNN and 4 clinical feature(s))" in text
    assert f"80 nodules of 40 patients (data.n 80), {int(mal.sum())} malignant" in text
    assert rows.at["10", "status"] == PARTLY and rows.at["21", "status"] == ANSWERED


def test_performance_and_calibration_are_the_tables_strings(tmp_path, comparison, cohort):
    rows = _rows(tmp_path, comparison, cohort)
    t3 = format_table3(comparison.table3).set_index("Model")
    cal = format_calibration(calibration_table(comparison)).set_index("Model")
    text = rows.at["23a", "text"]
    for arm in ARMS:
        assert f"{arm} AUC {t3.at[arm, 'AUC (95% CI)']}" in text
        assert (f"{arm} Brier {cal.at[arm, 'Brier score']}, intercept {cal.at[arm, 'Calibration intercept']}, "
                f"slope {cal.at[arm, 'Calibration slope']}") in text
        assert f"{arm} {t3.at[arm, 'Threshold (dev Youden)']}" in rows.at["15", "text"]
    n_pos = int(((cohort["split"] == "test") & (cohort["label"] == "malignant")).sum())
    assert text.startswith(f"Test part, {n_pos} malignant / {int((cohort['split'] == 'test').sum()) - n_pos} benign")
    assert "decision curves" in text and "decision_curve.csv" not in rows.at["23a", "evidence"]  # not written here


def test_missing_data_model_and_code_items(tmp_path, comparison, cohort):
    rows = _rows(tmp_path, comparison, cohort)
    assert "ast 3, alt 0, platelets 0, albumin 1" in rows.at["11", "text"]
    assert "<feature>_missing input" in rows.at["11", "text"]
    assert "empty score input is an error" in rows.at["11", "text"]
    assert rows.at["11", "status"] == ANSWERED
    spec = rows.at["22", "text"]
    assert "m3 (image + age, sex, ast, alt): neural network: CNN mobilenetv2_100 on the crop + MLP [64, 32] on the " \
           "labs, concat fusion, MLflow run run-m3" in spec
    assert "tab_logreg (age, sex, ast, alt, platelets, albumin): scikit-learn LogisticRegression" in spec
    code = rows.at["18f", "text"]
    assert "git commit 0123abcd" in code and f"`{COMMAND}`" in code and "seed 7" in code and "numpy 2.y" in code
    assert "No class-imbalance method" in rows.at["13", "text"]
    assert "fractions [0.8, 0.1, 0.1] and seed 7" in rows.at["12a", "text"]
    assert "keeping the epoch with the best dev AUC" in rows.at["12c", "text"]
    mal, hist = cohort["label"] == "malignant", cohort["diagnostic_basis"] == "histology"
    assert (f"malignant follow-up {int((mal & ~hist).sum())}, histology {int((mal & hist).sum())}"
            in rows.at["8a", "text"])


def test_model_building_says_whether_settings_were_tuned(tmp_path, comparison, cohort):
    fixed = _rows(tmp_path, comparison, cohort).at["12c", "text"]
    assert ("Settings are fixed by the configuration; no hyperparameter search ran inside this study's training "
            "jobs; the dev part chose only the networks' epoch and the classification threshold") in fixed
    tuned = {**PROVENANCE, "config": {**PROVENANCE["config"], "tune": {"trials": 8, "sampler": "tpe"}}}
    text = _rows(tmp_path, comparison, cohort, provenance=tuned).at["12c", "text"]
    assert ("Hyperparameters searched by Optuna (hydra-optuna-sweeper, tpe sampler, 8 trials per training job) on "
            "the training part only; objective: for a network the dev AUC of the epoch the final model's rule "
            "(checkpoint.select=best) picks, picked on one half of the dev rows and scored on the other") in text
    assert "no hyperparameter search ran" not in text


def test_items_only_the_authors_can_write_are_listed_for_them(tmp_path, comparison, cohort):
    rows = _rows(tmp_path, comparison, cohort)
    for item in ("1", "2", "3a", "3b", "3c", "5b", "6a", "6b", "6c", "8b", "8c", "9c", "12d", "14", "17", "18a",
                 "18b", "18c", "18d", "19", "23b", "25", "26", "27c"):
        asks = next(i.asks for i in CHECKLIST if i.number == item)
        assert rows.at[item, "status"] == AUTHORS and rows.at[item, "text"] == f"To write: {asks}.", item
    assert set(rows["status"]) == {ANSWERED, PARTLY, AUTHORS}


def test_data_source_says_synthetic_only_for_the_synthetic_cohort(tmp_path, comparison, cohort):
    synthetic = _rows(tmp_path, comparison, cohort, synthetic=True)
    assert synthetic.at["5a", "status"] == ANSWERED
    assert synthetic.at["5a", "text"] == ("The SYNTHETIC cohort generated by liver-mm (data.kind synthetic, n 80, "
                                          "seed 3); not patient data, not clinical evidence; manifest sha256 abc123.")
    assert synthetic.at["18e", "status"] == ANSWERED
    real = {**PROVENANCE, "config": {**PROVENANCE["config"], "data": {"kind": "manifest"}}}
    rows = _rows(tmp_path, comparison, cohort, synthetic=False, provenance=real)
    assert rows.at["5a", "status"] == PARTLY and "SYNTHETIC" not in "".join(rows["text"])
    assert rows.at["18e", "status"] == AUTHORS


def test_without_recorded_settings_nothing_is_invented(tmp_path, comparison, cohort):
    bare = {k: v for k, v in PROVENANCE.items() if k != "model_settings"}
    rows = _rows(tmp_path, comparison, cohort, provenance=bare)
    assert "m1: not recorded (the provenance lacks the arm's inputs)" in rows.at["10", "text"]
    assert rows.at["13", "status"] == AUTHORS


def test_cross_validated_report_has_the_section_with_fold_counts(tmp_path, cohort):
    """write_cv_study end to end on hand-made fold predictions: 2 folds (even / odd rows as test), dev = the first
    8 rows of the other half."""
    ids, labels = cohort["case_id"].to_numpy(), cohort["label"].to_numpy()
    rng = np.random.default_rng(0)
    preds, parts = {}, {}
    for fold in (0, 1):
        test = np.arange(len(ids)) % 2 == fold
        dev = np.flatnonzero(~test)[:8]
        parts[fold] = (test, dev)
        for arm in ("m1", "tab_logreg"):
            rows = np.concatenate([dev, np.flatnonzero(test)])
            p = np.clip(0.3 + 0.4 * (labels[rows] == "malignant") + rng.normal(0, 0.2, rows.size), 0.01, 0.99)
            preds[(arm, 0, fold)] = pd.DataFrame({"case_id": ids[rows], "label": labels[rows], "prob": p,
                                                  "split": ["dev"] * dev.size + ["test"] * int(test.sum())})
    sizes = pd.DataFrame({"repeat": [0, 0], "fold": [0, 1], "n_train": [32, 32], "n_dev": [8, 8],
                          "n_test": [40, 40], "n_outside_test": [40, 40]})
    config = OmegaConf.create({"study": {"reference": "m1"}, "cv": {"folds": 2, "repeats": 1}})
    out = tmp_path / "cv"
    out.mkdir()
    write_cv_study(config, SimpleNamespace(df=cohort, synthetic=True), preds, sizes, ["m1", "tab_logreg"], out,
                   PROVENANCE, COMMAND, None, "t")
    report = (out / "report.md").read_text()
    assert report.count(f"## {TITLE}") == 1 and "- [tripod.csv](tripod.csv)" in report
    rows = pd.read_csv(out / "tripod.csv", keep_default_na=False).set_index("item")
    mal = labels == "malignant"
    for fold, (test, dev) in parts.items():
        train = ~test
        train[dev] = False
        assert (f"r0f{fold}: train {int(train.sum())} ({int(mal[train].sum())} malignant), dev 8 "
                f"({int(mal[dev].sum())} malignant), test 40 ({int(mal[test].sum())} malignant)"
                in rows.at["21", "text"])
    summary = format_summary(pd.read_csv(out / "cv_summary.csv")).set_index("Model")
    for arm in ("m1", "tab_logreg"):
        auc = summary.at[arm, "Pooled out-of-fold AUC, repeat 0 (95% CI)"]
        assert f"{arm} pooled AUC {auc}" in rows.at["23a", "text"]
    assert "Calibration and decision curves: not computed" in rows.at["23a", "text"]
    assert "2-fold cross-validation repeated 1 time(s)" in rows.at["12a", "text"]


def test_model_settings_record_each_arms_inputs_and_the_epoch_rule():
    """finish_study's provenance carries what items 9a, 10 and 12c read: image, features, checkpoint.select."""
    from hydra import compose, initialize_config_module

    from liver_mm import catalog
    from liver_mm.study.finish import config_summary, model_settings

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        m3, logreg = (compose("study", overrides=[f"arm={a}"]) for a in ("m3", "tab_logreg"))
        tuned = compose("study", overrides=["arm=m3", "tune.trials=4"])
    assert model_settings(m3)["image"] is True and model_settings(m3)["features"] == list(
        catalog.modality_features()["m3"])
    assert model_settings(logreg)["image"] is False and model_settings(logreg)["features"] == list(
        catalog.modality_features()["tabular_only"])
    assert config_summary(m3)["checkpoint"] == {"select": "best"}
    assert "tune" not in config_summary(m3)  # tuning off: no search space in the report's provenance
    assert config_summary(tuned)["tune"]["trials"] == 4 and config_summary(tuned)["tune"]["sampler"] == "tpe"


def test_predictor_items_follow_the_dictionary(tmp_path, comparison, cohort):
    """12b (how predictors enter) and 9b (what they are) read the study's dictionary: the liver text as before;
    a lesion study's categories by their declared order and reference level, no sex, no log."""
    from liver_mm.dictionary import activate
    from liver_mm.synth.lesions import lesions_dictionary

    rows = _rows(tmp_path, comparison, cohort)
    assert ("Clinical features: sex coded F = 0, M = 1; ast, alt: log(1 + x), then standardised; age, platelets, "
            "albumin: standardised (mean and SD of the training rows)") in rows.at["12b", "text"]
    assert rows.at["9b", "text"].startswith("age: age at examination (years); sex: sex (F/M); ast: aspartate "
                                            "aminotransferase (U/L);")
    feats = ["age", "shape", "margin", "birads", "halo"]
    lesions = {**PROVENANCE, "model_settings": {**SETTINGS, "tab_logreg": {**SETTINGS["tab_logreg"],
                                                                           "features": feats},
                                                "m3": {**SETTINGS["m3"], "features": ["age"]},
                                                "fib4": {**SETTINGS["fib4"], "features": []}}}
    activate(lesions_dictionary())
    try:
        rows = _rows(tmp_path, comparison, cohort.assign(shape="oval", margin="circumscribed",
                                                                     birads="2", halo="no"), provenance=lesions)
    finally:
        activate(None)
    assert ("Clinical features: shape one-hot, reference level oval; margin multi-hot over its 5 values; birads "
            "coded 2 = 0, 3 = 1, 4a = 2, 4b = 3, 4c = 4, 5 = 5, then standardised; halo coded no = 0, yes = 1; age: "
            "standardised (mean and SD of the training rows)") in rows.at["12b", "text"]
    assert rows.at["9b", "text"].startswith("age: age (years); shape: shape (oval/round/irregular); margin: margin "
                                            "(circumscribed/")
