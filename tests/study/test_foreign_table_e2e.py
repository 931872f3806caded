"""The worked example of README "Data dictionary" end to end, as a new user types it (real ``liver-mm``
subprocesses; tiny sizes; results synthetic): a foreign lesion export (``experiments/foreign-table-cv/
make_table.py``: the team's own headers, ``not available`` / ``n/a`` cells, a few cells in another case, one
typo) -> ``liver-mm dictionary draft`` -> the reviewed dictionary (``experiments/foreign-table-cv/lesions.yaml``)
-> ``liver-mm validate --dictionary`` (the typo an error by line, case and column; fixed) -> ``liver-mm study
dictionary=... cv.folds=2``, whose report's Table 3 holds exactly the user's steps, in order, then the controls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "experiments" / "foreign-table-cv"
STEPS = ["image", "plus_age", "plus_descriptors", "plus_echo_halo_room"]
DRAFT_KINDS = {"age_years": "continuous", "shape": "categorical", "margin": "multi", "bi_rads": "ordinal",
               "echo_pattern": "categorical", "halo": "binary", "exam_room": "categorical"}
MANIFEST_COLUMNS = ["case_id", "patient_id", "image_path", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "label"]


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "liver_mm.cli", *args], cwd, timeout)


@pytest.mark.slow  # 6 arms x 2 folds on 160 lesions at 32 px, 1 epoch (4-9 minutes on 2 shared CPU cores)
def test_foreign_table_to_cross_validated_study(tmp_path: Path) -> None:
    made = _run([str(RECORD / "make_table.py"), "--out", "lesions", "--n", "160"], tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    table = tmp_path / "lesions" / "lesions_export.csv"
    raw = pd.read_csv(table, dtype=str, keep_default_na=False)

    # 1. the draft: a kind guessed per column, the missing word found, the manifest's columns left out
    draft = _cli("dictionary", "draft", "lesions/lesions_export.csv", "--out", "lesions.draft.yaml", cwd=tmp_path)
    assert draft.returncode == 0, draft.stderr
    text = (tmp_path / "lesions.draft.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert data["draft"] is True and data["missing"] == ["not available"]
    assert {n: v["kind"] for n, v in data["variables"].items()} == DRAFT_KINDS
    assert data["variables"]["age_years"]["aliases"] == ["Age (years)"]
    assert data["variables"]["margin"]["separator"] == "&"
    assert data["variables"]["bi_rads"]["categories"] == ["2", "3", "4a", "4b", "4c", "5"]
    assert sorted(data["variables"]["shape"]["categories"]) == ["irregular", "irregullar", "oval", "round"]
    assert [s["name"] for s in data["steps"]] == ["image", "clinical"]
    assert [f"#   {c}: a manifest column" in text for c in MANIFEST_COLUMNS] == [True] * len(MANIFEST_COLUMNS)

    # 2. the reviewed dictionary (the record's edit of the draft); validate finds the messy cells
    (tmp_path / "lesions.yaml").write_text((RECORD / "lesions.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    bad = _cli("validate", "lesions/lesions_export.csv", "--dictionary", "lesions.yaml", cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    n_age = int((raw["Age (years)"] == "not available").sum())
    out = bad.stdout.splitlines()
    assert out[0] == (
        "ERROR [category_unknown] lesions/lesions_export.csv, line 16 (case L0015, column shape): shape = "
        "'irregullar' is not a declared category (oval, round, irregular) (did you mean 'irregular'?): correct it, "
        "or declare it in the dictionary's variables.shape.categories")
    assert out[1].startswith(f"WARNING [missing_values] lesions/lesions_export.csv (column age): {n_age} of 160 "
                             "rows have no age (lines ")
    assert out[2].startswith("WARNING [missing_values] lesions/lesions_export.csv (column halo): 1 of 160 rows "
                             "have no halo (line 11)")
    assert out[-1] == "lesions/lesions_export.csv: 160 rows, 1 error(s), 2 warning(s) -> NOT usable"
    assert "shape: 2 cell(s) read as the declared category (case, spaces or a synonym), e.g. 'Oval' -> 'oval'" \
        in bad.stderr
    assert "birads: 1 cell(s) read as the declared category (case, spaces or a synonym), e.g. '4A' -> '4a'" \
        in bad.stderr
    assert "column 'Age (years)' read as the dictionary's variable 'age' (an alias)" in bad.stderr

    # the user corrects the typo; the table is usable
    table.write_text(table.read_text(encoding="utf-8").replace(",irregullar,", ",irregular,"), encoding="utf-8")
    good = _cli("validate", "lesions/lesions_export.csv", "--dictionary", "lesions.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1] == "lesions/lesions_export.csv: 160 rows, 0 error(s), 2 warning(s) -> usable"

    # 3. the cross-validated study of the user's steps
    study = _cli("study", "data=manifest", "data.manifest=lesions/lesions_export.csv", "dictionary=lesions.yaml",
                 "cv.folds=2", "study.name=breast_lesions", "image_size=32", "trainer.max_epochs=1",
                 "image_encoder=mobilenetv2_050", cwd=tmp_path, timeout=1800)
    assert study.returncode == 0, study.stderr[-3000:]
    out_dir = tmp_path / "outputs" / "studies" / "breast_lesions"
    summary = pd.read_csv(out_dir / "cv_summary.csv")
    assert list(summary["arm"]) == [*STEPS, "tab_mlp", "tab_logreg"]
    assert list(summary["n"]) == [160] * 6
    report = (out_dir / "report.md").read_text(encoding="utf-8")
    performance = report.split("### Performance", 1)[1].split("###", 1)[0]
    rows = [ln.split(" | ")[0].lstrip("| ") for ln in performance.splitlines() if ln.startswith("| ")][1:]
    assert rows == [*STEPS, "tab_mlp", "tab_logreg"]
    assert "Models: image → plus_age → plus_descriptors → plus_echo_halo_room → tab_mlp → tab_logreg." in report
    comp = pd.read_csv(out_dir / "cv_comparisons.csv")
    assert {(a, b) for a, b in zip(comp["a"], comp["b"], strict=True)} >= {
        ("image", "plus_age"), ("plus_age", "plus_descriptors"), ("plus_descriptors", "plus_echo_halo_room")}
