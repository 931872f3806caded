"""The leakage-safe split: grouping by patient and image content, stratification, reuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.cli import main
from liver_mm.cohort.grouping import leakage_groups
from liver_mm.cohort.split import assign_split, fold_plan, prepare_split, split_hash
from liver_mm.io.images import file_content_hash, read_gray
from liver_mm.io.schema import read_manifest
from liver_mm.synth.clinical import synth_clinical
from liver_mm.synth.cohort import is_synthetic


@pytest.fixture()
def leaky_cohort(tiny_cohort, tmp_path) -> Path:
    """A copy of the tiny cohort where different patients share images: six re-encoded copies
    (same pixels, different bytes), two rows pointing at another row's file, and a chain (an image
    shared with a patient who has two nodules)."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, root)
    df = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    counts = df["patient_id"].value_counts()
    multi = df.index[df["patient_id"] == counts.index[0]].tolist()
    assert len(multi) == 2
    singles = df.index[df["patient_id"].map(counts) == 1].tolist()
    for a, b in zip(singles[0:12:2], singles[1:12:2], strict=True):
        pixels = read_gray(root / df.at[a, "image_path"])
        Image.fromarray(pixels).save(root / df.at[b, "image_path"], compress_level=9)
    for a, b in zip(singles[12:16:2], singles[13:16:2], strict=True):
        df.at[b, "image_path"] = df.at[a, "image_path"]
    Image.fromarray(read_gray(root / df.at[multi[0], "image_path"])).save(root / df.at[singles[16], "image_path"])
    df.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _assert_no_leak(out: Path) -> pd.DataFrame:
    df = read_manifest(out)
    assert set(df["split"]) <= {"train", "dev", "test"}
    assert (df.groupby("patient_id")["split"].nunique() == 1).all()
    hashes = df["image_path"].map(file_content_hash)
    assert hashes.duplicated().sum() >= 9  # the shared images are really there
    assert (df.groupby(hashes)["split"].nunique() == 1).all()
    return df


def test_leakage_groups_are_transitive():
    patients = ["a", "a", "b", "c", None, None]
    keys = ["h1", "h2", "h2", "h3", "h3", None]
    g = leakage_groups(patients, keys)
    assert g[0] == g[1] == g[2] and g[3] == g[4] and len({g[0], g[3], g[5]}) == 3


@pytest.mark.parametrize(("fractions", "plan"), [
    ((0.8, 0.1, 0.1), (10, (8, 1, 1))),
    ((0.7, 0.15, 0.15), (20, (14, 3, 3))),
    ((0.6, 0.2, 0.2), (5, (3, 1, 1))),
    ((0.9, 0.1, 0.0), (10, (9, 1, 0))),
])
def test_fold_plan(fractions, plan):
    assert fold_plan(fractions) == plan


@pytest.mark.parametrize("bad", [(0.8, 0.1), (0.8, 0.3, 0.1), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_fold_plan_rejects_bad_fractions(bad):
    with pytest.raises(ValueError, match="fraction"):
        fold_plan(bad)


@pytest.fixture(scope="module")
def big_table() -> tuple[pd.DataFrame, list[str]]:
    """1,080 nodules (about 80 two-nodule patients) and image keys with 30 cross-patient duplicates."""
    df = synth_clinical(1080, seed=3)
    keys = df["case_id"].tolist()
    rng = np.random.default_rng(0)
    src, dst = rng.choice(len(df), size=(2, 30), replace=False)
    for s, d in zip(src, dst, strict=True):
        keys[d] = keys[s]
    return df, keys


def test_assign_split_stratified_grouped_and_seeded(big_table):
    df, keys = big_table
    split = assign_split(df, seed=0, image_keys=keys)
    assert split.index.equals(df.index) and set(split) == {"train", "dev", "test"}
    share = split.value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.015 and abs(share["dev"] - 0.1) < 0.015
    malignant = df["label"] == "malignant"
    overall = malignant.mean()
    for part in ("train", "dev", "test"):
        assert abs(malignant[split == part].mean() - overall) < 0.02, part
    assert (split.groupby(df["patient_id"]).nunique() == 1).all()
    assert (split.groupby(pd.Series(keys, index=df.index)).nunique() == 1).all()
    assert assign_split(df, seed=0, image_keys=keys).equals(split)
    assert not assign_split(df, seed=1, image_keys=keys).equals(split)


def test_assign_split_other_fractions(big_table):
    df, keys = big_table
    share = assign_split(df, (0.7, 0.15, 0.15), seed=2, image_keys=keys).value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.02 and abs(share["test"] - 0.15) < 0.02


def test_assign_split_numeric_patient_ids_still_group(big_table):
    df, keys = big_table
    numeric = df.assign(patient_id=pd.factorize(df["patient_id"])[0] + 1000)
    split = assign_split(numeric, seed=4, image_keys=keys)
    assert (split.groupby(numeric["patient_id"]).nunique() == 1).all()


def test_assign_split_needs_enough_groups():
    df = pd.DataFrame({"case_id": list("abcd"), "patient_id": list("pqrs"), "label": ["benign", "malignant"] * 2})
    with pytest.raises(ValueError, match="4 independent patient/image groups"):
        assign_split(df)


def test_prepare_split_keeps_patients_and_images_together(leaky_cohort, tmp_path):
    out = tmp_path / "out" / "split.csv"
    result = prepare_split(leaky_cohort, out, seed=0)
    df = _assert_no_leak(out)
    assert len(df) == 60 and all(Path(p).is_file() for p in df["image_path"])
    assert result.counts["all"] == {"benign": 30, "malignant": 30, "total": 60}
    assert sum(result.counts[p]["total"] for p in ("train", "dev", "test")) == 60
    assert 42 <= result.counts["train"]["total"] <= 54
    assert result.split_hash == split_hash(df["case_id"], df["split"])
    assert is_synthetic(out)  # cohort.json travels with the copy
    original = pd.read_csv(leaky_cohort, dtype=str, keep_default_na=False)
    copy = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(copy.columns) == [*original.columns, "split"]
    assert copy["albumin"].equals(original["albumin"])  # cells kept as written


def test_prepare_split_reuses_and_recomputes(leaky_cohort, tmp_path):
    out = leaky_cohort.parent / "split_manifest.csv"
    first = prepare_split(leaky_cohort, out, seed=0)
    stamp = out.stat().st_mtime_ns
    again = prepare_split(leaky_cohort, out, seed=0)
    assert again.reused and not first.reused and out.stat().st_mtime_ns == stamp
    assert (again.split_hash, again.manifest_hash, again.counts) == (first.split_hash, first.manifest_hash, first.counts)
    assert pd.read_csv(out)["image_path"].str.startswith("images/").all()  # relative to the copy's folder

    other = prepare_split(leaky_cohort, out, seed=5)
    assert not other.reused and other.split_hash != first.split_hash

    text = leaky_cohort.read_text().replace(",4.", ",3.", 1)  # edit one lab value
    leaky_cohort.write_text(text)
    edited = prepare_split(leaky_cohort, out, seed=5)
    assert not edited.reused and edited.manifest_hash != first.manifest_hash


def test_existing_split_column_is_respected(tiny_cohort, tmp_path):
    df = pd.read_csv(tiny_cohort, dtype=str, keep_default_na=False)
    patient = pd.factorize(df["patient_id"])[0]  # a patient's nodules share a part: a leaking split is refused
    given = np.array(["Train", "dev", "test", " train "])[patient % 4]
    df["image_path"] = [str(tiny_cohort.parent / p) for p in df["image_path"]]
    df["split"] = given
    src = tmp_path / "given.csv"
    df.to_csv(src, index=False)
    result = prepare_split(src, tmp_path / "out.csv")
    written = pd.read_csv(tmp_path / "out.csv")["split"]
    assert written.tolist() == [g.strip().lower() for g in given]
    assert result.counts["all"]["total"] == 60


@pytest.mark.parametrize(("values", "match"), [
    (["validation"] + ["train"] * 59, r"line 2, column split: 'validation'"),
    ([""] * 30 + ["train"] * 30, r"column split: filled for 30 of 60 rows"),
])
def test_bad_split_column_named(tiny_cohort, tmp_path, values, match):
    df = pd.read_csv(tiny_cohort, dtype=str, keep_default_na=False)
    df["split"] = values
    src = tmp_path / "bad.csv"
    df["image_path"] = [str(tiny_cohort.parent / p) for p in df["image_path"]]
    df.to_csv(src, index=False)
    with pytest.raises(ValueError, match=match):
        prepare_split(src, tmp_path / "out.csv")


def test_missing_image_named(leaky_cohort, tmp_path):
    df = pd.read_csv(leaky_cohort, dtype=str, keep_default_na=False)
    (leaky_cohort.parent / df.at[9, "image_path"]).unlink()
    with pytest.raises(ValueError, match=r"line 11, column image_path: .*file not found"):
        prepare_split(leaky_cohort, tmp_path / "out.csv")


def test_copy_must_not_overwrite_the_input(leaky_cohort):
    with pytest.raises(ValueError, match="copy"):
        prepare_split(leaky_cohort, leaky_cohort)


def test_cli_split(leaky_cohort, tmp_path, capsys):
    out = tmp_path / "split.csv"
    assert main(["split", str(leaky_cohort), "--out", str(out), "--fractions", "0.6,0.2,0.2", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    for word in ("train", "dev", "test", "benign", "malignant", "wrote"):
        assert word in text
    assert main(["split", str(leaky_cohort), "--out", str(out), "--fractions", "0.6,0.2,0.2", "--seed", "1"]) == 0
    assert "reused" in capsys.readouterr().out
    assert main(["split", str(leaky_cohort), "--out", str(out), "--fractions", "0.6,0.6,0.2"]) == 1
    assert "fractions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["split", str(leaky_cohort), "--out", str(out), "--fractions", "a,b"])
