"""validate_manifest on small real cohorts: one test per kind of bad input, each asserting the
row (CSV line), case_id and column it names. Shared builders are imported by the other
test_validate_* modules."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liver_mm.cohort.validate import validate_manifest
from liver_mm.cohort.validate_report import ValidationReport

SPLIT_OF = ["train", "train", "dev", "dev", "test", "test"]
COLUMNS = ["case_id", "patient_id", "image_path", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "label",
           "split", "age", "sex", "ast", "alt", "platelets", "albumin"]


def make_png(path: Path, seed: int = 0, size: tuple[int, int] = (32, 40), pixels: np.ndarray | None = None) -> Path:
    """A small grayscale PNG of shape ``size`` = (H, W) (random texture unless ``pixels``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8) if pixels is None else pixels
    Image.fromarray(arr).save(path)
    return path


def base_rows(root: Path) -> list[dict[str, object]]:
    """Six valid nodules (benign/malignant in each of train/dev/test), images written under root/img."""
    rows = []
    for i in range(6):
        make_png(root / "img" / f"c{i}.png", seed=i)
        rows.append({"case_id": f"c{i}", "patient_id": f"p{i}", "image_path": f"img/c{i}.png",
                     "bbox_x0": 4, "bbox_y0": 5, "bbox_x1": 20, "bbox_y1": 22,
                     "label": ("benign", "malignant")[i % 2], "split": SPLIT_OF[i], "age": 50 + 3 * i,
                     "sex": "FM"[i % 2], "ast": 30 + i, "alt": 25 + 2 * i, "platelets": 15.0 + i,
                     "albumin": round(3.6 + 0.1 * i, 1)})
    return rows


def write_manifest(root: Path, rows: list[dict[str, object]], name: str = "manifest.csv") -> Path:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    with open(root / name, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return root / name


def findings(report: ValidationReport, code: str) -> list[tuple[int | None, str | None, str | None]]:
    """(row, case_id, column) of every finding with ``code``."""
    return [(f.row, f.case_id, f.column) for f in report.findings if f.code == code]


@pytest.fixture
def rows(tmp_path: Path) -> list[dict[str, object]]:
    return base_rows(tmp_path)


def check(tmp_path: Path, rows: list[dict[str, object]], **kw) -> ValidationReport:
    return validate_manifest(write_manifest(tmp_path, rows), **kw)


def test_valid_cohort_is_clean(tmp_path, rows):
    report = check(tmp_path, rows)
    assert report.ok and report.findings == [], report.format_text()


def test_truncated_png(tmp_path, rows):
    data = (tmp_path / "img/c2.png").read_bytes()
    (tmp_path / "img/c2.png").write_bytes(data[: len(data) // 2])
    report = check(tmp_path, rows)
    assert not report.ok
    assert findings(report, "image_unreadable") == [(4, "c2", "image_path")]


def test_missing_image_file(tmp_path, rows):
    rows[3]["image_path"] = "img/nope.png"
    report = check(tmp_path, rows)
    assert findings(report, "image_missing") == [(5, "c3", "image_path")]
    assert "nope.png" in report.errors[0].message


def test_mask_outside_and_size_mismatch(tmp_path, rows):
    big = np.zeros((32, 60), np.uint8)
    big[10:20, 45:55] = 255  # foreground right of the 40 px wide image
    small = np.zeros((30, 40), np.uint8)
    small[5:10, 5:10] = 255
    make_png(tmp_path / "img/c1_mask.png", pixels=big)
    make_png(tmp_path / "img/c4_mask.png", pixels=small)
    rows[1]["mask_path"], rows[4]["mask_path"] = "img/c1_mask.png", "img/c4_mask.png"
    report = check(tmp_path, rows)
    assert findings(report, "mask_outside") == [(3, "c1", "mask_path")]
    assert findings(report, "mask_size_mismatch") == [(6, "c4", "mask_path")]


def test_mask_gives_bbox_and_blank_mask_is_an_error(tmp_path, rows):
    mask = np.zeros((32, 40), np.uint8)
    mask[3:9, 2:7] = 1
    make_png(tmp_path / "img/m0.png", pixels=mask)
    make_png(tmp_path / "img/m1.png", pixels=np.zeros((32, 40), np.uint8))
    for i, m in ((0, "img/m0.png"), (1, "img/m1.png")):
        rows[i].update(mask_path=m, bbox_x0="", bbox_y0="", bbox_x1="", bbox_y1="")
    report = check(tmp_path, rows)
    assert findings(report, "mask_empty") == [(3, "c1", "mask_path")]
    assert findings(report, "bbox_missing") == []  # c0's box comes from its mask, c1's problem is the mask


@pytest.mark.parametrize(("box", "code"), [((4, 5, 41, 22), "bbox_outside"), ((-1, 5, 20, 22), "bbox_outside"),
                                           ((20, 5, 20, 22), "bbox_empty"), ((4, 30, 20, 22), "bbox_empty"),
                                           (("", "", "", ""), "bbox_missing"), ((4, "a", 20, 22), "bbox_invalid")])
def test_bad_bbox(tmp_path, rows, box, code):
    rows[2].update(zip(("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"), box, strict=True))
    report = check(tmp_path, rows)
    got = findings(report, code)
    assert len(got) == 1 and got[0][:2] == (4, "c2") and got[0][2].startswith("bbox_")
    assert not report.ok


def test_second_observer_box_outside_is_a_warning(tmp_path, rows):
    for r in rows:
        r.update(bbox2_x0=3, bbox2_y0=4, bbox2_x1=21, bbox2_y1=23)
    rows[5]["bbox2_x1"] = 99
    report = check(tmp_path, rows)
    assert report.ok and findings(report, "bbox_outside") == [(7, "c5", "bbox2_x0")]


def test_duplicate_case_id(tmp_path, rows):
    rows[4]["case_id"] = "c1"
    report = check(tmp_path, rows)
    assert findings(report, "duplicate_case_id") == [(6, "c1", "case_id")]
    assert "line 3" in next(f.message for f in report.errors if f.code == "duplicate_case_id")


@pytest.mark.parametrize("label", ["maybe", "1", ""])
def test_bad_label(tmp_path, rows, label):
    rows[1]["label"] = label
    report = check(tmp_path, rows)
    code = "missing_value" if label == "" else "label_invalid"
    assert (3, "c1", "label") in findings(report, code)


def test_labels_are_case_insensitive(tmp_path, rows):
    rows[1]["label"] = " Malignant "
    assert check(tmp_path, rows).ok


def test_missing_required_column(tmp_path, rows):
    for r in rows:
        del r["label"]
    report = check(tmp_path, rows)
    assert findings(report, "missing_column") == [(None, None, "label")]
    assert not report.ok


def test_missing_clinical_column_warns_unless_required(tmp_path, rows):
    for r in rows:
        del r["platelets"]
    report = check(tmp_path, rows)
    assert report.ok and findings(report, "missing_clinical_column") == [(None, None, "platelets")]
    # every modality set that uses it (conf/modalities), the clinical-only control included
    assert [f.message for f in report.findings if f.code == "missing_clinical_column"] == [
        "no 'platelets' column: modality set(s) m4, m5, tabular_only cannot be trained on this cohort"]
    report = check(tmp_path, rows, require_clinical=("age", "platelets"))
    assert findings(report, "missing_column") == [(None, None, "platelets")] and not report.ok


def test_identical_images_same_label_warn(tmp_path, rows):
    (tmp_path / "img/c2.png").write_bytes((tmp_path / "img/c0.png").read_bytes())  # both benign
    report = check(tmp_path, rows)
    assert findings(report, "image_duplicate") == [(4, "c2", "image_path")]
    assert findings(report, "image_duplicate_label_conflict") == []
    assert findings(report, "split_leak_image") == [(4, "c2", "split")]  # train vs dev


def test_identical_images_different_labels_error(tmp_path, rows):
    pixels = np.asarray(Image.open(tmp_path / "img/c0.png"))
    make_png(tmp_path / "img/c1_copy.bmp", pixels=pixels)  # other format, same pixels
    rows[1]["image_path"] = "img/c1_copy.bmp"
    rows[1]["split"] = "train"
    report = check(tmp_path, rows)
    assert findings(report, "image_duplicate_label_conflict") == [(3, "c1", "image_path")]
    assert findings(report, "split_leak_image") == []


def test_two_nodules_in_one_frame_of_one_patient_are_fine(tmp_path, rows):
    rows.append({**rows[0], "case_id": "c0b", "bbox_x0": 25, "bbox_x1": 38, "label": "malignant"})
    assert check(tmp_path, rows).findings == []


def test_patient_in_two_splits(tmp_path, rows):
    rows[5]["patient_id"] = "p0"  # train and test
    rows[5]["sex"], rows[5]["age"] = "F", 51
    report = check(tmp_path, rows)
    assert findings(report, "split_leak_patient") == [(7, "c5", "split")]
    assert "p0" in report.errors[0].message


def test_empty_class_in_a_split(tmp_path, rows):
    rows[4]["label"] = "malignant"  # test: no benign left
    report = check(tmp_path, rows)
    assert findings(report, "split_empty_class") == [(None, None, "split")]
    assert "test" in report.errors[0].message and "benign" in report.errors[0].message


def test_unknown_split_value(tmp_path, rows):
    rows[3]["split"] = "validation"
    assert (5, "c3", "split") in findings(check(tmp_path, rows), "split_invalid")


def test_unreadable_manifest(tmp_path):
    report = validate_manifest(tmp_path / "absent.csv")
    assert findings(report, "manifest_unreadable") == [(None, None, None)] and not report.ok
    (tmp_path / "bad.csv").write_text("case_id,label\nc1,benign\nc2,benign,extra\n")
    report = validate_manifest(tmp_path / "bad.csv")
    assert "line 3" in report.errors[0].message
    (tmp_path / "empty.csv").write_text("case_id,patient_id,image_path,label\n")
    assert validate_manifest(tmp_path / "empty.csv").codes() == {"manifest_empty"}


def test_synthetic_cohort_validates_clean(tiny_cohort):
    """The package's own generator is never skipped: a broken import fails here."""
    report = validate_manifest(tiny_cohort)
    assert report.ok, report.format_text()
    assert report.n_rows == 60


def test_each_file_is_decoded_once(tmp_path, rows, monkeypatch):
    import liver_mm.io.images as images

    calls: list[str] = []
    real = images._open
    monkeypatch.setattr(images, "_open", lambda p: calls.append(str(p)) or real(p))
    make_png(tmp_path / "img/m.png", pixels=np.pad(np.ones((8, 8), np.uint8), ((12, 12), (12, 20))))
    for r in rows[:2]:
        r.update(mask_path="img/m.png", bbox_x0="", bbox_y0="", bbox_x1="", bbox_y1="")
    rows.append({**rows[0], "case_id": "c0b", "bbox_x0": 30, "bbox_y0": 0, "bbox_x1": 38, "bbox_y1": 8,
                 "mask_path": ""})
    report = check(tmp_path, rows)
    assert report.ok, report.format_text()
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 7  # 6 images + 1 shared mask
