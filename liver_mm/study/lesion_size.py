"""Lesion size in millimetres for the cohort table, from DICOM ultrasound regions (pandas only).

A DICOM's ``SequenceOfUltrasoundRegions`` gives the physical size of a pixel; the importer records it as
``mm_per_px_x`` / ``mm_per_px_y`` and the schema derives the box's ``bbox_w_mm`` / ``bbox_h_mm``. PNG
images and DICOMs without a region in cm have no calibration: those rows are counted, never guessed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liver_mm.io.schema import SIZE_MM_COLUMNS as SIZE_COLUMNS


def has_sizes(df: pd.DataFrame) -> bool:
    """True when some nodule's box has a calibrated size in mm."""
    return all(c in df.columns for c in SIZE_COLUMNS) and bool(
        pd.to_numeric(df[SIZE_COLUMNS[0]], errors="coerce").notna().any())


def _median_iqr(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if v.size == 0:
        return "–"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{med:.1f} ({q1:.1f}–{q3:.1f})"


def lesion_size_table(df: pd.DataFrame, label_col: str = "label") -> pd.DataFrame:
    """Per class (benign, malignant, all): calibrated n/N and the median (Q1–Q3) box width and height in mm.

    Columns: class, calibrated (``n/N``), width_mm, height_mm. Raises ``ValueError`` without size columns.
    """
    if not all(c in df.columns for c in SIZE_COLUMNS):
        raise ValueError(f"no lesion sizes in mm: columns {', '.join(SIZE_COLUMNS)} are absent")
    rows = []
    groups = [(c, df[df[label_col] == c]) for c in ("benign", "malignant") if (df[label_col] == c).any()]
    for name, part in [*groups, ("all", df)]:
        ok = pd.to_numeric(part[SIZE_COLUMNS[0]], errors="coerce").notna()
        rows.append({"class": name, "calibrated": f"{int(ok.sum())}/{len(part)}",
                     "width_mm": _median_iqr(part[SIZE_COLUMNS[0]]), "height_mm": _median_iqr(part[SIZE_COLUMNS[1]])})
    return pd.DataFrame(rows, columns=["class", "calibrated", "width_mm", "height_mm"])
