"""Validation against a user's data dictionary, through the real ``liver-mm validate --dictionary``:
unknown categories with a close match (file, line, column, value), case / space normalisation noted,
missing tokens, ranges, variables absent from the table naming their steps, a bad dictionary named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.features.test_tabular_kinds import DICTIONARY

HEADER = "case_id,patient_id,image_path,label,bbox_x0,bbox_y0,bbox_x1,bbox_y1,age,shape,margin,birads\n"
ROWS = [
    "c1,p1,a.png,benign,0,0,4,4,50,oval,circumscribed,2",
    "c2,p2,b.png,malignant,0,0,4,4,not available,irregullar,angular&indistinct,4c",
    "c3,p3,c.png,benign,0,0,4,4,130, Round ,Circumscribed,3",
    "c4,p4,d.png,malignant,0,0,4,4,61,irregular,angular & spiculated,6",
]


def run(tmp_path: Path, rows: list[str], dictionary: str = DICTIONARY, header: str = HEADER
        ) -> subprocess.CompletedProcess:
    (tmp_path / "d.yaml").write_text(dictionary, encoding="utf-8")
    (tmp_path / "m.csv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "liver_mm.cli", "validate", str(tmp_path / "m.csv"), "--no-images",
                           "--json", "--dictionary", str(tmp_path / "d.yaml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_categories_ranges_and_notes(tmp_path: Path) -> None:
    res = run(tmp_path, ROWS)
    assert res.returncode == 1, res.stderr
    errors = [(e["row"], e["column"], e["code"], e["message"]) for e in json.loads(res.stdout)["errors"]]
    assert errors == [
        (3, "shape", "category_unknown", "shape = 'irregullar' is not a declared category (oval, round, irregular) "
         "(did you mean 'irregular'?): correct it, or declare it in the dictionary's variables.shape.categories"),
        (5, "margin", "category_unknown", "margin = 'spiculated' is not a declared category (circumscribed, "
         "indistinct, angular): correct it, or declare it in the dictionary's variables.margin.categories"),
        (5, "birads", "category_unknown", "birads = '6' is not a declared category (2, 3, 4a, 4b, 4c, 5): correct "
         "it, or declare it in the dictionary's variables.birads.categories"),
        (4, "age", "value_out_of_range", "age = 130 years is outside the plausible 0-120 years: correct it (or "
         "leave it empty if unknown)"),
    ]
    # " Round " and "Circumscribed" are read as the declared categories, with a note; "not available" is missing
    assert "shape: 1 cell(s) read as the declared category" in res.stderr
    assert "margin: 2 cell(s) read as the declared category" in res.stderr  # and "angular & spiculated"
    warnings = {(w["column"], w["code"]) for w in json.loads(res.stdout)["warnings"]}
    assert ("age", "missing_values") in warnings


def test_variable_absent_names_its_steps(tmp_path: Path) -> None:
    header = HEADER.replace(",margin,birads\n", ",birads\n")
    rows = [",".join(r.split(",")[:10] + r.split(",")[11:]) for r in ROWS[:1]]
    res = run(tmp_path, rows, header=header)
    errors = [e["message"] for e in json.loads(res.stdout)["errors"]]
    assert any(m.startswith("variable 'margin' of the dictionary ") and m.endswith(
        "is not a column of the table; step(s) all need it") for m in errors), errors


def test_bad_dictionary_is_named(tmp_path: Path) -> None:
    res = run(tmp_path, ROWS, dictionary=DICTIONARY.replace("kind: ordinal", "kind: ordinall"))
    assert res.returncode == 2
    assert f"{tmp_path / 'd.yaml'}: variables.birads.kind: 'ordinall' is not a kind" in res.stderr


@pytest.mark.parametrize("value", ["OVAL", "  oval"])
def test_case_and_spaces_are_not_errors(tmp_path: Path, value: str) -> None:
    rows = [ROWS[0].replace(",oval,", f",{value},")]
    res = run(tmp_path, rows)
    assert not [e for e in json.loads(res.stdout)["errors"] if e["column"] == "shape"]
