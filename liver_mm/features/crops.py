"""Tumour crops: bounding-box cropping, square resizing and an on-disk crop cache.

Every model sees the nodule's bounding-box crop (the paper's "segmented image"), stretched
to a ``size x size`` square. Building the crops means decoding ~1,000 full B-mode frames,
so :func:`build_crop_cache` stores them once as an ``(N, S, S)`` ``uint8`` ``.npy`` keyed by
a SHA-256 of everything that determines the pixels: each row's ``case_id``, the SHA-256 of
its image file's bytes, its bbox, ``image_size``, ``margin`` and :data:`CROP_CACHE_VERSION`.
Hashing file bytes (not size/mtime) means a cache is never silently stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from liver_mm.fileio import atomic_write_private
from liver_mm.io import images
from liver_mm.io.schema import BBOX_COLUMNS

logger = logging.getLogger(__name__)

#: Bump whenever cropping/resizing/decoding changes the pixels, so old caches are not reused.
CROP_CACHE_VERSION = 2  # 2: EXIF orientation honoured, 16-bit scaled by bit depth (images.py)


class CropCache(NamedTuple):
    """Result of :func:`build_crop_cache`: ``crops`` (N, S, S) uint8 aligned with the rows,
    the cache ``key`` (hex SHA-256, log it with the run) and the ``.npy`` ``path`` (None
    when no cache_dir was given)."""

    crops: np.ndarray
    key: str
    path: Path | None


def _margin_box(bbox: Sequence[int], shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """Grow ``bbox`` by ``margin`` x its width/height on each side and clip to ``shape`` (H, W)."""
    x0, y0, x1, y1 = (int(v) for v in bbox)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty bbox {(x0, y0, x1, y1)}: need x0 < x1 and y0 < y1 (x1, y1 exclusive)")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a finite fraction >= 0, got {margin}")
    h, w = shape
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    gx0, gy0 = math.floor(x0 - dx), math.floor(y0 - dy)
    gx1, gy1 = math.ceil(x1 + dx), math.ceil(y1 + dy)
    cx0, cy0, cx1, cy1 = max(gx0, 0), max(gy0, 0), min(gx1, w), min(gy1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"bbox {(x0, y0, x1, y1)} lies outside the {h}x{w} (HxW) image")
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        logger.warning("bbox %s extends past the %dx%d (HxW) image; clipped", (x0, y0, x1, y1), h, w)
    return cx0, cy0, cx1, cy1


def crop_box(image: np.ndarray, bbox: Sequence[int], margin: float = 0.0) -> np.ndarray:
    """Crop a 2-D image (H, W) to ``bbox = (x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.

    ``margin`` adds that fraction of the box width (height) on the left and right (top and
    bottom); the grown box is clipped to the image. ``margin=0`` is the exact rectangle.
    Returns a (H', W') view-free copy with the input's dtype.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) image, got shape {image.shape}")
    x0, y0, x1, y1 = _margin_box(bbox, image.shape, margin)
    return np.ascontiguousarray(image[y0:y1, x0:x1]).copy()


def crop_resize(image: np.ndarray, bbox: Sequence[int], size: int, margin: float = 0.0) -> np.ndarray:
    """:func:`crop_box`, then resize to (size, size) uint8 with PIL bilinear (antialiased when
    shrinking). The aspect ratio is NOT kept: the crop is stretched to a square, as the study's
    pipeline did, so every nodule fills the whole network input."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    crop = crop_box(np.asarray(image, dtype=np.uint8), bbox, margin)
    resized = Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _row_boxes(df: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    """Integer bboxes per row; a clear error names the row, case_id and column otherwise."""
    missing = [c for c in ("case_id", "image_path", *BBOX_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"crop table lacks column(s) {missing}")
    boxes = []
    for pos, row in enumerate(df[list(BBOX_COLUMNS)].itertuples(index=False)):
        box = []
        for col, val in zip(BBOX_COLUMNS, row, strict=True):
            num = pd.to_numeric(val, errors="coerce")
            if pd.isna(num) or not float(num).is_integer():
                raise ValueError(
                    f"row {pos} (case_id={df['case_id'].iloc[pos]}): column {col} must be an integer "
                    f"pixel coordinate, got {val!r}"
                )
            box.append(int(num))
        boxes.append(tuple(box))
    return boxes


def _hash_files(paths: Sequence[Path], case_ids: Sequence[str]) -> dict[Path, str]:
    digests: dict[Path, str] = {}
    for path, cid in zip(paths, case_ids, strict=True):
        if path in digests:
            continue
        try:
            digests[path] = _file_sha256(path)
        except OSError as exc:
            raise images.ImageReadError(f"{path} (case_id={cid}): cannot read image file ({exc})") from exc
    return digests


def crop_cache_key(df: pd.DataFrame, image_size: int, margin: float = 0.0) -> str:
    """Hex SHA-256 identifying the crops :func:`build_crop_cache` would produce for ``df``."""
    return _cache_key(df, image_size, margin)[0]


def _cache_key(df: pd.DataFrame, image_size: int, margin: float) -> tuple[str, list[Path], list]:
    boxes = _row_boxes(df)
    paths = [Path(p) for p in df["image_path"].astype(str)]
    case_ids = [str(c) for c in df["case_id"]]
    digests = _hash_files(paths, case_ids)
    frames = _row_frames(df)
    payload = {
        "version": CROP_CACHE_VERSION,
        "image_size": int(image_size),
        "margin": float(margin),
        "rows": [[cid, digests[p], list(b)] + ([f] if f else [])  # frame 0 keeps the key of a still
                 for cid, p, b, f in zip(case_ids, paths, boxes, frames, strict=True)],
    }
    key = hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()
    return key, paths, boxes


def _load_cached(npy: Path, sidecar: Path, key: str, n: int, size: int) -> np.ndarray | None:
    if not (npy.exists() and sidecar.exists()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        arr = np.load(npy, mmap_mode=None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        logger.warning("crop cache %s unreadable (%s); rebuilding", npy, exc)
        return None
    if meta.get("key") != key or arr.dtype != np.uint8 or arr.shape != (n, size, size):
        logger.warning("crop cache %s does not match its key/shape; rebuilding", npy)
        return None
    return arr


def _row_frames(df: pd.DataFrame) -> list[int]:
    """The 0-based frame of each row's image (``frame`` column of DICOM clips; empty / absent -> 0)."""
    if "frame" not in df.columns:
        return [0] * len(df)
    return [int(f) for f in pd.to_numeric(df["frame"], errors="coerce").fillna(0)]


def _build(df: pd.DataFrame, paths: list[Path], boxes: list, size: int, margin: float) -> np.ndarray:
    out = np.empty((len(df), size, size), dtype=np.uint8)
    rows_by_path: dict[tuple[Path, int], list[int]] = {}
    for i, (p, f) in enumerate(zip(paths, _row_frames(df), strict=True)):
        rows_by_path.setdefault((p, f), []).append(i)
    for (path, frame), rows in tqdm(rows_by_path.items(), desc="cropping", unit="img", disable=None):
        image = images.read_gray(path, frame)  # each frame decoded once, even with several nodules
        for i in rows:
            try:
                out[i] = crop_resize(image, boxes[i], size, margin)
            except ValueError as exc:
                raise ValueError(f"{path} row {i} (case_id={df['case_id'].iloc[i]}): {exc}") from exc
    return out


def build_crop_cache(
    df: pd.DataFrame,
    image_size: int,
    margin: float = 0.0,
    cache_dir: str | Path | None = None,
) -> CropCache:
    """Crops (N, S, S) uint8 for every row of ``df`` (absolute ``image_path``, ``bbox_x0..bbox_y1``,
    ``case_id``), in row order, via :func:`crop_resize`.

    With ``cache_dir`` the array is stored as ``crops-<key>.npy`` plus a ``.json`` sidecar;
    a later call with identical inputs loads it without decoding any image. Any change of
    a bbox, an image file's bytes, ``image_size``, ``margin`` or the row order gives a new
    key and a rebuild. Files are written atomically (tmp file + ``os.replace``).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    key, paths, boxes = _cache_key(df, image_size, margin)
    if cache_dir is None:
        return CropCache(_build(df, paths, boxes, image_size, margin), key, None)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    npy = cache_dir / f"crops-{key[:32]}.npy"
    sidecar = npy.with_suffix(".json")
    cached = _load_cached(npy, sidecar, key, len(df), image_size)
    if cached is not None:
        logger.info("crop cache hit %s", npy)
        return CropCache(cached, key, npy)
    crops = _build(df, paths, boxes, image_size, margin)
    atomic_write_private(npy, lambda fh: np.save(fh, crops, allow_pickle=False))
    meta = {
        "key": key,
        "version": CROP_CACHE_VERSION,
        "n": len(df),
        "image_size": int(image_size),
        "margin": float(margin),
        "first_case_ids": [str(c) for c in df["case_id"].head(5)],
    }
    atomic_write_private(sidecar, lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
    logger.info("crop cache written %s (%d crops)", npy, len(df))
    return CropCache(crops, key, npy)
