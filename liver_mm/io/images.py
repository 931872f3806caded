"""Image reading shared by validation, splitting, cropping and serving.

Every path that needs pixels (validation, bboxes from masks, the split's content hashes, cropping,
serving) decodes through this module, so all of them see the same pixels:

- **EXIF orientation is honoured** (``PIL.ImageOps.exif_transpose``): a frame stored rotated with an
  orientation tag (6, 8, ...) is read as displayed, and boxes and masks refer to that orientation.
- Images are read as 8-bit grayscale (B-mode ultrasound is single-channel; RGB exports are converted
  with ITU-R 601 luma). **16-bit images are scaled by the bit depth** (value / 257, so 65535 -> 255),
  never by each image's own maximum; 32-bit integer images must hold 16-bit values; **float images**
  must lie in [0, 1] (x 255) - anything else is an :class:`ImageReadError` naming the range seen.
- Files over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused before
  decoding, with the pixel count and the limit.
- **Masks**: a pixel is lesion when it reaches half the bit depth's range (>= 128 of 8-bit, >= 32768 of
  16-bit, >= 0.5 of float; colour masks: any channel), so JPEG ringing does not grow the box. A mask
  holding only the values 0 and 1 (a label map) counts 1 as lesion.

- **DICOM** (``.dcm``, or bytes with the DICM marker) is decoded by :mod:`liver_mm.io.dicom`
  (grayscale by its photometric interpretation; clips one frame at a time: ``frame``, 0-based).

Every reader raises :class:`ImageReadError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from liver_mm.io.dicom import DicomReadError, is_dicom, read_dicom

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
Reason = Literal["unreadable", "too_large", "value_range", "frame"]


class ImageReadError(ValueError):
    """An image file is missing, truncated, not an image, too large or holds unsupported values.

    ``reason``: ``unreadable`` (missing/corrupt), ``too_large`` (over Pillow's pixel limit) or
    ``value_range`` (pixel values the bit-depth rules cannot map to 0-255) or ``frame`` (a frame
    index the file does not have)."""

    def __init__(self, message: str, reason: Reason = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


def _too_large(name: str, pixels: int | None, size: str = "") -> ImageReadError:
    limit = Image.MAX_IMAGE_PIXELS
    count = f"{pixels:,} pixels" if pixels is not None else "its pixel count"
    return ImageReadError(
        f"{name}: image too large: {count}{size} exceed Pillow's limit of {limit or 0:,} pixels "
        "(PIL.Image.MAX_IMAGE_PIXELS, its decompression-bomb guard); downscale or crop it", "too_large")


def _open(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode ``source`` (a path or the file's bytes), EXIF orientation applied."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        img = Image.open(io.BytesIO(source)) if isinstance(source, bytes) else Image.open(source)
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and img.width * img.height > limit:
            img.close()
            raise _too_large(name, img.width * img.height, f" ({img.width}x{img.height})")
        img.load()  # forces a full decode: catches truncated files
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses > 2x its limit at open
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(name, int(found[1]) if found else None) from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from exc
    if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        img = ImageOps.exif_transpose(img)
    return img


def _native(img: Image.Image, name: str) -> tuple[np.ndarray, float]:
    """The single-channel pixel values of a 16-bit / 32-bit integer / float image and its full-scale
    value (65535 or 1.0), range-checked; raises ``ImageReadError`` (reason ``value_range``)."""
    arr = np.asarray(img)
    if img.mode in _SIXTEEN_BIT:
        return arr, 65535.0
    lo, hi = (float(np.nanmin(arr)), float(np.nanmax(arr))) if arr.size else (0.0, 0.0)
    if img.mode == "F":
        if not np.isfinite(arr).all() or lo < 0 or hi > 1:
            raise ImageReadError(f"{name}: floating-point pixels range from {lo:g} to {hi:g}"
                                 f"{' (with NaN/inf)' if not np.isfinite(arr).all() else ''}; a float image "
                                 "must hold values in [0, 1]: re-export it as 8-bit or scaled to 0-1",
                                 "value_range")
        return arr, 1.0
    if lo < 0 or hi > 65535:
        raise ImageReadError(f"{name}: 32-bit integer pixels range from {lo:g} to {hi:g}; only 8-bit and "
                             "16-bit (0-65535) images are supported: re-export it", "value_range")
    return arr, 65535.0


def _gray(img: Image.Image, name: str) -> np.ndarray:
    if img.mode in (*_SIXTEEN_BIT, "I", "F"):
        arr, full = _native(img, name)
        if full == 1.0:
            return np.round(arr.astype(np.float64) * 255.0).astype(np.uint8)
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(x / 257): 65535 -> 255
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _lesion(img: Image.Image, name: str) -> np.ndarray:
    """(H, W) bool: the pixels a mask marks as lesion (half-range threshold; 0/1 label maps: 1)."""
    if img.mode == "1":
        return np.asarray(img, dtype=bool)
    if img.mode in (*_SIXTEEN_BIT, "I", "F"):
        arr, full = _native(img, name)
        half = 0.5 if full == 1.0 else 32768
    elif img.mode in ("L", "LA", "La"):
        arr, half = np.asarray(img.getchannel(0)), 128
    else:  # colour (RGB, RGBA, palette, ...): a lesion drawn in any colour
        arr, half = np.asarray(img.convert("RGB")).max(axis=2), 128
    if arr.size and arr.max() <= 1 and img.mode != "F":
        return arr == 1
    return arr >= half


def _name(source: str | Path | bytes) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def _read_dicom(source: str | Path | bytes, frame: int):
    try:
        return read_dicom(source, frame)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{_name(source)}: file not found") from exc
    except DicomReadError as exc:
        raise ImageReadError(str(exc), "frame" if exc.reason == "frame" else "unreadable") from None


def _single(source: str | Path | bytes, frame: int) -> None:
    if frame != 0:
        raise ImageReadError(f"{_name(source)}: frame {frame} does not exist: only DICOM clips have frames "
                             "(a single image is frame 0)", "frame")


def read_gray(source: str | Path | bytes, frame: int = 0) -> np.ndarray:
    """Decode an image file (or its bytes) to a 2-D ``uint8`` array of shape (H, W) (see module doc);
    ``frame``: the 0-based frame of a DICOM clip (other images only have frame 0)."""
    if is_dicom(source):
        return _read_dicom(source, frame)[0]
    _single(source, frame)
    return _gray(_open(source), _name(source))


def image_key(path: str | Path, frame: int = 0) -> str:
    """The cache key of one frame of one file: the path, with ``#frame=N`` for frames other than 0."""
    return str(path) if not frame else f"{path}#frame={int(frame)}"


def content_hash(pixels: np.ndarray) -> str:
    """SHA-1 of the decoded pixels and their shape: equal for pixel-identical images
    whatever the file format, name or metadata."""
    h = hashlib.sha1(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def file_content_hash(path: str | Path, frame: int = 0) -> str:
    """:func:`content_hash` of the decoded grayscale image (frame ``frame``) at ``path``."""
    return content_hash(read_gray(path, frame))


@dataclass(frozen=True)
class ImageInfo:
    """What validation needs of one decoded file: (H, W), pixel hash, and read as a mask: the lesion's
    bbox (x0, y0, x1, y1; x1/y1 exclusive; None when no pixel is lesion) and the lesion's share of
    the frame (0-1); for DICOM also its frame count and whether it declares burned-in annotation."""

    shape: tuple[int, int]
    hash: str
    foreground: tuple[int, int, int, int] | None
    coverage: float = 0.0
    n_frames: int = 1
    burned_in: bool = False


ImageCache = MutableMapping[str, "ImageInfo | ImageReadError"]


def _decode(path: str, frame: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """(gray (H, W) uint8, lesion (H, W) bool, n_frames, burned-in annotation) of one frame."""
    if is_dicom(path):
        px, info = _read_dicom(path, frame)
        lesion = px == 1 if px.size and px.max() <= 1 else px >= 128
        return px, lesion, info.n_frames, info.burned_in
    _single(path, frame)
    img = _open(path)
    return _gray(img, path), _lesion(img, path), 1, False


def probe_image(path: str | Path, cache: ImageCache | None = None, frame: int = 0) -> ImageInfo:
    """Decode frame ``frame`` of ``path`` once (memoised in ``cache`` under :func:`image_key`) ->
    :class:`ImageInfo`; raises ``ImageReadError``."""
    key = image_key(path, frame)
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        try:
            px, lesion, n_frames, burned = _decode(str(path), frame)
            rows, cols = np.flatnonzero(lesion.any(axis=1)), np.flatnonzero(lesion.any(axis=0))
            fg = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else None
            hit = ImageInfo((int(px.shape[0]), int(px.shape[1])), content_hash(px), fg, float(lesion.mean()),
                            n_frames, burned)
        except ImageReadError as exc:
            hit = exc
        if cache is not None:
            cache[key] = hit
    if isinstance(hit, ImageReadError):
        raise hit
    return hit


def mask_union_bbox(paths: Iterable[str | Path], cache: ImageCache | None = None
                    ) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1; exclusive) of the union of the masks' lesion pixels, or None."""
    boxes = [b for p in paths if (b := probe_image(p, cache).foreground) is not None]
    if not boxes:
        return None
    arr = np.array(boxes)
    return int(arr[:, 0].min()), int(arr[:, 1].min()), int(arr[:, 2].max()), int(arr[:, 3].max())
