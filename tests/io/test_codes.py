"""Censored lab cells and code mappings: refused by default with file/row/column and remedy, read when declared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.cohort.split import prepare_split
from liver_mm.cohort.validate import validate_manifest
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.io.codes import check_maps, parse_map
from liver_mm.io.dialect import make_options, options_from_config
from liver_mm.io.importers import import_folder
from liver_mm.io.schema import read_manifest
from tests.cohort.test_validate import base_rows, write_manifest
from tests.io.test_dialect import write_sep
from tests.io.test_importers import busi  # noqa: F401  (fixture)

LIMIT = make_options(censored="limit")


def test_censored_refused_by_default_naming_file_row_column(tmp_path, capsys):
    rows = base_rows(tmp_path)
    rows[2]["ast"] = "< 5"
    rows[4]["alt"] = ">1000"
    path = write_manifest(tmp_path, rows)
    report = validate_manifest(path)
    assert [(f.row, f.column, f.code) for f in report.errors] == [(4, "ast", "value_censored"),
                                                                  (6, "alt", "value_censored")]
    text = str(report.errors[0])
    assert text.startswith(f"ERROR [value_censored] {path}, line 4 (case c2, column ast): ast = '< 5' is censored "
                           "(below the assay's limit 5 U/L)")
    assert "Pass --censored limit (config data.censored: limit) to use 5 and mark the cell in ast_censored = 1" in text
    assert main(["validate", str(path)]) == 1 and "line 4 (case c2, column ast)" in capsys.readouterr().out
    assert main(["validate", str(path), "--censored", "limit"]) == 0


def test_censored_limit_substitutes_and_flags(tmp_path):
    rows = base_rows(tmp_path)
    rows[2]["ast"] = "< 5"
    rows[4]["alt"] = ">1000"
    df = read_manifest(write_manifest(tmp_path, rows), options=LIMIT)
    assert df.loc[2, "ast"] == 5.0 and df.loc[4, "alt"] == 1000.0
    assert df["ast_censored"].tolist() == [0, 0, 1, 0, 0, 0] and df["alt_censored"].tolist() == [0, 0, 0, 0, 1, 0]
    assert list(df.columns).index("ast_censored") == list(df.columns).index("ast") + 1
    assert "platelets_censored" not in df.columns  # only labs holding a censored cell get an indicator


def test_censored_decimal_comma(tmp_path):
    rows = base_rows(tmp_path)
    rows[1]["albumin"] = "<1,5"
    rows[3]["albumin"] = 3.9
    path = write_sep(tmp_path, rows, ";", "semi.csv")
    df = read_manifest(path, options=make_options(decimal=",", censored="limit"))
    assert df.loc[1, "albumin"] == 1.5 and df.loc[3, "albumin"] == 3.9 and df.loc[1, "albumin_censored"] == 1


def test_split_copy_keeps_what_the_options_read(tmp_path):
    rows = base_rows(tmp_path)
    for r in rows:
        del r["split"]
        r["sex"] = {"F": "2", "M": "1"}[r["sex"]]
    rows[2]["ast"] = "<5"
    path = write_manifest(tmp_path, rows)
    opts = make_options(censored="limit", maps={"sex": {"1": "M", "2": "F"}})
    res = prepare_split(path, tmp_path / "split/manifest.csv", fractions=(1 / 3, 1 / 3, 1 / 3), options=opts)
    copy = read_manifest(res.path)  # no options needed any more
    assert copy["sex"].tolist() == list("FMFMFM") and copy.loc[2, "ast"] == 5.0
    assert copy["ast_censored"].tolist() == [0, 0, 1, 0, 0, 0]


def test_tabular_uses_the_indicator_when_a_training_cell_was_censored():
    train = pd.DataFrame({"ast": [5.0, 40.0, 80.0, 5.0], "ast_censored": [1, 0, 0, 0], "alt": [1.0, 2.0, 3.0, 4.0]})
    pre = TabularPreprocessor(["ast", "alt"]).fit(train)
    assert pre.feature_names_out == ["ast", "alt", "ast_censored"]
    x = pre.transform(train)
    assert x[:, 2].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert pre.transform(train.drop(columns="ast_censored"))[:, 2].tolist() == [0.0] * 4  # absent -> 0
    back = TabularPreprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(back.transform(train), x)
    plain = TabularPreprocessor(["ast"]).fit(train.assign(ast_censored=0))
    assert plain.feature_names_out == ["ast"]  # no censored training cell: no extra input
    old = plain.to_dict()
    del old["stats"]["ast"]["censored"]  # a bundle saved before censored indicators existed
    assert TabularPreprocessor.from_dict(old).feature_names_out == ["ast"]


def test_numeric_sex_needs_a_declared_map(tmp_path, capsys):
    rows = base_rows(tmp_path)
    for r in rows:
        r["sex"] = {"F": "2", "M": "1"}[r["sex"]]
    path = write_manifest(tmp_path, rows)
    report = validate_manifest(path)
    assert {(f.row, f.column, f.code) for f in report.errors} == {(i, "sex", "sex_unknown") for i in range(2, 8)}
    assert "declare what the codes mean with --map sex=1:F,2:M (check which is which" in report.errors[0].message
    assert main(["validate", str(path), "--map", "sex=1:M,2:F"]) == 0
    df = read_manifest(path, options=make_options(maps={"sex": {"1": "M", "2": "F"}}))
    assert df["sex"].tolist() == list("FMFMFM")
    rows[3]["sex"] = "9"
    path = write_manifest(tmp_path, rows)
    report = validate_manifest(path, options=make_options(maps={"sex": {"1": "M", "2": "F"}}))
    assert [(f.row, f.column, f.code) for f in report.errors] == [(5, "sex", "sex_unknown")]
    assert "sex code '9' is not F/M" in report.errors[0].message
    assert "the declared --map sex lists 1, 2 only: add this code" in report.errors[0].message
    capsys.readouterr()


def test_label_codes_need_a_declared_map(tmp_path, capsys):
    rows = base_rows(tmp_path)
    for r in rows:
        r["label"] = {"benign": "0", "malignant": "1"}[r["label"]]
    path = write_manifest(tmp_path, rows)
    report = validate_manifest(path)
    assert report.codes("error") == {"label_invalid", "split_empty_class"}
    assert "--map label=0:benign,1:malignant" in report.errors[0].message
    assert main(["validate", str(path), "--map", "label=0:benign,1:malignant"]) == 0
    capsys.readouterr()


def test_map_parsing_and_targets():
    assert parse_map("sex=1:M,2:F") == ("sex", {"1": "M", "2": "F"})
    with pytest.raises(ValueError, match="expected COLUMN=CODE:VALUE"):
        parse_map("sex=1M")
    with pytest.raises(ValueError, match="sex must map to one of F, M"):
        check_maps({"sex": {"1": "male"}})
    with pytest.raises(SystemExit):
        main(["validate", "x.csv", "--map", "sex"])


def test_import_folder_clinical_with_map_and_censored(busi, tmp_path):  # noqa: F811
    labs = tmp_path / "labs.csv"
    pd.DataFrame({"case_id": ["benign/b1", "Malignant/m1"], "sex": ["2", "1"], "ast": ["<10", "80"],
                  "alt": ["35", "60"]}).to_csv(labs, sep=";", index=False)
    out = tmp_path / "m.csv"
    assert main(["import-folder", str(busi), "--out", str(out), "--clinical", str(labs), "--censored", "limit",
                 "--map", "sex=1:M,2:F"]) == 0
    df = read_manifest(out).set_index("case_id")
    assert df.loc["benign/b1", ["sex", "ast", "ast_censored"]].tolist() == ["F", 10.0, 1]
    assert df.loc["Malignant/m1", ["sex", "ast", "ast_censored"]].tolist() == ["M", 80.0, 0]
    out2 = tmp_path / "m2.csv"
    import_folder(busi, out2, clinical=labs)  # censored kept as text: the validator refuses it
    assert ("ast", "value_censored") in {(f.column, f.code) for f in validate_manifest(out2).errors}


def test_a_code_mapped_twice_is_an_error(tmp_path, capsys):
    path = write_manifest(tmp_path, base_rows(tmp_path))
    with pytest.raises(ValueError, match=r"^--map sex=1:M,1:F: code '1' is mapped twice \(to M and to F\)"):
        parse_map("sex=1:M,1:F")
    with pytest.raises(SystemExit):
        main(["validate", str(path), "--map", "sex=1:M,1:F"])
    assert "--map sex=1:M,1:F: code '1' is mapped twice (to M and to F): map each code once" in capsys.readouterr().err
    assert main(["validate", str(path), "--map", "sex=1:M,2:F", "--map", "sex=1:F"]) == 2
    assert capsys.readouterr().err == "error: --map sex: code '1' is mapped twice (to M and to F): map each code once\n"
    assert parse_map("sex=1:M, 1:M,2:F") == ("sex", {"1": "M", "2": "F"})  # the same mapping twice: accepted
    assert main(["validate", str(path), "--map", "sex=1:M", "--map", "sex=1:M"]) == 0
    with pytest.raises(ValueError, match=r"^map sex: code '1' is mapped twice \(to M and to F\)"):
        options_from_config({"map": {"sex": {1: "M", "1": "F"}}})
    with pytest.raises(ValueError, match=r"^--map sex=1:M,1:F: code '1' is mapped twice"):
        options_from_config({"map": {"sex": "1:M,1:F"}})  # the text form, as in --map
    assert options_from_config({"map": {"sex": "1:M,2:F"}}).maps == {"sex": {"1": "M", "2": "F"}}
    capsys.readouterr()
