"""import-folder on a generated BUSI-style folder: layouts, multi-mask union, unmapped classes, labs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.cohort.validate import validate_manifest
from liver_mm.io.importers import import_folder
from liver_mm.io.schema import read_manifest
from tests.cohort.test_validate import make_png

BOX = ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]


def mask(y0: int, y1: int, x0: int, x1: int, shape=(32, 40)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


@pytest.fixture
def busi(tmp_path: Path) -> Path:
    """benign/ uses images/ + mask/ sub-folders; Malignant/ keeps masks beside the images."""
    root = tmp_path / "busi"
    make_png(root / "benign/images/b1.png", seed=1)
    make_png(root / "benign/mask/b1_mask.png", pixels=mask(2, 10, 3, 12))
    make_png(root / "benign/images/b 2.png", seed=2)
    make_png(root / "benign/mask/b 2_mask.png", pixels=mask(4, 8, 5, 9))
    make_png(root / "benign/mask/b 2_mask_1.png", pixels=mask(15, 25, 20, 30))  # second lesion mask
    make_png(root / "Malignant/m1.png", seed=3)
    make_png(root / "Malignant/m1_mask.png", pixels=mask(4, 20, 6, 30))
    make_png(root / "Malignant/m2.png", seed=4)  # no mask: skipped
    make_png(root / "Malignant/zz_mask.png", pixels=mask(1, 5, 1, 5))  # no image: orphan
    make_png(root / "normal/n1.png", seed=5)
    make_png(root / "normal/n1_mask.png", pixels=mask(0, 1, 0, 1))
    return root


def test_import_default_classes(busi, tmp_path):
    out = tmp_path / "out/manifest.csv"
    res = import_folder(busi, out)
    df = pd.read_csv(out, dtype={"case_id": str})
    assert df["case_id"].tolist() == ["Malignant/m1", "benign/b 2", "benign/b1"]
    assert df["patient_id"].tolist() == df["case_id"].tolist()
    assert df["label"].tolist() == ["malignant", "benign", "benign"]
    b2 = df.set_index("case_id").loc["benign/b 2"]
    assert b2[BOX].tolist() == [5, 4, 30, 25]  # union of both masks
    assert b2["mask_path"] == "../busi/benign/mask/b 2_mask.png;../busi/benign/mask/b 2_mask_1.png"
    assert b2["image_path"] == "../busi/benign/images/b 2.png"
    assert res.skipped_folders == {"normal": 1}
    assert res.no_mask == ["Malignant/m2.png"] and res.orphan_masks == ["Malignant/zz_mask.png"]
    report = validate_manifest(out)
    assert report.ok, report.format_text()
    assert report.codes("warning") <= {"missing_clinical_column"}


def test_class_mapping_and_clinical_join(busi, tmp_path):
    labs = tmp_path / "labs.csv"
    pd.DataFrame({"file": ["benign/b1", "Malignant/m1", "other/x"], "patient_id": ["P7", "P7", "P9"],
                  "age": [61, 62, 40], "sex": ["male", "M", "F"], "ast": [40, 80, 20], "alt": [35, 60, 20],
                  "platelets": [120, 90, 200], "albumin": [40, 33, 45]}).to_csv(labs, index=False)
    out = tmp_path / "m.csv"
    res = import_folder(busi, out, classes={"benign": "benign", "Malignant": "malignant", "normal": "benign"},
                        clinical=labs, on="file", units={"platelets": "x10^9/L", "albumin": "g/L"})
    df = read_manifest(out).set_index("case_id")
    assert len(df) == 4 and df.loc["normal/n1", "label"] == "benign"
    assert df.loc["benign/b1", "patient_id"] == "P7" and df.loc["benign/b 2", "patient_id"] == "benign/b 2"
    assert df.loc["Malignant/m1", ["platelets", "albumin"]].tolist() == pytest.approx([9.0, 3.3])
    assert res.missing_labs == ["benign/b 2", "normal/n1"] and res.unused_labs == ["other/x"]
    assert "file" not in df.columns
    report = validate_manifest(out)
    assert report.ok, report.format_text()
    assert {"missing_values"} <= report.codes("warning")


def test_cli_import_folder(busi, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    assert main(["import-folder", str(busi), "--out", str(out), "--class", "Malignant=malignant"]) == 0
    text = capsys.readouterr().out
    assert "wrote 1 cases (0 benign, 1 malignant)" in text and "benign (2 images)" in text
    assert main(["validate", str(out)]) == 0
    assert main(["import-folder", str(busi), "--out", str(out), "--class", "benign=cyst"]) == 1
    assert "benign/malignant" in capsys.readouterr().err
    assert main(["import-folder", str(busi), "--out", str(out), "--clinical", str(busi / "nope.csv")]) == 1


def test_duplicate_keys_in_clinical_table(busi, tmp_path):
    labs = tmp_path / "labs.csv"
    labs.write_text("case_id,age\nbenign/b1,50\nbenign/b1,51\n")
    with pytest.raises(ValueError, match=r"labs.csv, lines 2, 3: duplicate case_id"):
        import_folder(busi, tmp_path / "m.csv", clinical=labs)
