"""Readers never guess: a decimal comma splitting a field in a comma CSV, a CSV record one field short, an .xlsx
formula without a computed value, an .xlsx header below row 1 are errors naming the file, line / cell and the
remedy."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from liver_mm.cli import main
from liver_mm.cohort.validate import validate_manifest
from liver_mm.io.dialect import make_options
from liver_mm.io.schema import ManifestError, read_manifest
from tests.cohort.test_validate import base_rows, write_manifest
from tests.io.test_dialect import write_sep, write_xlsx


def test_decimal_comma_with_empty_last_column_is_an_error(tmp_path, capsys):
    rows = base_rows(tmp_path)  # ... platelets, albumin: the last column
    for r in rows[2:4]:
        r["albumin"] = ""
    path = write_manifest(tmp_path, rows)
    lines = path.read_text().splitlines()
    assert lines[3].endswith(",17.0,")  # case c2: platelets 17.0, albumin empty
    lines[3] = lines[3].removesuffix(",17.0,") + ",12,5,"  # platelets 12,5 unquoted
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value).startswith(
        f"{path}, line 4: 16 fields but the header names 15: a number with a decimal comma splits into two fields "
        "in a comma CSV (candidates: 'platelets 12,5'); quote it (\"12,5\")")
    assert "pass --sep ';' --decimal ','" in str(exc.value)
    report = validate_manifest(path)
    assert [(f.code, f.message) for f in report.errors] == [("manifest_unreadable", str(exc.value))]
    lines[3] = lines[3].replace(",12,5,", ',"12,5",')  # quoted: one value, named by the validator
    path.write_text("\n".join(lines) + "\n")
    assert [(f.row, f.column, f.code) for f in validate_manifest(path).errors] == [
        (4, "platelets", "value_not_numeric")]
    assert main(["validate", str(path)]) == 1
    capsys.readouterr()


@pytest.mark.parametrize(("sep", "name", "shown"), [(",", "m.csv", "','"), (";", "semi.csv", "';'"),
                                                   ("\t", "tab.tsv", "tab")])
def test_a_record_with_a_missing_field_is_an_error(tmp_path, capsys, sep, name, shown):
    """Was: padded at the end, so c1's albumin 3.7 was read as its platelets (in range) and albumin as missing."""
    path = write_manifest(tmp_path, base_rows(tmp_path)) if sep == "," else write_sep(tmp_path, base_rows(tmp_path),
                                                                                      sep, name)
    lines = path.read_text().splitlines()
    fields = lines[2].split(sep)  # case c1: ..., platelets, albumin
    assert len(fields) == 15 and fields[0] == "c1"
    lines[2] = sep.join([*fields[:13], fields[14]])  # platelets' field deleted
    path.write_text("\n".join(lines) + "\n")
    msg = (f"{path}, line 3: 14 fields but the header names 15: 1 separator(s) missing, so the values after a gap "
           f"would move left into the wrong columns (the last value, {fields[14]!r}, would be read as platelets; "
           f"albumin left empty); write an empty value as an empty field (two {shown} in a row)")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == msg
    assert [(f.code, f.message) for f in validate_manifest(path).errors] == [("manifest_unreadable", msg)]
    assert main(["validate", str(path)]) == 1
    assert msg in capsys.readouterr().out


def test_a_trailing_empty_field_and_a_short_spreadsheet_row_are_empty_values(tmp_path):
    """``...,16.0,`` holds 15 fields, the last one empty; an .xlsx row has no field count (its cells sit in their
    columns), so the cells after its last filled one are empty, never shifted."""
    rows = base_rows(tmp_path)
    rows[1]["albumin"] = ""
    path = write_manifest(tmp_path, rows)
    assert path.read_text().splitlines()[2].endswith(",16.0,")
    df = read_manifest(path).set_index("case_id")
    assert df.at["c1", "platelets"] == 16.0 and np.isnan(df.at["c1", "albumin"])
    wb = load_workbook(write_xlsx(tmp_path, base_rows(tmp_path)))
    for col in ("N", "O"):  # platelets, albumin of case c1 (row 3)
        wb.active[f"{col}3"] = None
    wb.save(tmp_path / "short.xlsx")
    df = read_manifest(tmp_path / "short.xlsx").set_index("case_id")
    assert df.loc["c1", ["platelets", "albumin"]].isna().all() and df.at["c2", "albumin"] == 3.8


def test_split_number_filling_a_text_column_is_an_error(tmp_path):
    rows = base_rows(tmp_path)
    for r in rows:
        r["diagnostic_basis"] = "histology"  # a text column after albumin
    rows[1]["diagnostic_basis"] = ""
    path = write_manifest(tmp_path, rows)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].removesuffix(",3.7,") + ",3,7"  # albumin 3,7 unquoted, basis left empty
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == (
        f"{path}, line 3, column diagnostic_basis: '7' is a number in a text column, right after albumin = '3': "
        "is 3,7 one number with a decimal comma? Quote it (\"3,7\"), write it with a point, or save with ';' "
        "separators and pass --sep ';' --decimal ','")


def test_numbers_in_checked_or_coded_text_columns_are_left_to_the_validator(tmp_path):
    rows = base_rows(tmp_path)  # age, sex: a stray sex code right after a whole number
    rows[1]["sex"] = "1"
    for r in rows:
        r["diagnostic_basis"] = str(7 + len(r["case_id"]))  # a numeric free-text column: codes, not splits
    path = write_manifest(tmp_path, rows)
    assert [(f.row, f.column, f.code) for f in validate_manifest(path).errors] == [(3, "sex", "sex_unknown")]
    df = read_manifest(path, options=make_options(maps={"sex": {"1": "M"}}))
    assert df["sex"].tolist() == list("FMFMFM") and df["diagnostic_basis"].tolist() == ["9"] * 6


def _formula_workbook(tmp_path: Path) -> Path:
    path = write_xlsx(tmp_path, base_rows(tmp_path))
    wb = load_workbook(path)
    ws = wb.active
    assert ws["L4"].value == 32  # ast of case c2
    ws["L4"] = "=M4+5"  # openpyxl stores the formula and never a computed value
    wb.save(path)
    return path


def test_xlsx_formula_without_value_is_an_error_naming_the_cell(tmp_path, capsys):
    path = _formula_workbook(tmp_path)
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == (f"{path}: cell Sheet1!L4 holds the formula '=M4+5' but no computed value (the file "
                              "was not saved by a spreadsheet program): open and save in Excel, or export values")
    assert main(["validate", str(path)]) == 1
    assert "cell Sheet1!L4 holds the formula" in capsys.readouterr().out


def test_xlsx_formula_with_cached_value_is_read(tmp_path):
    path = write_xlsx(tmp_path, base_rows(tmp_path))
    with zipfile.ZipFile(path) as z:  # a cached value next to its formula, as Excel saves it
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet, n = re.subn(r'(<c r="L4"[^>]*>)(<v>)', r"\1<f>M4+5</f>\2", sheet)
    assert n == 1
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    assert load_workbook(path)["Sheet1"]["L4"].value == "=M4+5"
    assert read_manifest(path).set_index("case_id").loc["c2", "ast"] == 32.0


def test_xlsx_header_below_row_1(tmp_path, capsys):
    path = write_xlsx(tmp_path, base_rows(tmp_path))
    wb = load_workbook(path)
    wb.active.insert_rows(1, 2)
    wb.active["A1"] = "Liver cohort export 2024"
    wb.save(path)
    msg = (f"header row not found in row 1 of {path} (sheet Sheet1): found the columns case_id, patient_id, "
           "image_path, bbox_x0, bbox_y0, bbox_x1 on row 3; delete the rows above the header")
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == msg
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert msg in out and "separator" not in out
    wb.active.delete_rows(3)  # no header anywhere: the title, then the data
    wb.save(path)
    with pytest.raises(ManifestError) as exc:
        read_manifest(path)
    assert str(exc.value) == (f"header row not found in row 1 of {path} (sheet Sheet1): row 1 names none of the "
                              "expected columns (case_id, patient_id, image_path, label, ...); the header must "
                              "be on row 1")


def test_the_dictionarys_category_columns_are_text_to_the_decimal_mark(tmp_path):
    """A ';' table with decimal commas: the dictionary's ordinal ``grade`` (categories 1, "1,5", 2) keeps its
    "1,5" cells as written, as the shipped ``sex`` column is text; the continuous ``age`` gets its point."""
    from liver_mm.dictionary import load_dictionary
    from liver_mm.io.schema import read_manifest, text_columns

    d_path = tmp_path / "d.yaml"
    d_path.write_text('variables:\n  age: {kind: continuous, unit: years}\n'
                      '  grade: {kind: ordinal, categories: ["1", "1,5", "2"], aliases: [Grade]}\n')
    d = load_dictionary(d_path)
    assert text_columns(d) >= {"grade", "Grade"} and "age" not in text_columns(d)
    path = tmp_path / "m.csv"
    path.write_text("case_id;patient_id;image_path;label;age;Grade\nc1;p1;a.png;benign;55,5;1,5\n"
                    "c2;p2;b.png;malignant;61,25;2\nc3;p3;c.png;benign;40,5;1\n")
    df = read_manifest(path, dictionary=d)
    assert df["grade"].tolist() == ["1,5", "2", "1"] and df["age"].tolist() == [55.5, 61.25, 40.5]
