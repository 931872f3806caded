"""``liver-mm validate`` exit codes and --json shape; load_valid_manifest as the training gate."""

from __future__ import annotations

import json
import logging

import pytest

from liver_mm.cli import main
from liver_mm.cohort.validate import ManifestValidationError, load_valid_manifest
from tests.cohort.test_validate import base_rows, write_manifest

KEYS = {"row", "case_id", "column", "code", "message"}


@pytest.fixture
def manifest(tmp_path):
    return write_manifest(tmp_path, base_rows(tmp_path))


def test_exit_0_when_usable(manifest, capsys):
    assert main(["validate", str(manifest)]) == 0
    assert "6 rows, 0 error(s), 0 warning(s) -> usable" in capsys.readouterr().out


def test_exit_1_and_json_shape(tmp_path, capsys):
    rows = base_rows(tmp_path)
    rows[1]["label"] = "unknown"
    rows[2]["ast"] = ""
    manifest = write_manifest(tmp_path, rows)
    assert main(["validate", str(manifest), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"errors", "warnings"}
    assert all(set(item) == KEYS for item in out["errors"] + out["warnings"])
    assert {(e["row"], e["case_id"], e["column"], e["code"]) for e in out["errors"]} == {
        (3, "c1", "label", "label_invalid"), (None, None, "split", "split_empty_class")}  # train: no malignant
    assert [(w["column"], w["code"]) for w in out["warnings"]] == [("ast", "missing_values")]


def test_unit_option(tmp_path, capsys):
    rows = base_rows(tmp_path)
    for r in rows:
        r["albumin"] = float(r["albumin"]) * 10
    manifest = write_manifest(tmp_path, rows)
    assert main(["validate", str(manifest)]) == 1
    assert "--unit albumin=g/L" in capsys.readouterr().out
    assert main(["validate", str(manifest), "--unit", "albumin=g/L"]) == 0
    assert main(["validate", str(manifest), "--unit", "albumin=furlong"]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(manifest), "--unit", "albumin"])
    assert exc.value.code == 2


def test_no_images_skips_decoding(tmp_path):
    rows = base_rows(tmp_path)
    rows[0]["image_path"] = "img/absent.png"
    manifest = write_manifest(tmp_path, rows)
    assert main(["validate", str(manifest), "--no-images"]) == 0
    assert main(["validate", str(manifest)]) == 1


def test_load_valid_manifest(tmp_path, manifest, caplog):
    df = load_valid_manifest(manifest)
    assert list(df["case_id"]) == [f"c{i}" for i in range(6)]
    assert df["image_path"].map(lambda p: p.startswith(str(tmp_path))).all()
    rows = base_rows(tmp_path)
    rows[0]["alp"] = 100  # only c0 has alp: a missing-values warning, logged
    with caplog.at_level(logging.WARNING):
        load_valid_manifest(write_manifest(tmp_path, rows))
    assert "missing_values" in caplog.text
    rows[3]["sex"] = "?"
    with pytest.raises(ManifestValidationError) as exc:
        load_valid_manifest(write_manifest(tmp_path, rows))
    assert exc.value.report.codes("error") == {"sex_unknown"}
    assert "line 5 (case c3, column sex)" in str(exc.value)
