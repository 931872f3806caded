"""Issue 9 data safety: synth never overwrites a real cohort, import-folder reports its clinical matches,
headers match case-insensitively, other separators are detected, and one lab-unit rule for validator and server."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pandas as pd
import pytest

import liver_mm.synth.cohort as synth
from liver_mm.cli import main
from liver_mm.cohort.validate import validate_labs, validate_manifest
from liver_mm.io.importers import import_folder
from liver_mm.io.schema import ManifestError, read_manifest
from liver_mm.serve.requests import check_lab
from liver_mm.synth.cohort import generate_cohort, read_cohort_meta
from tests.cohort.test_validate import base_rows, check, findings, make_png, write_manifest
from tests.io.test_importers import busi  # noqa: F401  (fixture)

SMALL = {"n": 4, "frame_size": (64, 64)}


def snapshot(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- 1. synth --out never overwrites a real cohort -------------------------------------------------------


@pytest.fixture
def real_cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    make_png(root / "images" / "C0001.png", seed=9)
    (root / "manifest.csv").write_text("case_id,patient_id,image_path,label\nC0001,P1,images/C0001.png,benign\n")
    return root


def test_synth_refuses_a_real_cohort_even_with_force(real_cohort, capsys):
    before = snapshot(real_cohort)
    argv = ["synth", "--out", str(real_cohort), "--n", "4", "--frame-size", "64x64"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{real_cohort} is not empty (2 entries: images, manifest.csv)" in err and "--force" in err
    assert main([*argv, "--force"]) == 1
    err = capsys.readouterr().err
    assert "not replaced even with --force" in err and "images, manifest.csv" in err
    assert snapshot(real_cohort) == before
    assert [p.name for p in real_cohort.parent.iterdir()] == ["cohort"]  # no temporary folder left


def test_force_replaces_only_what_synth_wrote(tmp_path):
    out = tmp_path / "c"
    generate_cohort(out, seed=1, **SMALL)
    assert read_cohort_meta(out / "manifest.csv")["manifest_sha256"]
    with pytest.raises(FileExistsError, match="is not empty"):
        generate_cohort(out, seed=2, **SMALL)
    generate_cohort(out, seed=2, n=5, frame_size=(64, 64), force=True)
    assert read_cohort_meta(out / "manifest.csv")["seed"] == 2 and len(list((out / "images").iterdir())) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    (out / "notes.txt").write_text("mine")
    (out / "images" / "scan.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match=r"holds 2 entries .*\(notes.txt, images/scan.png\)"):
        generate_cohort(out, force=True, **SMALL)
    (out / "notes.txt").unlink()
    (out / "images" / "scan.png").unlink()
    edited = (out / "manifest.csv").read_text().replace("benign", "malignant")
    (out / "manifest.csv").write_text(edited)  # someone's own rows now: not what synth wrote
    with pytest.raises(FileExistsError, match=r"not replaced even with --force: it holds 3 entries"):
        generate_cohort(out, force=True, **SMALL)
    assert (out / "manifest.csv").read_text() == edited


def _interrupt_after(monkeypatch, n_images: int) -> None:
    real, written = synth._save_png, []

    def save(pixels, path):
        if len(written) == n_images:
            raise KeyboardInterrupt
        written.append(path)
        real(pixels, path)

    monkeypatch.setattr(synth, "_save_png", save)


def test_interrupted_synth_leaves_no_half_cohort(tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(tmp_path / "c", **SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    generate_cohort(tmp_path / "c", seed=1, **SMALL)
    before = snapshot(tmp_path / "c")
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        generate_cohort(tmp_path / "c", seed=2, force=True, **SMALL)
    assert snapshot(tmp_path / "c") == before and [p.name for p in tmp_path.iterdir()] == ["c"]


def test_synth_into_an_empty_folder(tmp_path):
    (tmp_path / "c").mkdir()
    manifest = generate_cohort(tmp_path / "c", **SMALL)
    assert manifest == tmp_path / "c" / "manifest.csv" and validate_manifest(manifest).n_rows == 4


# --- 6. import-folder: clinical matches, case-insensitive headers ------------------------------------------


def test_clinical_table_matching_no_case_fails(busi, tmp_path, capsys):  # noqa: F811
    labs = tmp_path / "labs.csv"
    labs.write_text("case_id,age\nb1,50\nm1,60\n")  # stems without their class folder
    out = tmp_path / "m.csv"
    assert main(["import-folder", str(busi), "--out", str(out), "--clinical", str(labs)]) == 1
    err = capsys.readouterr().err
    assert "labs.csv: none of its 2 case_id values matches a case_id" in err and "'Malignant/m1'" in err
    assert not out.exists()
    with pytest.raises(ManifestError, match="none of its 2 case_id values"):
        import_folder(busi, out, clinical=labs)


def test_partial_clinical_match_is_counted_and_upper_case_headers_match(busi, tmp_path, capsys,  # noqa: F811
                                                                        caplog):
    labs = tmp_path / "labs.csv"
    labs.write_text("CASE_ID,Age,Sex,AST,ALT,Platelets,Albumin\nbenign/b1,61,F,40,35,12.5,3.9\n")
    out = tmp_path / "m.csv"
    with caplog.at_level(logging.WARNING):
        assert main(["import-folder", str(busi), "--out", str(out), "--clinical", str(labs),
                     "--on", "CASE_ID"]) == 0
    assert "clinical data matched 1 of 3 cases (2 without clinical data)" in capsys.readouterr().out
    assert "2 of 3 cases have no clinical row" in caplog.text
    assert "column 'AST' read as 'ast'" in caplog.text and "column 'Albumin' read as 'albumin'" in caplog.text
    df = read_manifest(out).set_index("case_id")
    assert df.loc["benign/b1", ["age", "ast", "alt", "platelets", "albumin"]].tolist() == [61, 40, 35, 12.5, 3.9]
    assert df.loc["benign/b1", "sex"] == "F"
    assert import_folder(busi, out, clinical=labs).clinical_matched == 1


def test_manifest_headers_match_case_insensitively(tmp_path, caplog):
    rows = base_rows(tmp_path)
    for r in rows:
        r["AST"] = r.pop("ast")
    rows[2]["AST"] = 0
    with caplog.at_level(logging.WARNING):
        report = check(tmp_path, rows)
    assert findings(report, "value_out_of_range") == [(4, "c2", "ast")]
    assert "missing_clinical_column" not in report.codes()
    assert "column 'AST' read as 'ast'" in caplog.text


def test_ambiguous_headers(tmp_path, caplog):
    rows = base_rows(tmp_path)
    for r in rows:
        r["AST"], r["Ast"] = r.pop("ast"), 1
    report = check(tmp_path, rows)
    assert findings(report, "header_ambiguous") == [(None, None, "ast")]
    assert "'AST', 'Ast' all match 'ast'" in report.errors[0].message
    rows = base_rows(tmp_path)
    for r in rows:
        r["AST"] = 5000  # the exact 'ast' column wins; 'AST' stays an extra column
    with caplog.at_level(logging.WARNING):
        df = read_manifest(write_manifest(tmp_path, rows))
    assert df["ast"].tolist() == [30, 31, 32, 33, 34, 35] and "AST" in df.columns
    assert "kept as extra column(s): 'ast' is present too" in caplog.text


# --- 7. another separator is detected (and logged), decimal commas with it --------------------------------


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_separator_is_detected(tmp_path, capsys, caplog, sep, word):
    rows = base_rows(tmp_path)
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=sep)
        w.writeheader()
        w.writerows({k: str(v).replace(".", ",") if isinstance(v, float) else v for k, v in r.items()}
                    for r in rows)  # decimal commas
    with caplog.at_level(logging.INFO):
        report = validate_manifest(path)
    assert report.ok, report.format_text()
    assert f"columns separated by {word} ({sep!r}) (detected" in caplog.text
    assert read_manifest(path)["albumin"].tolist() == [r["albumin"] for r in rows]
    assert main(["validate", str(path)]) == 0 and "usable" in capsys.readouterr().out


def test_comma_manifest_with_semicolon_mask_lists_still_reads(tmp_path):
    rows = base_rows(tmp_path)
    make_png(tmp_path / "img/m.png", size=(32, 40))
    rows[0]["mask_path"] = "img/m.png; img/m.png"
    assert len(read_manifest(write_manifest(tmp_path, rows))) == 6


# --- 8. one unit rule: an error only when impossible in the declared unit --------------------------------


@pytest.mark.parametrize(("name", "value", "error"), [
    ("platelets", 50, None),  # 500 x10^9/L: high, possible
    ("platelets", 250, "looks like x10^9/L (= 25 x10^4/uL)"),
    ("albumin", 3.0, None),
    ("albumin", 6.0, None),  # borderline: a warning, not a refusal
    ("albumin", 38, "looks like g/L (= 3.8 g/dL)"),
    ("hemoglobin", 8.0, None),  # could be mmol/L, could be anaemia: borderline
    ("platelets", 0.05, "outside the plausible 0.1-150 x10^4/uL"),
])
def test_server_and_validator_share_one_rule(name, value, error):
    msg = check_lab(name, value)
    found = validate_labs(pd.DataFrame({name: [value]}))
    errors = [f for f in found if f.severity == "error"]
    if error is None:
        assert msg is None and errors == []
    else:
        assert msg is not None and error in msg
        assert [(f.code, f.column, f.row) for f in errors] == [("value_out_of_range", name, 2)]
        assert error in errors[0].message


@pytest.mark.parametrize(("name", "value", "hint"), [("platelets", 50, "x10^9/L"), ("albumin", 6.0, None),
                                                     ("hemoglobin", 8.0, "mmol/L")])
def test_borderline_values_warn(name, value, hint):
    found = validate_labs(pd.DataFrame({name: [value]}))
    assert [(f.severity, f.code, f.column) for f in found] == [("warning", "value_atypical", name)]
    assert (hint is None) == ("if entered in" not in found[0].message)
    if hint is not None:
        assert f"if entered in {hint}" in found[0].message


def test_small_cohort_is_judged_per_value_large_one_by_its_median(tmp_path):
    few = validate_labs(pd.DataFrame({"platelets": [40.0, 50.0, 60.0]}))  # 3 values: no median verdict
    assert {f.code for f in few if f.severity == "error"} == set()
    many = validate_labs(pd.DataFrame({"platelets": [150.0, 170.0, 180.0, 200.0, 250.0]}))
    assert [(f.code, f.column) for f in many if f.severity == "error"] == [("unit_suspect", "platelets")]
