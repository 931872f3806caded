"""DICOM ultrasound stills and multi-frame clips: 8-bit grayscale pixels, pixel size in mm, burned-in text.

Decoded with pydicom (JPEG baseline through Pillow; the ``liver-mm[dicom-jpeg]`` extra adds the
pylibjpeg decoders for JPEG-LS / JPEG 2000 / lossless JPEG). Photometric interpretations:

- ``MONOCHROME2`` as stored, ``MONOCHROME1`` inverted (0 = white);
- ``RGB`` (and ``PALETTE COLOR``, expanded) -> ITU-R 601 luma, exactly as Pillow's ``convert("L")``
  reads an RGB PNG;
- ``YBR_FULL`` / ``YBR_FULL_422`` (also when JPEG-compressed) -> the stored Y channel (the luma);
- more than 8 bits stored are scaled by the bit depth (``round(v * 255 / (2**BitsStored - 1))``).

A clip (NumberOfFrames > 1) is read one frame at a time (``frame``, 0-based).

Only the image-pixel module, ``SequenceOfUltrasoundRegions`` (PhysicalDeltaX/Y where
PhysicalUnitsX/YDirection = 3, centimetres; a lesion box outside every such region gets no pixel size)
and ``BurnedInAnnotation`` are looked at: no patient, study or device tag is ever read into a return
value, a message or a log line.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
_CM = 3  # PhysicalUnitsX/YDirection code for centimetres

log = logging.getLogger(__name__)


class DicomReadError(ValueError):
    """A DICOM file cannot be decoded; ``reason``: ``unreadable`` or ``frame`` (index out of range)."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class DicomInfo:
    """Header facts of one DICOM image: frame count, pixel size (x, y) in mm of its ultrasound
    region (None when the file declares none in cm), and whether text is burned into the pixels."""

    n_frames: int
    mm_per_px: tuple[float, float] | None
    burned_in: bool


def is_dicom(source: str | Path | bytes) -> bool:
    """True for a ``.dcm`` / ``.dicom`` path or bytes holding the DICM preamble marker."""
    if isinstance(source, bytes):
        return source[128:132] == b"DICM"
    return Path(source).suffix.lower() in DICOM_SUFFIXES


def _dataset(source: str | Path | bytes, name: str, pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        return pydicom.dcmread(fp, stop_before_pixels=not pixels)
    except FileNotFoundError:
        raise
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError) as exc:
        raise DicomReadError(f"{name}: not a readable DICOM file ({type(exc).__name__})") from None


def _regions_mm(ds, near: tuple[float, ...] | None, name: str) -> tuple[float, float] | None:
    """(x, y) mm per pixel of the cm-calibrated ultrasound region holding ``near`` (a point (x, y) or a box
    (x0, y0, x1, y1), x1/y1 exclusive, in pixels), else None (logged); without ``near``, the first one."""
    found: list[tuple[tuple[float, float], tuple[int, int, int, int]]] = []
    for reg in ds.get("SequenceOfUltrasoundRegions", None) or []:
        if reg.get("PhysicalUnitsXDirection") != _CM or reg.get("PhysicalUnitsYDirection") != _CM:
            continue
        dx, dy = reg.get("PhysicalDeltaX"), reg.get("PhysicalDeltaY")
        if dx is None or dy is None or float(dx) <= 0 or float(dy) <= 0:
            continue
        box = tuple(int(reg.get(k, d)) for k, d in (("RegionLocationMinX0", 0), ("RegionLocationMinY0", 0),
                                                   ("RegionLocationMaxX1", 1 << 30), ("RegionLocationMaxY1", 1 << 30)))
        found.append(((round(float(dx) * 10, 6), round(abs(float(dy)) * 10, 6)), box))  # cm -> mm
    if not found or near is None:
        return found[0][0] if found else None
    # region corners are inclusive pixel coordinates; a box's x1 / y1 are exclusive
    x0, y0, x1, y1 = (*near, *near) if len(near) == 2 else (*near[:2], near[2] - 1, near[3] - 1)
    for mm, (rx0, ry0, rx1, ry1) in found:
        if rx0 <= x0 and ry0 <= y0 and x1 <= rx1 and y1 <= ry1:
            return mm
    what = "point" if len(near) == 2 else "lesion box"
    regions = "; ".join(f"({b[0]}, {b[1]})-({b[2]}, {b[3]})" for _, b in found)
    log.warning("%s: the %s %s lies outside every calibrated ultrasound region (%s): no mm per pixel, "
                "no size in mm", name, what, tuple(round(float(v), 1) for v in near), regions)
    return None


def _info(ds, near: tuple[float, ...] | None = None, name: str = "<bytes>") -> DicomInfo:
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    return DicomInfo(int(ds.get("NumberOfFrames", 1) or 1), _regions_mm(ds, near, name), burned)


def dicom_info(source: str | Path | bytes, near: tuple[float, ...] | None = None) -> DicomInfo:
    """Read only the header of ``source``: :class:`DicomInfo`. ``near``: the lesion's box (x0, y0, x1, y1;
    x1/y1 exclusive) or a point (x, y) in pixels: the pixel size is that of the calibrated region holding
    it, and None (a logged warning naming the file) when no calibrated region holds it whole."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    return _info(_dataset(source, name, pixels=False), near, name)


def _to_uint8(arr: np.ndarray, bits: int, name: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        raise DicomReadError(f"{name}: floating-point DICOM pixel data is not supported; export 8-bit")
    if arr.size and int(arr.min()) < 0:
        raise DicomReadError(f"{name}: signed pixel values (min {int(arr.min())}); export unsigned 8-bit")
    if bits <= 8:
        return arr.astype(np.uint8)
    full = (1 << bits) - 1
    return np.round(np.clip(arr.astype(np.float64), 0, full) * 255.0 / full).astype(np.uint8)


def read_dicom(source: str | Path | bytes, frame: int = 0) -> tuple[np.ndarray, DicomInfo]:
    """Decode frame ``frame`` (0-based) of ``source`` -> ((H, W) uint8 grayscale, :class:`DicomInfo`).

    Raises ``FileNotFoundError`` or :class:`DicomReadError` naming the file (reason ``frame`` when
    ``frame`` is outside 0..NumberOfFrames-1)."""
    from pydicom.pixels import pixel_array

    name = "<bytes>" if isinstance(source, bytes) else str(source)
    ds = _dataset(source, name, pixels=True)
    info = _info(ds, name=name)
    if not 0 <= frame < info.n_frames:
        raise DicomReadError(f"{name}: frame {frame} does not exist: the clip has {info.n_frames} frame(s) "
                             f"(0-{info.n_frames - 1}, 0-based)", reason="frame")
    if "PixelData" not in ds:
        raise DicomReadError(f"{name}: the DICOM file holds no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        arr = pixel_array(ds, index=frame if info.n_frames > 1 else None, raw=True)
    except (RuntimeError, ValueError, NotImplementedError, AttributeError, KeyError) as exc:
        hint = " (install liver-mm[dicom-jpeg] for JPEG-LS / JPEG 2000 / lossless JPEG)"
        raise DicomReadError(f"{name}: cannot decode the pixel data of transfer syntax "
                             f"{ds.file_meta.get('TransferSyntaxUID', '?')}{hint}: {exc}") from None
    bits = int(ds.get("BitsStored", 8) or 8)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr, photometric, bits = apply_color_lut(arr, ds), "RGB", int(ds.get("BitsAllocated", 8))
    if arr.ndim == 3:
        if photometric.startswith("YBR"):
            arr = arr[..., 0]
        elif photometric == "RGB":
            from PIL import Image

            rgb = _to_uint8(arr, bits, name)
            return np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8), info
        else:
            raise DicomReadError(f"{name}: photometric interpretation {photometric} with 3 channels is "
                                 "not supported; export MONOCHROME2, RGB or YBR_FULL")
    if arr.ndim != 2:
        raise DicomReadError(f"{name}: pixel array of shape {arr.shape} is not one 2-D frame")
    gray = _to_uint8(arr, bits, name)
    return (255 - gray if photometric == "MONOCHROME1" else gray), info
