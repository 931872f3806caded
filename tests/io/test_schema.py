"""read_manifest, unit conversions, labels, line numbers and the manifest hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liver_mm.dictionary import default_dictionary
from liver_mm.io.csvread import read_csv_table
from liver_mm.io.schema import (
    MODEL_COLUMNS,
    NON_NUMERIC_ATTR,
    ManifestError,
    convert_units,
    label_to_int,
    line_numbers,
    manifest_hash,
    read_manifest,
    read_raw_table,
)
from liver_mm.stats import encode_labels
from tests.cohort.test_validate import make_png

MANIFEST = """ platelets , case_id,label ,image_path,sex,albumin,bbox_x0,bbox_y0,bbox_x1,bbox_y1,patient_id,note
150, c1 , Benign,img/a.png,female,38,1,2,10,12,p1,first

210,c2,malignant,/abs/b.png, M ,NA,1,2,10,12,p2,
99,c3,malignant,img/c.png,x,41,0,0,5,oops,p3,"two
lines"
"""


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "m.csv").write_text(MANIFEST)
    return tmp_path / "m.csv"


def test_read_manifest_normalises(manifest, tmp_path):
    df = read_manifest(manifest, units={"platelets": "x10^9/L", "albumin": "g/L"})
    assert list(df.columns)[:3] == ["platelets", "case_id", "label"] and "note" in df.columns
    assert list(df["case_id"]) == ["c1", "c2", "c3"]
    assert list(df["label"]) == ["benign", "malignant", "malignant"]
    assert df["sex"].tolist() == ["F", "M", "x"]  # unknown codes kept for the validator
    assert df["image_path"].tolist() == [str(tmp_path / "img/a.png"), "/abs/b.png", str(tmp_path / "img/c.png")]
    np.testing.assert_allclose(df["platelets"], [15.0, 21.0, 9.9])
    np.testing.assert_allclose(df["albumin"], [3.8, np.nan, 4.1])
    assert line_numbers(df).tolist() == [2, 4, 5]  # blank line 3 skipped
    assert line_numbers(df[df["case_id"] == "c3"]).tolist() == [5]
    assert df.attrs[NON_NUMERIC_ATTR] == {"bbox_y1": {2: "oops"}}


def test_unit_conversions():
    cases = [("albumin", "g/L", 40.0, 4.0), ("platelets", "/uL", 200_000, 20.0), ("platelets", "10^9/L", 200, 20.0),
             ("hemoglobin", "g/L", 130, 13.0), ("wbc", "/uL", 6500, 6.5), ("ast", "µkat/L", 0.5, 30.0),
             ("age", "months", 600, 50.0), ("alt", "IU/L", 30, 30.0)]
    for col, unit, raw, canonical in cases:
        out = convert_units(pd.DataFrame({col: [raw]}), {col: unit})
        assert out[col].iloc[0] == pytest.approx(canonical), (col, unit)


@pytest.mark.parametrize("units", [{"albumin": "mg"}, {"sex": "g/L"}, {"tumour_size": "cm"}])
def test_unknown_units_raise(manifest, units):
    with pytest.raises(ManifestError) as exc:
        read_manifest(manifest, units=units)
    assert exc.value.code == "unit_unknown" and exc.value.column == next(iter(units))


def test_bbox_from_union_of_masks(tmp_path):
    a, b = np.zeros((30, 40), np.uint8), np.zeros((30, 40), np.uint8)
    a[5:10, 6:12] = 255
    b[8:20, 10:30] = 1
    make_png(tmp_path / "m/a.png", pixels=a)
    make_png(tmp_path / "m/b.png", pixels=b)
    (tmp_path / "x.csv").write_text("case_id,image_path,mask_path\nc1,i.png,m/a.png; m/b.png\nc2,i.png,m/gone.png\n")
    df = read_manifest(tmp_path / "x.csv")
    assert df.loc[0, ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].tolist() == [6, 5, 30, 20]
    assert df.loc[0, "mask_path"] == f"{tmp_path / 'm/a.png'};{tmp_path / 'm/b.png'}"
    assert df.loc[1, ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].isna().all()  # left to the validator


@pytest.mark.parametrize(("text", "where"), [("", "empty"), ("a,a\n1,2\n", "line 1: duplicate column(s) a"),
                                             ("a,b\n1,2\n1,2,3\n", "line 3: 3 fields"),
                                             ("a,\n1,2\n", "empty column name")])
def test_unreadable_manifests(tmp_path, text, where):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ManifestError, match="m.csv") as exc:
        read_manifest(tmp_path / "m.csv")
    assert where in str(exc.value)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.csv")


def test_surplus_empty_fields_are_an_error(tmp_path):
    # an empty surplus field is how '12,5,' (a decimal comma, last column empty) looks: never dropped
    (tmp_path / "m.csv").write_text("case_id,label\nc1,benign,,\n")
    with pytest.raises(ManifestError, match=r"m.csv, line 2: 4 fields but the header names 2: quote values "
                                            "holding ',', or delete the surplus separators"):
        read_manifest(tmp_path / "m.csv")


def test_label_to_int_is_the_stats_encoding():
    assert label_to_int is encode_labels  # one label encoding in the package
    np.testing.assert_array_equal(label_to_int(["benign", "malignant", " Malignant"]), [0, 1, 1])
    with pytest.raises(ValueError, match=r"row 1 \(0-based\) has 'cyst'"):
        label_to_int(["benign", "cyst", 1])


def test_manifest_hash_ignores_order_and_whitespace(tmp_path):
    (tmp_path / "a.csv").write_text("case_id,age\nc1,50\nc2,60\n")
    (tmp_path / "b.csv").write_text("age , case_id\n\n60,c2\n 50 ,c1\n")
    (tmp_path / "c.csv").write_text("case_id,age\nc1,50\nc2,61\n")
    assert manifest_hash(tmp_path / "a.csv") == manifest_hash(tmp_path / "b.csv")
    assert manifest_hash(tmp_path / "a.csv") != manifest_hash(tmp_path / "c.csv")


def test_schema_tables_are_consistent():
    for name, spec in default_dictionary().variables.items():
        assert spec.name == name
        if spec.kind == "continuous":
            assert spec.plausible[0] <= spec.typical[0] < spec.typical[1] <= spec.plausible[1]
            assert all(spec.factor(u) > 0 for u in spec.accepted_units)
    assert MODEL_COLUMNS["m5"] == ("age", "sex", "ast", "alt", "platelets", "albumin")


def test_csv_table_renames_only_the_given_known_columns(tmp_path):
    """The generic reader matches headers against the columns it is given; schema gives the manifest's."""
    (tmp_path / "t.csv").write_text("Case_ID,AST,Note\n c1 , NA ,x\n\nc2,40,\n")
    plain = read_csv_table(tmp_path / "t.csv")
    assert plain.columns.tolist() == ["Case_ID", "AST", "Note"] and plain.index.tolist() == [2, 4]
    assert plain.loc[2, "Case_ID"] == "c1" and pd.isna(plain.loc[2, "AST"]) and pd.isna(plain.loc[4, "Note"])
    assert read_csv_table(tmp_path / "t.csv", ["ast"]).columns.tolist() == ["Case_ID", "ast", "Note"]
    assert read_raw_table(tmp_path / "t.csv").columns.tolist() == ["case_id", "ast", "Note"]
