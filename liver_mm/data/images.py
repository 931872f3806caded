"""Image reading shared by validation, splitting, cropping and serving.

Images are read as 8-bit grayscale (B-mode ultrasound is single-channel; RGB exports are
converted with ITU-R 601 luma). Every reader raises :class:`ImageReadError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """An image file is missing, truncated or not an image."""


def _open(source: str | Path | bytes) -> Image.Image:
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        img = Image.open(io.BytesIO(source)) if isinstance(source, bytes) else Image.open(source)
        img.load()  # forces a full decode: catches truncated files
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from exc
    return img


def read_gray(source: str | Path | bytes) -> np.ndarray:
    """Decode an image file (or its bytes) to a 2-D ``uint8`` array of shape (H, W)."""
    img = _open(source)
    if img.mode in ("I;16", "I;16B", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        return np.clip(arr / max(hi, 1.0) * 255.0, 0, 255).astype(np.uint8)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def image_shape(source: str | Path) -> tuple[int, int]:
    """(height, width) in pixels, without keeping the decoded image."""
    img = _open(source)
    return img.height, img.width


def content_hash(pixels: np.ndarray) -> str:
    """SHA-1 of the decoded pixels and their shape: equal for pixel-identical images
    whatever the file format, name or metadata."""
    h = hashlib.sha1(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def file_content_hash(path: str | Path) -> str:
    """:func:`content_hash` of the decoded grayscale image at ``path``."""
    return content_hash(read_gray(path))


@dataclass(frozen=True)
class ImageInfo:
    """What validation needs of one decoded file: (H, W), pixel hash, foreground bbox (x0, y0, x1, y1)."""

    shape: tuple[int, int]
    hash: str
    foreground: tuple[int, int, int, int] | None


ImageCache = MutableMapping[str, "ImageInfo | ImageReadError"]


def probe_image(path: str | Path, cache: ImageCache | None = None) -> ImageInfo:
    """Decode ``path`` once (memoised in ``cache``) -> :class:`ImageInfo`; raises ``ImageReadError``."""
    key = str(path)
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        try:
            px = read_gray(key)
            rows, cols = np.flatnonzero(px.any(axis=1)), np.flatnonzero(px.any(axis=0))
            fg = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else None
            hit = ImageInfo((int(px.shape[0]), int(px.shape[1])), content_hash(px), fg)
        except ImageReadError as exc:
            hit = exc
        if cache is not None:
            cache[key] = hit
    if isinstance(hit, ImageReadError):
        raise hit
    return hit


def mask_union_bbox(paths: Iterable[str | Path], cache: ImageCache | None = None
                    ) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1; exclusive) of the union of the masks' non-zero pixels, or None."""
    boxes = [b for p in paths if (b := probe_image(p, cache).foreground) is not None]
    if not boxes:
        return None
    arr = np.array(boxes)
    return int(arr[:, 0].min()), int(arr[:, 1].min()), int(arr[:, 2].max()), int(arr[:, 3].max())
