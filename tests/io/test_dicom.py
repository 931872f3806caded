"""DICOM stills and clips: exact grayscale per photometric interpretation, frames, mm per pixel, burned-in text,
and import-folder -> validate -> train on DICOMs without a patient tag leaking anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.cohort.validate import validate_manifest
from liver_mm.io.dicom import dicom_info, read_dicom
from liver_mm.io.images import ImageReadError, probe_image, read_gray
from liver_mm.io.importers import import_folder
from liver_mm.io.schema import read_manifest
from tests.io.dicomgen import SENTINELS, ramp, write_dicom

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


@pytest.mark.parametrize(("photometric", "jpeg"), [("MONOCHROME2", False), ("RGB", False), ("YBR_FULL", False),
                                                   ("MONOCHROME2", True), ("RGB", True)])
def test_grayscale_is_the_known_ramp(tmp_path, photometric, jpeg):
    gray = ramp(seed=2)
    path = write_dicom(tmp_path / "a.dcm", gray, photometric, jpeg=jpeg)
    # RGB with R = G = B and YBR_FULL with Y = gray decode to exactly the ramp (luma of a gray pixel is
    # itself); the JPEG baseline files (quality 100, no subsampling) decode to it too
    np.testing.assert_array_equal(read_gray(path), gray)
    np.testing.assert_array_equal(read_gray(path.read_bytes()), gray)  # bytes (a served upload) as well


def test_rgb_luma_matches_pillow_and_ybr_takes_y(tmp_path):
    rgb = np.stack([ramp(seed=1), ramp(seed=4)[::-1], np.full((40, 48), 30, np.uint8)], axis=2)
    path = write_dicom(tmp_path / "c.dcm", ramp(), "RGB")
    from pydicom import dcmread

    ds = dcmread(path)
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    np.testing.assert_array_equal(read_gray(path), np.asarray(Image.fromarray(rgb, "RGB").convert("L")))
    ybr = np.stack([ramp(seed=3), ramp(seed=5), ramp(seed=6)], axis=2)  # Cb/Cr arbitrary: Y is the luma
    ds.PhotometricInterpretation, ds.PixelData = "YBR_FULL", ybr.tobytes()
    ds.save_as(path)
    np.testing.assert_array_equal(read_gray(path), ramp(seed=3))


def test_clip_frames_and_out_of_range(tmp_path):
    path = write_dicom(tmp_path / "clip.dcm", [ramp(seed=1), ramp(seed=3)])
    np.testing.assert_array_equal(read_gray(path), ramp(seed=1))
    np.testing.assert_array_equal(read_gray(path, frame=1), ramp(seed=3))
    assert probe_image(path, frame=1).n_frames == 2
    with pytest.raises(ImageReadError, match=r"clip\.dcm: frame 2 does not exist: the clip has 2 frame") as exc:
        read_gray(path, frame=2)
    assert exc.value.reason == "frame"
    png = tmp_path / "a.png"
    Image.fromarray(ramp()).save(png)
    with pytest.raises(ImageReadError, match="only DICOM clips have frames"):
        read_gray(png, frame=1)


def test_region_and_burned_in(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(), region_cm=0.0125, burned_in=True)
    info = dicom_info(path)
    assert info.mm_per_px == (0.125, 0.125) and info.burned_in and info.n_frames == 1
    assert dicom_info(write_dicom(tmp_path / "b.dcm", ramp(), region_cm=None)).mm_per_px is None
    _, info = read_dicom(path)
    assert info.burned_in


def _mask(x0: int, y0: int, x1: int, y1: int) -> Image.Image:
    m = np.zeros((40, 48), np.uint8)
    m[y0:y1, x0:x1] = 255
    return Image.fromarray(m)


def dicom_folder(root: Path, n: int = 10) -> Path:
    """n benign + n malignant DICOMs of every kind with PNG masks; the first malignant one is a 2-frame clip."""
    kinds = [("MONOCHROME2", False), ("RGB", False), ("YBR_FULL", False), ("MONOCHROME2", True), ("RGB", True)]
    for label in ("benign", "malignant"):
        for i in range(n):
            gray = ramp(seed=i + (20 if label == "malignant" else 0))
            if label == "malignant":
                gray = np.clip(gray.astype(int) + 40, 0, 255).astype(np.uint8)
            photometric, jpeg = kinds[i % len(kinds)]
            frames = [gray, ramp(seed=90 + i)] if (label, i) == ("malignant", 0) else gray
            write_dicom(root / label / f"{label[0]}{i}.dcm", frames, photometric, jpeg=jpeg,
                        burned_in=(label, i) == ("benign", 1))
            _mask(4 + i, 5, 24 + i, 30).save(root / label / f"{label[0]}{i}_mask.png")
    return root


def test_import_folder_reads_dicom_with_mm_and_frames(tmp_path):
    root = dicom_folder(tmp_path / "dcm", n=3)
    out = tmp_path / "m.csv"
    import_folder(root, out)
    raw = pd.read_csv(out, dtype=str).set_index("case_id")
    assert raw.loc["benign/b1", ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].tolist() == ["5", "5", "25", "30"]
    assert raw.loc["benign/b1", ["mm_per_px_x", "mm_per_px_y"]].astype(float).tolist() == [0.1, 0.1]
    assert set(raw["frame"]) == {"0"}  # a clip is present: the frame column is written
    df = read_manifest(out).set_index("case_id")
    assert df.loc["benign/b1", ["bbox_w_mm", "bbox_h_mm"]].tolist() == [2.0, 2.5]  # 20 x 25 px at 0.1 mm
    report = validate_manifest(out)
    assert report.ok, report.format_text()
    burned = [(f.row, f.case_id, f.column) for f in report.warnings if f.code == "burned_in_annotation"]
    assert burned == [(3, "benign/b1", "image_path")]
    raw.loc["malignant/m0", "frame"] = "2"
    raw.loc["malignant/m1", "frame"] = "1"  # a still has no frame 1
    raw.reset_index().to_csv(out, index=False)
    found = {(f.row, f.column, f.code) for f in validate_manifest(out).errors}
    assert found == {(5, "frame", "frame_out_of_range"), (6, "frame", "frame_out_of_range")}
    raw.loc["malignant/m0", "frame"], raw.loc["malignant/m1", "frame"] = "1", "0"
    raw.reset_index().to_csv(out, index=False)
    assert validate_manifest(out).ok


def test_crops_read_the_manifest_frame(tmp_path):
    from liver_mm.features.crops import build_crop_cache, crop_cache_key, crop_resize

    path = write_dicom(tmp_path / "clip.dcm", [ramp(seed=1), ramp(seed=3)])
    df = pd.DataFrame({"case_id": ["a", "b"], "image_path": [str(path)] * 2, "frame": [0, 1],
                       "bbox_x0": 0, "bbox_y0": 0, "bbox_x1": 48, "bbox_y1": 40})
    crops = build_crop_cache(df, 48).crops  # the bbox is the whole 48 x 40 frame, padded to a square
    for i, seed in enumerate((1, 3)):
        np.testing.assert_array_equal(crops[i], crop_resize(ramp(seed=seed), (0, 0, 48, 40), 48))
    assert not np.array_equal(crops[0], crops[1])
    assert crop_cache_key(df, 48) != crop_cache_key(df.assign(frame=0), 48)


def _sentinel_hits(folder: Path, skip: Path) -> list[str]:
    needles = [v.encode() for v in SENTINELS.values()] + [v.split("^")[0].encode() for v in SENTINELS.values()]
    hits = []
    for p in folder.rglob("*"):
        if p.is_file() and skip not in p.parents:
            data = p.read_bytes()
            hits += [f"{p}: {n.decode()}" for n in needles if n in data]
    return hits


@pytest.mark.slow
def test_import_validate_train_on_dicoms_leaks_no_patient_tag(tmp_path):
    root = dicom_folder(tmp_path / "dicoms")
    manifest = tmp_path / "work" / "manifest.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    logs = []
    for cmd in (["import-folder", str(root), "--out", str(manifest)], ["validate", str(manifest)],
                ["train", "data=manifest", f"data.manifest={manifest}", "modalities=m1", "image_size=48",
                 "trainer.max_epochs=1", "loader.batch_size=8", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                 f"logger.artifact_root={tmp_path / 'art'}", f"cache_dir={tmp_path / 'cache'}"]):
        proc = subprocess.run([LIVER_MM, *cmd], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        logs.append(proc.stdout + proc.stderr)
    assert "burned_in_annotation" in logs[1]
    (tmp_path / "logs.txt").write_text("\n".join(logs))
    assert any((tmp_path / "art").rglob("*")) and (tmp_path / "mlflow.db").is_file()
    assert _sentinel_hits(tmp_path, skip=root) == []
    assert any(SENTINELS["PatientID"].encode() in p.read_bytes() for p in root.rglob("*.dcm"))  # the probe works


def test_lesion_outside_every_calibrated_region_gets_no_size(tmp_path, caplog):
    # two calibrated regions side by side (inclusive corners): 0.1 mm on the left, 0.2 mm on the right
    regions = [(0, 0, 19, 39, 0.01), (24, 0, 47, 19, 0.02)]
    path = write_dicom(tmp_path / "img" / "a.dcm", ramp(), regions=regions)
    assert dicom_info(path, (2, 3, 20, 40)).mm_per_px == (0.1, 0.1)  # the whole box in the left region
    assert dicom_info(path, (24, 0, 48, 20)).mm_per_px == (0.2, 0.2)  # ... in the right one
    with caplog.at_level("WARNING"):
        assert dicom_info(path, (30, 25, 40, 35)).mm_per_px is None  # below the right region: in none
        assert dicom_info(path, (14, 5, 40, 15)).mm_per_px is None  # across both (its centre in the right one)
    assert (f"{path}: the lesion box (30.0, 25.0, 40.0, 35.0) lies outside every calibrated ultrasound region "
            "((0, 0)-(19, 39); (24, 0)-(47, 19)): no mm per pixel, no size in mm") in caplog.text
    rows = [("c0", 2, 3, 20, 40), ("c1", 30, 25, 40, 35), ("c2", 14, 5, 40, 15)]
    manifest = tmp_path / "m.csv"
    pd.DataFrame([{"case_id": c, "patient_id": c, "image_path": "img/a.dcm", "bbox_x0": x0, "bbox_y0": y0,
                   "bbox_x1": x1, "bbox_y1": y1, "label": "benign"} for c, x0, y0, x1, y1 in rows]
                 ).to_csv(manifest, index=False)
    df = read_manifest(manifest).set_index("case_id")
    assert df.loc["c0", ["mm_per_px_x", "bbox_w_mm", "bbox_h_mm"]].tolist() == [0.1, 1.8, 3.7]
    assert df.loc[["c1", "c2"], ["mm_per_px_x", "mm_per_px_y", "bbox_w_mm"]].isna().all().all()
