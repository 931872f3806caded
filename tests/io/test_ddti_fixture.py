"""Real ultrasound (the DDTI subset in tests/fixtures/ddti): the recipe's manifest builder, validation,
boxes from real masks, and one end-to-end `liver-mm train` of the image-only model."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from liver_mm.cli import main
from liver_mm.io.schema import BBOX_COLUMNS, read_manifest
from tests.run_checks import assert_run_reproduced, the_split

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "ddti"
SCRIPT = ROOT / "experiments" / "ddti-recipe" / "make_manifest.py"
GROUPED = {"130": ["130_1", "130_2"], "134": ["134_1(1)", "134_1(2)"],
           "187": ["187_1(1)", "187_1(2)"], "330": ["330_1", "330_2"]}


def _builder():
    spec = importlib.util.spec_from_file_location("ddti_make_manifest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ddti(tmp_path) -> Path:
    """A writable copy of the fixture folder."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "ddti"))


@pytest.fixture
def manifest(tmp_path, ddti) -> Path:
    """The manifest as a user makes it: the script run as a program, next to the DDTI folder."""
    out = tmp_path / "manifest.csv"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(ddti), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}: 24 nodules (0 dropped for an empty mask)"
    return out


def test_fixture_is_real_and_small():
    labels = pd.read_csv(FIXTURE / "labels.csv", dtype=str)
    assert labels["label"].value_counts().to_dict() == {"benign": 12, "suspicious": 12}
    for sub in ("images", "masks"):  # exactly one image and one mask per nodule, nothing else
        assert sorted(p.name for p in (FIXTURE / sub).iterdir()) == sorted(f"{n}.png" for n in labels["nodule_id"])
    assert len(labels) == labels["nodule_id"].nunique() == 24
    files = [FIXTURE / sub / f"{n}.png" for n in labels["nodule_id"] for sub in ("images", "masks")]
    assert sum(f.stat().st_size for f in files) < 1.5e6
    for f in files:
        with Image.open(f) as im:
            assert (im.mode, im.size) == ("L", (300, 300)), f.name  # not downscaled


def test_manifest_columns_labels_and_patients(manifest):
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    assert list(df.columns) == ["case_id", "patient_id", "image_path", "mask_path", "label", "image_id", "tirads"]
    assert len(df) == 24 and df["label"].value_counts().to_dict() == {"benign": 12, "malignant": 12}
    row = df.set_index("case_id").loc["134_1(2)"]
    assert (row["image_path"], row["mask_path"]) == ("ddti/images/134_1(2).png", "ddti/masks/134_1(2).png")
    assert (row["patient_id"], row["image_id"], row["tirads"], row["label"]) == ("134", "134_1", "2", "benign")
    assert set(df.loc[df["tirads"].isin(["4a", "4b", "4c", "5"]), "label"]) == {"malignant"}
    for patient, cases in GROUPED.items():
        assert sorted(df.loc[df["patient_id"] == patient, "case_id"]) == cases
    assert df["patient_id"].nunique() == 20


def test_manifest_validates_with_warnings_only(manifest, capsys):
    assert main(["validate", str(manifest), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == []
    assert sorted(w["column"] for w in report["warnings"]) == sorted(
        ["age", "sex", "ast", "alt", "platelets", "albumin"])
    assert {w["code"] for w in report["warnings"]} == {"missing_clinical_column"}


def test_boxes_from_real_masks(manifest):
    df = read_manifest(manifest)
    assert df[list(BBOX_COLUMNS)].notna().all().all()
    for _, row in df.iterrows():
        mask = np.asarray(Image.open(row["mask_path"]))
        ys, xs = np.nonzero(mask)
        assert (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1) == (
            xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), row.case_id
        w, h = mask.shape[1], mask.shape[0]
        assert 0 <= row.bbox_x0 < row.bbox_x1 <= w and 0 <= row.bbox_y0 < row.bbox_y1 <= h
        assert (row.bbox_x1 - row.bbox_x0) * (row.bbox_y1 - row.bbox_y0) < w * h
    box = df.set_index("case_id").loc["22_1", list(BBOX_COLUMNS)].tolist()
    assert box == [81, 89, 221, 214]  # the mask's bounding box (x1, y1 exclusive), read off the fixture's PNG


def test_builder_drops_empty_masks_and_names_bad_rows(tmp_path, ddti):
    mod = _builder()
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(ddti / "masks" / "22_1.png")
    rows, dropped = mod.build_rows(ddti, tmp_path)
    assert len(rows) == 23 and "22_1" not in {r["case_id"] for r in rows}
    line = 1 + pd.read_csv(ddti / "labels.csv", dtype=str)["nodule_id"].tolist().index("22_1") + 1
    assert dropped == [f"{ddti / 'labels.csv'}, line {line}: nodule 22_1 dropped: its mask has no lesion pixel"]

    text = (ddti / "labels.csv").read_text().replace("112_1,112_1,4c,suspicious", "112_1,112_1,4c,maybe")
    (ddti / "labels.csv").write_text(text)
    with pytest.raises(mod.DDTIError, match=r"labels\.csv, line 2, column label: 'maybe'"):
        mod.build_rows(ddti, tmp_path)
    (ddti / "labels.csv").write_text(text.replace("maybe", "suspicious"))
    (ddti / "images" / "148_1.png").unlink()
    with pytest.raises(mod.DDTIError, match=r"line \d+, column nodule_id: .*images/148_1\.png not found"):
        mod.build_rows(ddti, tmp_path)


def test_unlabelled_rows_only_on_request(tmp_path, ddti):
    mod = _builder()
    with (ddti / "labels.csv").open("a") as fh:
        fh.write("22_1,22_1,,\n")  # the same files, as an unlabelled nodule
    rows, _ = mod.build_rows(ddti, tmp_path)
    assert len(rows) == 24
    rows, _ = mod.build_rows(ddti, tmp_path, include_unlabelled=True)
    assert len(rows) == 25 and (rows[-1]["label"], rows[-1]["tirads"]) == ("", "")
    out = tmp_path / "elsewhere" / "m.csv"
    assert mod.main([str(ddti), "--out", str(out), "--include-unlabelled", "no"]) == 0
    paths = pd.read_csv(out)["image_path"]
    assert len(paths) == 24 and all(Path(p).is_absolute() for p in paths)  # DDTI folder outside: absolute


@pytest.mark.slow
def test_train_image_only_model_on_real_ultrasound(tmp_path, manifest):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [str(Path(sys.executable).with_name("liver-mm")), "train", "data=manifest", f"data.manifest={manifest}",
           "modalities=m1", "image_size=48", "trainer.max_epochs=1", "loader.batch_size=8",
           "split.fractions=[0.5,0.25,0.25]", f"logger.tracking_uri={uri}",
           f"logger.artifact_root={tmp_path / 'art'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("liver-mm").experiment_id])
    assert run.info.status == "FINISHED"
    split_csv = the_split(tmp_path / ".cache" / "liver_mm")
    assert_run_reproduced(client, run.info.run_id, split_csv, tmp_path / "logged")
    split = pd.read_csv(split_csv, dtype=str).set_index("case_id")["split"]
    assert set(split) == {"train", "dev", "test"} and len(split) == 24
    for cases in GROUPED.values():
        assert split[cases].nunique() == 1, cases  # nodules/images of one patient never split apart
