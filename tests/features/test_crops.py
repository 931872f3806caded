"""Crop geometry and the crop cache (hit / miss / rebuild / atomicity)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.features.crops import (
    CROP_CACHE_VERSION,
    build_crop_cache,
    crop_box,
    crop_cache_key,
    crop_resize,
)
from liver_mm.io import images


def _frame(h: int = 40, w: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


# ----------------------------------------------------------------------------- geometry
def test_crop_box_exact_rectangle_exclusive_bounds():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    out = crop_box(img, (1, 2, 4, 5))
    assert out.shape == (3, 3)
    np.testing.assert_array_equal(out, img[2:5, 1:4])
    out[:] = 0  # a copy, not a view
    assert img[2, 1] == 21


def test_crop_box_margin_grows_each_side():
    img = _frame(60, 60)
    # w=10, h=20, margin .1 -> 1 px left/right, 2 px top/bottom
    np.testing.assert_array_equal(crop_box(img, (10, 10, 20, 30), margin=0.1), img[8:32, 9:21])
    # fractional growth rounds outward: 0.25 * 10 = 2.5 -> 3 px
    assert crop_box(img, (20, 20, 30, 30), margin=0.25).shape == (16, 16)


def test_crop_box_margin_clipped_to_image():
    img = _frame(10, 12)
    np.testing.assert_array_equal(crop_box(img, (0, 0, 4, 4), margin=0.5), img[0:6, 0:6])
    np.testing.assert_array_equal(crop_box(img, (8, 6, 12, 10), margin=1.0), img[2:10, 4:12])


def test_crop_box_out_of_image_bbox_is_clipped_with_warning(caplog):
    img = _frame(10, 10)
    with caplog.at_level(logging.WARNING, logger="liver_mm.features.crops"):
        out = crop_box(img, (5, 5, 14, 12))
    np.testing.assert_array_equal(out, img[5:10, 5:10])
    assert "extends past" in caplog.text


@pytest.mark.parametrize("bbox", [(5, 5, 5, 8), (6, 2, 4, 8), (20, 20, 30, 30)])
def test_crop_box_rejects_empty_or_outside(bbox):
    with pytest.raises(ValueError, match="bbox"):
        crop_box(_frame(10, 10), bbox)


def test_crop_box_rejects_negative_margin():
    with pytest.raises(ValueError, match="margin"):
        crop_box(_frame(), (1, 1, 5, 5), margin=-0.1)


def test_crop_resize_stretches_to_square():
    img = np.zeros((30, 60), dtype=np.uint8)
    img[:, 30:] = 255
    out = crop_resize(img, (0, 10, 60, 20), size=16)  # a 10 x 60 strip -> 16 x 16
    assert out.shape == (16, 16) and out.dtype == np.uint8
    assert (out[:, :7] == 0).all() and (out[:, 9:] == 255).all()
    const = np.full((20, 20), 77, dtype=np.uint8)
    assert (crop_resize(const, (2, 3, 15, 19), size=8) == 77).all()


# ----------------------------------------------------------------------------- cache
def _write_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path)


@pytest.fixture()
def cohort(tmp_path) -> pd.DataFrame:
    """Four nodules on three frames (frame a holds two nodules)."""
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    for i, name in enumerate("abc"):
        _write_png(img_dir / f"{name}.png", _frame(40, 50, seed=i))
    return pd.DataFrame(
        {
            "case_id": ["c1", "c2", "c3", "c4"],
            "image_path": [str(img_dir / f) for f in ("a.png", "a.png", "b.png", "c.png")],
            "bbox_x0": [2, 20, 5, 0],
            "bbox_y0": [3, 10, 5, 0],
            "bbox_x1": [12, 45, 30, 50],
            "bbox_y1": [20, 38, 15, 40],
        }
    )


@pytest.fixture()
def count_reads(monkeypatch):
    calls: list[Path] = []
    real = images.read_gray

    def counting(path, frame=0):
        calls.append(Path(path))
        return real(path, frame)

    monkeypatch.setattr(images, "read_gray", counting)
    return calls


def test_cache_build_matches_crop_resize_and_hits(cohort, tmp_path, count_reads, monkeypatch):
    cache = tmp_path / "cache"
    first = build_crop_cache(cohort, 24, cache_dir=cache)
    assert first.crops.shape == (4, 24, 24) and first.crops.dtype == np.uint8
    assert len(count_reads) == 3  # frame a decoded once for its two nodules
    for i, row in cohort.iterrows():
        box = (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1)
        np.testing.assert_array_equal(first.crops[i], crop_resize(images.read_gray(row.image_path), box, 24))
    assert first.path is not None and first.path.exists() and first.path.with_suffix(".json").exists()
    assert first.key == crop_cache_key(cohort, 24)
    assert not list(cache.glob("*.tmp"))

    def boom(path):
        raise AssertionError(f"decoded {path} on a cache hit")

    monkeypatch.setattr(images, "read_gray", boom)
    second = build_crop_cache(cohort, 24, cache_dir=cache)
    assert second.key == first.key and second.path == first.path
    np.testing.assert_array_equal(second.crops, first.crops)
    assert isinstance(second.crops, np.ndarray) and not isinstance(second.crops, np.memmap)


def test_cache_rebuilds_on_changed_inputs(cohort, tmp_path, count_reads):
    cache = tmp_path / "cache"
    base = build_crop_cache(cohort, 24, cache_dir=cache)
    keys = {base.key}

    moved = cohort.copy()
    moved.loc[2, "bbox_x1"] = 31
    res = build_crop_cache(moved, 24, cache_dir=cache)
    keys.add(res.key)
    assert not np.array_equal(res.crops[2], base.crops[2])

    keys.add(build_crop_cache(cohort, 32, cache_dir=cache).key)
    keys.add(build_crop_cache(cohort, 24, margin=0.1, cache_dir=cache).key)
    keys.add(build_crop_cache(cohort.iloc[::-1].reset_index(drop=True), 24, cache_dir=cache).key)

    # same path, new bytes -> new key and new pixels
    _write_png(Path(cohort.loc[3, "image_path"]), _frame(40, 50, seed=99))
    changed = build_crop_cache(cohort, 24, cache_dir=cache)
    keys.add(changed.key)
    assert not np.array_equal(changed.crops[3], base.crops[3])
    np.testing.assert_array_equal(changed.crops[:3], base.crops[:3])

    assert len(keys) == 6
    assert len(list(cache.glob("crops-*.npy"))) == 6
    assert len(count_reads) == 6 * 3


def test_cache_key_includes_code_version(cohort, monkeypatch):
    key = crop_cache_key(cohort, 24)
    monkeypatch.setattr("liver_mm.features.crops.CROP_CACHE_VERSION", CROP_CACHE_VERSION + 1)
    assert crop_cache_key(cohort, 24) != key


def test_corrupt_cache_is_rebuilt(cohort, tmp_path, count_reads, caplog):
    cache = tmp_path / "cache"
    first = build_crop_cache(cohort, 16, cache_dir=cache)
    first.path.write_bytes(first.path.read_bytes()[:100])  # truncated, as by a crash
    with caplog.at_level(logging.WARNING, logger="liver_mm.features.crops"):
        again = build_crop_cache(cohort, 16, cache_dir=cache)
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(again.crops, first.crops)
    assert len(count_reads) == 6
    assert np.load(again.path).shape == (4, 16, 16)


def test_no_cache_dir_builds_in_memory(cohort):
    res = build_crop_cache(cohort, 8)
    assert res.path is None and res.crops.shape == (4, 8, 8) and len(res.key) == 64


def test_missing_image_names_file_and_case(cohort, tmp_path):
    bad = cohort.copy()
    bad.loc[1, "image_path"] = str(tmp_path / "nope.png")
    with pytest.raises(images.ImageReadError, match=r"nope\.png.*c2"):
        build_crop_cache(bad, 8, cache_dir=tmp_path / "cache")


def test_bad_bbox_value_names_row_and_column(cohort, tmp_path):
    bad = cohort.astype({"bbox_y1": "float64"})
    bad.loc[2, "bbox_y1"] = np.nan
    with pytest.raises(ValueError, match=r"case_id=c3.*bbox_y1"):
        build_crop_cache(bad, 8, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="bbox_x0"):
        build_crop_cache(cohort.drop(columns="bbox_x0"), 8)


def test_bbox_outside_image_names_case(cohort, tmp_path):
    bad = cohort.copy()
    bad.loc[3, ["bbox_x0", "bbox_x1"]] = [60, 70]
    with pytest.raises(ValueError, match=r"c\.png.*case_id=c4"):
        build_crop_cache(bad, 8, cache_dir=tmp_path / "cache")
