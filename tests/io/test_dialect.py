"""One cohort as comma CSV, .xlsx, ';' / tab CSV with decimal commas: the same findings; ambiguity is an error."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.cohort.validate import validate_manifest
from liver_mm.io.dialect import TableOptions, make_options
from liver_mm.io.schema import ManifestError, manifest_hash, read_manifest
from tests.cohort.test_validate import base_rows, write_manifest


def _flawed_rows(tmp_path: Path) -> list[dict[str, object]]:
    """base_rows with findings of several kinds: a bad label, a missing ast, an impossible albumin."""
    rows = base_rows(tmp_path)
    rows[1]["label"] = "unknown"
    rows[2]["ast"] = ""
    rows[3]["albumin"] = 9.5
    return rows


def write_sep(root: Path, rows: list[dict[str, object]], sep: str, name: str) -> Path:
    """The rows separated by ``sep`` with decimal commas."""
    with open(root / name, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=sep)
        w.writeheader()
        w.writerows({k: str(v).replace(".", ",") if isinstance(v, float) else v for k, v in r.items()}
                    for r in rows)
    return root / name


def write_xlsx(root: Path, rows: list[dict[str, object]], name: str = "manifest.xlsx") -> Path:
    df = pd.DataFrame(rows).replace("", None)
    df.to_excel(root / name, index=False, engine="openpyxl")
    return root / name


def test_same_findings_in_every_format(tmp_path, capsys):
    rows = _flawed_rows(tmp_path)
    paths = [write_manifest(tmp_path, rows), write_xlsx(tmp_path, rows),
             write_sep(tmp_path, rows, ";", "semi.csv"), write_sep(tmp_path, rows, "\t", "tab.tsv")]
    reports = [validate_manifest(p) for p in paths]
    expected = reports[0].to_dict()
    assert {(e["row"], e["column"], e["code"]) for e in expected["errors"]} >= {
        (3, "label", "label_invalid"), (5, "albumin", "value_out_of_range")}
    for report in reports[1:]:
        assert report.to_dict() == expected, report.source
    frames = [read_manifest(p) for p in paths]
    for df in frames[1:]:
        assert df["albumin"].tolist() == frames[0]["albumin"].tolist()  # 3,7 -> 3.7
        assert df["ast"].isna().tolist() == frames[0]["ast"].isna().tolist()
    # the same content whatever the dialect (a spreadsheet stores 15.0 as the number 15: its text differs)
    assert len({manifest_hash(p) for p in paths[::2] + paths[3:]}) == 1
    for p in paths:
        assert main(["validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert out.count("label 'unknown' is not benign/malignant") == 4


def test_detection_is_logged(tmp_path, caplog):
    path = write_sep(tmp_path, base_rows(tmp_path), ";", "semi.csv")
    with caplog.at_level("INFO"):
        assert validate_manifest(path).ok
    assert "columns separated by semicolons (';') (detected" in caplog.text
    assert "found ';' separators and decimal commas (e.g. '15,0', line 2, column platelets)" in caplog.text


def test_ambiguous_comma_is_an_error_naming_the_remedy(tmp_path, capsys):
    rows = base_rows(tmp_path)
    rows[2]["platelets"] = 1.5  # written 1,5 ...
    path = write_sep(tmp_path, rows, ";", "semi.csv")
    path.write_text(path.read_text().replace("1,5", "1,500"))  # ... now 1,500: 1.5 or 1500?
    report = validate_manifest(path)
    assert report.codes("error") == {"manifest_separator"}
    msg = report.errors[0].message
    assert f"{path}, line 4, column platelets: '1,500' may be a decimal comma or a thousands separator" in msg
    assert "found ';' separators and decimal commas; pass --sep ';' --decimal ','" in msg
    assert main(["validate", str(path), "--sep", ";", "--decimal", ","]) == 0
    capsys.readouterr()
    df = read_manifest(path, options=make_options(sep=";", decimal=","))
    assert df.loc[2, "platelets"] == 1.5


def test_mixed_decimal_marks_and_points_under_comma(tmp_path):
    rows = base_rows(tmp_path)
    path = write_sep(tmp_path, rows, ";", "semi.csv")
    text = path.read_text().replace("3,8", "3.8")  # one albumin written with a point
    path.write_text(text)
    with pytest.raises(ManifestError, match=r"found ';' separators with both decimal commas \('15,0', line 2, column platelets\) and points "
                                            r"\('3.8', line 4, column albumin\)"):
        read_manifest(path)
    with pytest.raises(ManifestError, match=r"line 4, column albumin: '3.8' has a point but the decimal mark is ','"):
        read_manifest(path, options=TableOptions(decimal=","))


def test_declared_separator_and_bad_options(tmp_path, capsys):
    path = write_sep(tmp_path, base_rows(tmp_path), "|", "pipe.csv")
    assert main(["validate", str(path), "--sep", "|"]) == 0
    assert main(["validate", str(path), "--sep", "tab"]) == 1  # declared wrongly: one column, named
    assert "required column 'case_id' is missing" in capsys.readouterr().out
    with pytest.raises(ValueError, match="separator ':' not supported"):
        make_options(sep=":")


def test_xlsx_numbers_and_rows(tmp_path):
    rows = base_rows(tmp_path)
    rows[4]["ast"] = "<5"  # text in a spreadsheet cell
    path = write_xlsx(tmp_path, rows)
    df = read_manifest(path)
    assert df["age"].tolist() == [50, 53, 56, 59, 62, 65] and df["albumin"].tolist()[:2] == [3.6, 3.7]
    found = [(f.row, f.column, f.code) for f in validate_manifest(path).errors]
    assert found == [(6, "ast", "value_censored")]  # spreadsheet row 6 = the fifth data row
