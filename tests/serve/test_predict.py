"""``liver-mm predict`` on new cases: same probabilities as training, threshold labels, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.cohort.validate import ManifestValidationError
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


def _predict_cli(tracked, manifest: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--model-uri", tracked.model_uri, "--manifest", str(manifest), "--out", str(out),
                 "--tracking-uri", tracked.tracking_uri, *extra])


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_out_equal_to_manifest_is_refused(tracked, heldout_manifest, tmp_path, capsys, spelling):
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "cases.csv"
    manifest.write_bytes(heldout_manifest.read_bytes())
    out = {"same": manifest, "dotdot": tmp_path / "sub" / ".." / "cases.csv", "symlink": tmp_path / "link.csv",
           "hardlink": tmp_path / "hard.csv"}[spelling]
    if spelling == "symlink":
        out.symlink_to(manifest)
    elif spelling == "hardlink":
        os.link(manifest, out)
    assert _predict_cli(tracked, manifest, out) == 1
    err = capsys.readouterr().err
    assert f"error: {out}: the predictions CSV must be a new file, not the input manifest {manifest}" in err
    assert manifest.read_bytes() == heldout_manifest.read_bytes()
    with pytest.raises(ValueError, match="must be a new file, not the input manifest"):
        predict_manifest(tracked.model_uri, manifest, out=out)
    assert manifest.read_bytes() == heldout_manifest.read_bytes()


def test_failed_write_keeps_the_previous_predictions(tracked, heldout_manifest, tmp_path, capsys, monkeypatch):
    out = tmp_path / "preds.csv"
    out.write_text("previous predictions\n")
    real_to_csv = pd.DataFrame.to_csv

    def half_then_fail(self, path=None, *args, **kwargs):
        Path(path).write_text("case_id,prob,label\nc1,0.")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    assert _predict_cli(tracked, heldout_manifest, out) == 1
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "previous predictions\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]  # no temporary file left behind


def test_out_in_an_unwritable_place_fails_before_scoring(tracked, heldout_manifest, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert _predict_cli(tracked, heldout_manifest, tmp_path / "file.txt" / "preds.csv") == 1
    assert "file.txt: cannot create or write this folder" in capsys.readouterr().err


def _with_blanks(heldout_manifest: Path, tmp_path: Path, cells: list[tuple[int, str]],
                 columns: tuple[str, ...] = ()) -> tuple[Path, pd.DataFrame]:
    df = pd.read_csv(heldout_manifest, dtype={"case_id": str})
    for row, col in cells:
        df.loc[row, col] = np.nan
    for col in columns:
        df[col] = np.nan
    manifest = tmp_path / "blanks.csv"
    df.to_csv(manifest, index=False)
    return manifest, df


def test_blank_lab_is_refused_naming_file_line_case_and_column(tracked, heldout_manifest, tmp_path, capsys):
    manifest, df = _with_blanks(heldout_manifest, tmp_path, [(2, "ast")])  # CSV line 4
    assert _predict_cli(tracked, manifest, tmp_path / "p.csv") == 1
    err = capsys.readouterr().err
    line = next(s for s in err.splitlines() if "[missing_value]" in s)
    assert line.startswith(f"ERROR [missing_value] {manifest}, line 4 (case {df.loc[2, 'case_id']}, column ast): "
                           "ast is empty: this model needs ast (U/L)")
    assert "--allow-missing" in line and not (tmp_path / "p.csv").exists()
    with pytest.raises(ManifestValidationError) as info:
        predict_manifest(tracked.model_uri, manifest)
    assert [(f.code, f.row, f.column) for f in info.value.report.errors] == [("missing_value", 4, "ast")]


def test_empty_lab_column_is_refused(tracked, heldout_manifest, tmp_path, capsys):
    manifest, df = _with_blanks(heldout_manifest, tmp_path, [], columns=("albumin",))
    assert _predict_cli(tracked, manifest, tmp_path / "p.csv") == 1
    err = capsys.readouterr().err
    assert f"ERROR [missing_value] {manifest} (column albumin): albumin is empty on every row (lines 2, 3" in err
    assert not (tmp_path / "p.csv").exists()


def test_allow_missing_imputes_and_names_the_filled_features(tracked, heldout_manifest, tmp_path, capsys):
    manifest, df = _with_blanks(heldout_manifest, tmp_path, [(0, "ast"), (0, "albumin"), (3, "platelets")])
    out = tmp_path / "p.csv"
    assert _predict_cli(tracked, manifest, out, "--allow-missing") == 0, capsys.readouterr().err
    assert capsys.readouterr().out.rstrip().endswith(", 2 with imputed inputs")  # cases, not cells
    pred = pd.read_csv(out, dtype={"case_id": str}, keep_default_na=False)
    assert list(pred.columns) == ["case_id", "prob", "label", "imputed"]
    expected = [""] * len(df)
    expected[0], expected[3] = "ast;albumin", "platelets"
    assert pred["imputed"].tolist() == expected
    full = [i for i in range(len(df)) if i not in (0, 3)]  # untouched rows score as in training
    np.testing.assert_allclose(pred["prob"].to_numpy()[full], tracked.predictions["prob"].to_numpy()[full],
                               atol=1e-5, rtol=0)
    api = predict_manifest(tracked.model_uri, manifest, allow_missing=True)
    assert api["imputed"].tolist() == expected


def test_pixel_identical_images_are_reported(tracked, heldout_manifest, tmp_path, capsys):
    df = pd.read_csv(heldout_manifest, dtype={"case_id": str})
    copy = tmp_path / "copy_of_case0.png"
    copy.write_bytes(Path(df.loc[0, "image_path"]).read_bytes())  # another file, the same pixels
    twin = df.iloc[[0]].assign(case_id="twin-0", image_path=str(copy))
    # a second nodule boxed elsewhere in the same frame is no duplicate (no patient_id column here)
    other = df.iloc[[0]].assign(case_id="second-nodule", bbox_x0=0, bbox_y0=0, bbox_x1=4, bbox_y1=4)
    manifest = tmp_path / "twins.csv"
    pd.concat([df, twin, other], ignore_index=True).drop(columns="patient_id", errors="ignore").to_csv(
        manifest, index=False)
    report, _ = validate_cases(manifest, features=load_predictor(tracked.model_uri).features)
    dup = [f for f in report.findings if f.code == "image_duplicate"]
    assert [(f.severity, f.row, f.case_id, f.column) for f in dup] == [
        ("warning", len(df) + 2, "twin-0", "image_path")]
    assert f"pixel-identical to line 2 (case {df.loc[0, 'case_id']})" in dup[0].message
    assert _predict_cli(tracked, manifest, tmp_path / "p.csv") == 0
    assert f"[image_duplicate] {manifest}, line {len(df) + 2} (case twin-0" in capsys.readouterr().err
