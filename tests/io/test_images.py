"""The one image reader (issue 9): bit depths, float images, EXIF orientation, decompression bombs,
and how masks are thresholded - each on real files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.cli import main
from liver_mm.features.crops import build_crop_cache
from liver_mm.io import images
from liver_mm.io.images import (
    ImageReadError,
    file_content_hash,
    mask_union_bbox,
    probe_image,
    read_gray,
)
from tests.cohort.test_validate import base_rows, check, findings, make_png, write_manifest

ORIENTATION = 0x0112  # the EXIF orientation tag


@pytest.fixture
def rows(tmp_path: Path) -> list[dict[str, object]]:
    return base_rows(tmp_path)


def frame(h: int = 24, w: int = 32) -> np.ndarray:
    """A (H, W) uint8 texture holding both 0 and 255."""
    px = np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8)
    px[0, 0], px[0, 1] = 0, 255
    return px


def smooth(h: int = 24, w: int = 32) -> np.ndarray:
    """A gradient that JPEG keeps within a few grey levels."""
    y, x = np.mgrid[0:h, 0:w]
    return (40 + 5 * y + 2 * x).astype(np.uint8)


# --- 16-bit and float images -------------------------------------------------------------------------------


def test_16bit_is_scaled_by_the_bit_depth_not_the_image_maximum(tmp_path):
    px = frame()
    Image.fromarray(px).save(tmp_path / "a8.png")
    Image.fromarray(px.astype(np.uint16) * 257).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode == "I;16"
    np.testing.assert_array_equal(read_gray(tmp_path / "a16.png"), px)
    np.testing.assert_array_equal(read_gray(tmp_path / "a16.png"), read_gray(tmp_path / "a8.png"))
    assert file_content_hash(tmp_path / "a16.png") == file_content_hash(tmp_path / "a8.png")
    dim = px // 4  # a dark 16-bit frame stays dark: no per-image stretch to 255
    Image.fromarray(dim.astype(np.uint16) * 257).save(tmp_path / "dim16.png")
    got = read_gray(tmp_path / "dim16.png")
    np.testing.assert_array_equal(got, dim)
    assert got.max() == 63


def test_float_tiff_in_0_1_is_scaled_and_0_255_is_refused(tmp_path):
    px = frame()
    Image.fromarray(px.astype(np.float32) / 255).save(tmp_path / "f01.tif")
    assert Image.open(tmp_path / "f01.tif").mode == "F"
    np.testing.assert_array_equal(read_gray(tmp_path / "f01.tif"), px)
    Image.fromarray(px.astype(np.float32)).save(tmp_path / "f255.tif")
    with pytest.raises(ImageReadError, match=r"f255\.tif: floating-point pixels range from 0 to 255; .*\[0, 1\]"):
        read_gray(tmp_path / "f255.tif")


def test_float_image_out_of_range_is_a_finding(tmp_path, rows):
    Image.fromarray(frame(32, 40).astype(np.float32) * 4).save(tmp_path / "img/c2.tif")
    rows[2]["image_path"] = "img/c2.tif"
    report = check(tmp_path, rows)
    assert findings(report, "image_unreadable") == [(4, "c2", "image_path")]
    msg = next(f.message for f in report.errors if f.code == "image_unreadable")
    assert "c2.tif" in msg and "range from 0 to 1020" in msg


# --- EXIF orientation ---------------------------------------------------------------------------------------


def test_exif_orientation_8_png_gives_transposed_shape_and_pixels(tmp_path):
    px = frame()
    exif = Image.Exif()
    exif[ORIENTATION] = 8  # displayed rotated 90 degrees counter-clockwise
    Image.fromarray(px).save(tmp_path / "r8.png", exif=exif)
    got = read_gray(tmp_path / "r8.png")
    assert got.shape == (32, 24)
    np.testing.assert_array_equal(got, np.rot90(px, 1))
    assert probe_image(tmp_path / "r8.png").shape == (32, 24)


def test_exif_orientation_6_jpeg_gives_transposed_shape_and_pixels(tmp_path):
    px = smooth()
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # displayed rotated 90 degrees clockwise
    Image.fromarray(px).save(tmp_path / "r6.jpg", quality=95, exif=exif)
    got = read_gray(tmp_path / "r6.jpg")
    assert got.shape == (32, 24)
    assert np.abs(got.astype(int) - np.rot90(px, -1)).max() <= 4


def test_rotated_frame_is_validated_and_cropped_as_displayed(tmp_path, rows):
    px = frame(32, 40)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(np.rot90(px, 1)).save(tmp_path / "img/c0.png", exif=exif)  # stored 32 wide, shown 40
    rows[0].update(bbox_x0=25, bbox_y0=2, bbox_x1=38, bbox_y1=20)  # fits only the displayed frame
    report = check(tmp_path, rows)
    assert report.ok, report.format_text()
    row = {**rows[0], "image_path": str(tmp_path / "img/c0.png")}
    crops = build_crop_cache(pd.DataFrame([row]), image_size=8).crops
    assert crops.shape == (1, 8, 8)
    expected = Image.fromarray(px[2:20, 25:38]).resize((8, 8), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(crops[0], np.asarray(expected))


# --- decompression bombs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 14000 x 14000 all-black PNG (tiny on disk, 196 M pixels decoded)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)
    return path


def test_bomb_is_an_image_read_error_with_size_and_limit(bomb):
    limit = f"{Image.MAX_IMAGE_PIXELS:,}"
    with pytest.raises(ImageReadError, match=rf"bomb\.png: image too large: 196,000,000 pixels exceed "
                       rf"Pillow's limit of {limit} pixels") as info:
        read_gray(bomb)
    assert info.value.reason == "too_large"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_over_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = make_png(tmp_path / "big.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 px: over the limit, under Pillow's 2x error
    with pytest.raises(ImageReadError, match=r"big\.png: image too large: 1,600 pixels \(40x40\) exceed "
                       r"Pillow's limit of 1,000 pixels"):
        read_gray(path)


def test_validate_names_the_bomb_as_image_and_as_mask(tmp_path, rows, bomb, capsys):
    rows[3]["image_path"] = str(bomb)
    rows[1]["mask_path"] = str(bomb)
    manifest = write_manifest(tmp_path, rows)
    assert main(["validate", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out and "196,000,000 pixels" in out
    report = check(tmp_path, rows)
    assert findings(report, "image_too_large") == [(5, "c3", "image_path")]
    assert findings(report, "mask_too_large") == [(3, "c1", "mask_path")]


# --- masks --------------------------------------------------------------------------------------------------


def test_jpeg_mask_box_is_the_lesion_not_its_ringing(tmp_path):
    m = np.zeros((64, 80), np.uint8)
    m[13:41, 21:58] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=75)
    raw = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert (raw > 0).sum() > 1.2 * 28 * 37  # JPEG spreads non-zero pixels well beyond the lesion
    assert mask_union_bbox([tmp_path / "m.jpg"]) == (21, 13, 58, 41)


@pytest.mark.parametrize("kind", ["16bit", "label01", "red_rgb"])
def test_mask_threshold_by_bit_depth(tmp_path, kind):
    box = (5, 4, 12, 10)
    if kind == "16bit":  # background noise below half range (32768) is not lesion
        m = np.full((32, 40), 20000, np.uint16)
        m[4:10, 5:12] = 65535
    elif kind == "label01":  # a 0/1 label map: 1 is lesion
        m = np.zeros((32, 40), np.uint8)
        m[4:10, 5:12] = 1
    else:  # lesion drawn in red (luma 76 < 128) on black
        m = np.zeros((32, 40, 3), np.uint8)
        m[4:10, 5:12, 0] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    assert mask_union_bbox([tmp_path / "m.png"]) == box


def test_inverted_mask_is_flagged(tmp_path, rows):
    inverted = np.full((32, 40), 255, np.uint8)
    inverted[5:15, 6:18] = 0  # lesion black on white
    big = np.zeros((32, 40), np.uint8)
    big[0:28, 0:30] = 255  # 66% of the frame, box not the whole frame
    make_png(tmp_path / "img/inv.png", pixels=inverted)
    make_png(tmp_path / "img/big.png", pixels=big)
    for i, m in ((1, "img/inv.png"), (4, "img/big.png")):
        rows[i].update(mask_path=m, bbox_x0="", bbox_y0="", bbox_x1="", bbox_y1="")
    report = check(tmp_path, rows)
    assert findings(report, "mask_inverted") == [(3, "c1", "mask_path"), (6, "c4", "mask_path")]
    msgs = [f.message for f in report.warnings if f.code == "mask_inverted"]
    assert "inv.png: the lesion covers 91% of the frame and its box is the whole frame" in msgs[0]
    assert "big.png: the lesion covers 66% of the frame;" in msgs[1]
    assert report.ok  # a warning: the box is usable, but check it


def test_probe_reports_lesion_share(tmp_path):
    m = np.zeros((10, 10), np.uint8)
    m[:3, :5] = 200
    info = probe_image(make_png(tmp_path / "m.png", pixels=m))
    assert info.foreground == (0, 0, 5, 3) and info.coverage == pytest.approx(0.15)
    assert images.ImageInfo((1, 1), "h", None).coverage == 0.0
