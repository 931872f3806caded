"""Generated DICOM files for tests: B-mode stills, clips, YBR and JPEG baseline, with sentinel patient tags."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

#: sentinel values of the patient tags: none may ever appear in anything liver-mm writes
SENTINELS = {"PatientName": "Zzsentinel^Quokka", "PatientID": "PIDSENTINEL9731",
             "PatientBirthDate": "19011231", "AccessionNumber": "ACCSENTINEL4420",
             "InstitutionName": "Sentinel Hospital Qx", "ReferringPhysicianName": "Drsentinel^Wombat",
             "StudyID": "STUDYSENTINEL77"}


def ramp(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    """(H, W) uint8 known gray pattern: a horizontal ramp plus a per-seed offset."""
    x = np.linspace(0, 200, w).round().astype(np.int64)
    y = (np.arange(h) * 1 + seed * 7) % 50
    return ((x[None, :] + y[:, None]) % 256).astype(np.uint8)


Region = tuple[int, int, int, int, float]  # RegionLocationMinX0, MinY0, MaxX1, MaxY1 (inclusive), cm per px


def _region(x0: int, y0: int, x1: int, y1: int, cm: float) -> Dataset:
    reg = Dataset()
    reg.RegionLocationMinX0, reg.RegionLocationMinY0 = x0, y0
    reg.RegionLocationMaxX1, reg.RegionLocationMaxY1 = x1, y1
    reg.PhysicalUnitsXDirection, reg.PhysicalUnitsYDirection = 3, 3
    reg.PhysicalDeltaX, reg.PhysicalDeltaY = cm, cm
    reg.RegionSpatialFormat, reg.RegionDataType = 1, 1
    return reg


def _base(sop_class: str, transfer: str, region_cm: float | None, burned_in: bool,
          regions: list[Region] | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    for tag, value in SENTINELS.items():
        setattr(ds, tag, value)
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = [_region(*r) for r in regions]
    elif region_cm is not None:
        ds.SequenceOfUltrasoundRegions = [_region(0, 0, 1000, 1000, region_cm)]
    return ds


def write_dicom(path: Path, gray: np.ndarray | list[np.ndarray], photometric: str = "MONOCHROME2",
                jpeg: bool = False, region_cm: float | None = 0.01, burned_in: bool = False,
                regions: list[Region] | None = None) -> Path:
    """Write (H, W) uint8 ``gray`` (a list: a multi-frame clip) as a DICOM file.

    ``region_cm``: one calibrated region covering the image; ``regions``: these calibrated regions instead.

    ``photometric``: MONOCHROME2, RGB (gray repeated in R, G, B) or YBR_FULL (Y = gray, Cb = Cr = 128);
    ``jpeg``: Pillow-encoded JPEG baseline (YBR_FULL_422 for colour, quality 100)."""
    frames = gray if isinstance(gray, list) else [gray]
    clip = len(frames) > 1
    ds = _base(UltrasoundMultiFrameImageStorage if clip else UltrasoundImageStorage,
               JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian, region_cm, burned_in, regions)
    h, w = frames[0].shape
    ds.Rows, ds.Columns = h, w
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if clip:
        ds.NumberOfFrames = len(frames)
    mono = photometric.startswith("MONO")
    ds.SamplesPerPixel = 1 if mono else 3
    if not mono:
        ds.PlanarConfiguration = 0
    if jpeg:
        mode = "L" if mono else "RGB"
        parts = []
        for f in frames:
            img = Image.fromarray(f if mono else np.repeat(f[..., None], 3, axis=2), mode)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=100, subsampling=0)
            parts.append(buf.getvalue())
        ds.PhotometricInterpretation = "MONOCHROME2" if mono else "YBR_FULL_422"
        ds.PixelData = encapsulate(parts)
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation = photometric
        if photometric == "RGB":
            data = [np.repeat(f[..., None], 3, axis=2) for f in frames]
        elif photometric == "YBR_FULL":
            data = [np.stack([f, np.full_like(f, 128), np.full_like(f, 128)], axis=2) for f in frames]
        else:
            data = frames
        ds.PixelData = np.ascontiguousarray(np.stack(data)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
