"""The cohort's content hash (every image's and mask's bytes) and the fold cache's key: a replaced image, a
corrected mask or a changed label map is another cohort, never one reused from the cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.cohort.content import cohort_content_hash
from liver_mm.cohort.folds import prepare_folds
from liver_mm.cohort.prepare import prepare_cohort
from liver_mm.io.dialect import TableOptions
from liver_mm.io.schema import read_manifest


@pytest.fixture
def cohort(tmp_path, tiny_cohort) -> Path:
    """A private copy of the tiny cohort (its files are changed here), its boxes given as mask files."""
    dst = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, dst)
    manifest = dst / tiny_cohort.name
    df = pd.read_csv(manifest)
    (dst / "masks").mkdir()
    masks = []
    for row in df.itertuples(index=False):
        w, h = Image.open(dst / row.image_path).size
        px = np.zeros((h, w), dtype=np.uint8)
        px[int(row.bbox_y0):int(row.bbox_y1), int(row.bbox_x0):int(row.bbox_x1)] = 255
        Image.fromarray(px).save(dst / "masks" / f"{row.case_id}.png")
        masks.append(f"masks/{row.case_id}.png")
    df = df.drop(columns=[c for c in df.columns if c.startswith("bbox")]).assign(mask_path=masks)
    df.to_csv(manifest, index=False)
    return manifest


def _first(manifest: Path, column: str) -> Path:
    return Path(str(read_manifest(manifest)[column].iloc[0]).split(";")[0])


def _rewrite_pixels(path: Path) -> None:
    """The same file name, size kept or not, other pixels (as a corrected mask or a re-exported image)."""
    px = np.asarray(Image.open(path)).copy()
    px[: px.shape[0] // 2, : px.shape[1] // 2] = 255 - px[: px.shape[0] // 2, : px.shape[1] // 2]
    Image.fromarray(px).save(path)


@pytest.mark.parametrize("column", ["image_path", "mask_path"])
def test_a_file_changed_under_the_same_path_changes_the_cohorts_content_hash(cohort, tmp_path, column):
    from hydra import compose, initialize_config_module

    from liver_mm.study.parent import study_key

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        cfg = compose("study", overrides=["data=manifest", f"data.manifest={cohort}", f"cache_dir={tmp_path}"])
    before = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    _rewrite_pixels(_first(cohort, column))
    after = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    assert after.manifest_hash == before.manifest_hash  # the table's text is the same
    assert study_key(cfg, after) != study_key(cfg, before)  # old code: the same study, every arm "finished"
    assert len(after.content_hash) == 64 and after.content_hash != before.content_hash


def test_the_digest_of_each_file_is_cached_by_size_and_mtime(cohort, tmp_path):
    df = read_manifest(cohort)
    first = cohort_content_hash(df, tmp_path / "cache")
    cache = json.loads((tmp_path / "cache" / "content" / "files.json").read_text())
    assert len(cache) == 2 * len(df)  # one image and one mask per case
    image = _first(cohort, "image_path")
    st = image.stat()
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF  # same size; the modification time put back: the cached digest is used (not read again)
    image.write_bytes(bytes(data))
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cohort_content_hash(df, tmp_path / "cache") == first
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: read again
    assert cohort_content_hash(df, tmp_path / "cache") != first


def test_the_content_hash_ignores_where_the_cohort_lies_and_its_row_order(cohort, tmp_path):
    df = read_manifest(cohort)
    moved = tmp_path / "moved"
    shutil.copytree(cohort.parent, moved)
    other = read_manifest(moved / cohort.name).iloc[::-1]
    assert cohort_content_hash(other, tmp_path / "c2") == cohort_content_hash(df, tmp_path / "c1")


def test_a_changed_label_map_is_not_served_folds_stratified_by_the_old_labels(cohort, tmp_path):
    """Item 2: the fold cache's key holds the code maps (the labels the folds are stratified by)."""
    coded = tmp_path / "coded.csv"
    df = pd.read_csv(cohort)
    df["label"] = df["label"].map({"benign": "0", "malignant": "1"})
    df["image_path"] = [str((cohort.parent / p).resolve()) for p in df["image_path"]]
    df["mask_path"] = [str((cohort.parent / p).resolve()) for p in df["mask_path"]]
    df.to_csv(coded, index=False)
    out = tmp_path / "folds" / "folds.csv"
    one = TableOptions(maps={"label": {"0": "benign", "1": "malignant"}})
    swapped = TableOptions(maps={"label": {"0": "malignant", "1": "benign"}})
    first = prepare_folds(coded, out, folds=3, options=one)
    again = prepare_folds(coded, out, folds=3, options=one)
    assert again.reused and again.folds_hash == first.folds_hash
    relabelled = prepare_folds(coded, out, folds=3, options=swapped)
    assert not relabelled.reused  # old code: reused, stratified by the old labels
    assert json.loads(relabelled.record_path.read_text())["read"]["maps"]["label"] == {"0": "malignant",
                                                                                      "1": "benign"}


def test_a_new_image_content_hash_recomputes_the_folds(cohort, tmp_path):
    out = tmp_path / "folds" / "folds.csv"
    first = prepare_folds(cohort, out, folds=3, content_hash="a" * 64)
    assert prepare_folds(cohort, out, folds=3, content_hash="a" * 64).reused
    assert not prepare_folds(cohort, out, folds=3, content_hash="b" * 64).reused
    assert first.folds_hash  # (the same assignment when no duplicate image appeared or vanished)
