"""``liver-mm predict`` on new cases: same probabilities as training, threshold labels, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.data.validate import ManifestValidationError
from liver_mm.serve.predict import load_predictor, predict_manifest, resolve_bundle, validate_cases


def _expected_labels(prob: pd.Series, threshold: float) -> list[str]:
    return ["malignant" if p >= threshold else "benign" for p in prob]


def test_predict_reproduces_training_probabilities(tracked, heldout_manifest, tmp_path):
    # labels and a split that training's validator would reject (one split only) are ignored
    df = pd.read_csv(heldout_manifest)
    df["label"] = "benign"
    df["split"] = "test"
    manifest = tmp_path / "with_labels.csv"
    df.to_csv(manifest, index=False)
    pred = predict_manifest(tracked.model_uri, manifest, out=tmp_path / "p.csv")
    expected = tracked.predictions
    assert list(pred.columns) == ["case_id", "prob", "label"]
    assert pred["case_id"].tolist() == expected["case_id"].astype(str).tolist()
    np.testing.assert_allclose(pred["prob"].to_numpy(), expected["prob"].to_numpy(), atol=1e-5, rtol=0)
    assert pred["label"].tolist() == _expected_labels(pred["prob"], tracked.threshold)
    assert pd.read_csv(tmp_path / "p.csv").shape == (len(expected), 3)


def test_threshold_is_the_bundles(tracked):
    predictor = load_predictor(tracked.model_uri)
    spec = json.loads((resolve_bundle(tracked.model_uri) / "spec.json").read_text())
    assert predictor.threshold == pytest.approx(spec["threshold"]) == pytest.approx(tracked.threshold)
    probs = np.array([predictor.threshold - 1e-9, predictor.threshold, 0.999])
    assert predictor.labels(probs).tolist() == ["benign", "malignant", "malignant"]


def test_cli_predict_unlabelled_cases(tracked, heldout_manifest, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model-uri", tracked.model_uri, "--manifest", str(heldout_manifest),
                 "--out", str(out), "--tracking-uri", tracked.tracking_uri])
    assert code == 0, capsys.readouterr().err
    pred = pd.read_csv(out, dtype={"case_id": str})
    assert list(pred.columns) == ["case_id", "prob", "label"]
    np.testing.assert_allclose(pred["prob"], tracked.predictions["prob"], atol=1e-5, rtol=0)
    assert pred["label"].tolist() == _expected_labels(pred["prob"], tracked.threshold)
    assert f"{len(pred)} case(s)" in capsys.readouterr().out


def test_missing_model_columns_are_named(tracked, heldout_manifest, tmp_path, capsys):
    manifest = tmp_path / "no_labs.csv"
    pd.read_csv(heldout_manifest).drop(columns=["albumin", "platelets"]).to_csv(manifest, index=False)
    report, _ = validate_cases(manifest, features=load_predictor(tracked.model_uri).features)
    assert {(f.code, f.column) for f in report.errors} == {("missing_column", "albumin"),
                                                            ("missing_column", "platelets")}
    code = main(["predict", "--model-uri", tracked.model_uri, "--manifest", str(manifest),
                 "--out", str(tmp_path / "p.csv"), "--tracking-uri", tracked.tracking_uri])
    err = capsys.readouterr().err
    assert code == 1
    assert "'albumin' is missing" in err and "'platelets' is missing" in err and str(manifest) in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()


def test_bad_value_names_file_line_and_column(tracked, heldout_manifest, tmp_path, capsys):
    df = pd.read_csv(heldout_manifest)
    df.loc[2, "ast"] = 0  # implausible (U/L), CSV line 4
    manifest = tmp_path / "bad.csv"
    df.to_csv(manifest, index=False)
    with pytest.raises(ManifestValidationError) as info:
        predict_manifest(tracked.model_uri, manifest)
    (finding,) = info.value.report.errors
    assert (finding.code, finding.row, finding.column) == ("value_out_of_range", 4, "ast")
    code = main(["predict", "--model-uri", tracked.model_uri, "--manifest", str(manifest),
                 "--out", str(tmp_path / "p.csv"), "--tracking-uri", tracked.tracking_uri])
    err = capsys.readouterr().err
    assert code == 1 and "line 4" in err and "column ast" in err and "Traceback" not in err


def test_broken_image_is_an_input_error(tracked, heldout_manifest, tmp_path, capsys):
    df = pd.read_csv(heldout_manifest)
    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(df.loc[0, "image_path"]).read_bytes()[:100])
    df.loc[0, "image_path"] = str(broken)
    manifest = tmp_path / "broken.csv"
    df.to_csv(manifest, index=False)
    code = main(["predict", "--model-uri", tracked.model_uri, "--manifest", str(manifest),
                 "--out", str(tmp_path / "p.csv"), "--tracking-uri", tracked.tracking_uri])
    err = capsys.readouterr().err
    assert code == 1 and "image_unreadable" in err and "line 2" in err and "Traceback" not in err


def test_unknown_model_uri(tmp_path, heldout_manifest, capsys, tracked):
    code = main(["predict", "--model-uri", "runs:/0123456789abcdef/model", "--manifest", str(heldout_manifest),
                 "--out", str(tmp_path / "p.csv"), "--tracking-uri", tracked.tracking_uri])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: cannot fetch model runs:/0123456789abcdef/model")
    assert "Traceback" not in err


def test_tabular_only_bundle_needs_no_images(tabular_bundle, heldout_manifest, tmp_path):
    df = pd.read_csv(heldout_manifest).drop(columns=["image_path", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"])
    manifest = tmp_path / "labs_only.csv"
    df.to_csv(manifest, index=False)
    predictor = load_predictor(str(tabular_bundle))
    assert not predictor.use_image and predictor.features == ["age", "sex", "ast", "alt"]
    pred = predict_manifest(predictor, manifest)
    direct = predictor.probabilities(None, predictor.tabular(df))
    np.testing.assert_allclose(pred["prob"], direct, rtol=0, atol=0)
    assert pred["label"].tolist() == _expected_labels(pred["prob"], 0.5)
    # batch composition does not change a case's probability
    predictor.batch_size = 3
    np.testing.assert_allclose(predict_manifest(predictor, manifest)["prob"], pred["prob"], atol=1e-6)
