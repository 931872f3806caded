"""Checks that need the pixels: image files, bounding boxes, masks, pixel-identical images.

Every file is decoded once per validation (:func:`~liver_mm.io.images.probe_image` with a
shared cache), several at a time. Masks are read by the rules of :mod:`liver_mm.io.images`
(lesion = at least half the bit depth's range); a mask whose lesion covers more than
:data:`INVERTED_MASK_SHARE` of the frame, or whose box is the whole frame, is flagged (``mask_inverted``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cohort.grouping import split_leaks
from liver_mm.cohort.validate_report import Collector, Severity
from liver_mm.io.images import ImageCache, ImageInfo, ImageReadError, image_key, probe_image
from liver_mm.io.schema import (
    BBOX2_COLUMNS,
    BBOX_COLUMNS,
    FRAME_COLUMN,
    NON_NUMERIC_ATTR,
    SPLITS,
    split_paths,
)

SAME_NODULE_IOU = 0.5  # identical frames of one patient: boxes overlapping this much are one nodule
INVERTED_MASK_SHARE = 0.5  # a lesion covering more of the frame than this is likely an inverted mask


def _probe_all(items: list[tuple[str, int]], cache: ImageCache) -> None:
    todo = [it for it in dict.fromkeys(items) if image_key(*it) not in cache]
    workers = min(4, os.cpu_count() or 1, max(len(todo), 1))
    with ThreadPoolExecutor(workers) as pool:  # PIL decodes PNG/JPEG outside the GIL
        results = pool.map(_safe_probe, todo)
        cache.update(zip((image_key(*it) for it in todo), results, strict=True))


def _safe_probe(item: tuple[str, int]) -> ImageInfo | ImageReadError:
    try:
        return probe_image(item[0], frame=item[1])
    except ImageReadError as exc:
        return exc


def frames(df: pd.DataFrame, out: Collector | None = None) -> pd.Series:
    """The 0-based frame of each row's image (``frame`` column; empty -> 0). With ``out``, a value that
    is not a whole number >= 0 is an error (``frame_invalid``) and the row reads frame 0."""
    if FRAME_COLUMN not in df.columns:
        return pd.Series(0, index=df.index, dtype="int64")
    col = pd.to_numeric(df[FRAME_COLUMN], errors="coerce")
    raw = df.attrs.get(NON_NUMERIC_ATTR, {}).get(FRAME_COLUMN, {})
    bad = (col.notna() & ((col < 0) | (col % 1 != 0))) | col.index.isin(list(raw))
    for idx in df.index[bad] if out is not None else []:
        shown = raw.get(idx, df.at[idx, FRAME_COLUMN])
        out.add("error", "frame_invalid", f"frame = {shown!r} is not a frame index: give a whole number "
                ">= 0 (0 = the first frame of a DICOM clip) or leave it empty", idx, FRAME_COLUMN)
    return col.where(~bad & col.notna(), 0).astype("int64")


def _file_problem(path: str, err: ImageReadError, idx: object, column: str, out: Collector) -> None:
    what = "image" if column == "image_path" else "mask"
    if err.reason == "too_large":
        out.add("error", f"{what}_too_large", f"{what} file {err}", idx, column)
    elif err.reason == "frame":
        out.add("error", "frame_out_of_range", f"{err}: fix the frame column (0-based)", idx, FRAME_COLUMN)
    elif err.reason == "value_range":
        out.add("error", f"{what}_unreadable", f"{what} file {err}", idx, column)
    elif not Path(path).exists():
        out.add("error", f"{what}_missing",
                f"{what} file {path} not found: fix {column} (relative to the manifest's folder) "
                "or add the file", idx, column)
    else:
        out.add("error", f"{what}_unreadable",
                f"cannot decode {what} {path} ({err}): re-export it (truncated or not an image)", idx, column)


def check_files(df: pd.DataFrame, out: Collector, cache: ImageCache) -> dict[object, tuple[int, int]]:
    """Decode every image and mask; report missing/unreadable files and masks that do not fit
    their image. Returns {index label: image (H, W)} for the readable images."""
    images = df["image_path"].where(df["image_path"].notna(), None)
    frame = frames(df, out)
    masks = df["mask_path"].map(split_paths) if "mask_path" in df.columns else pd.Series(
        [[]] * len(df), index=df.index)
    _probe_all([(p, int(f)) for p, f in zip(images, frame, strict=True) if p]
               + [(m, 0) for ms in masks for m in ms], cache)
    shapes: dict[object, tuple[int, int]] = {}
    for idx, path in images.items():
        if not path:
            continue
        info = cache[image_key(path, int(frame[idx]))]
        if isinstance(info, ImageReadError):
            _file_problem(path, info, idx, "image_path", out)
            continue
        shapes[idx] = info.shape
        if info.burned_in:
            out.add("warning", "burned_in_annotation", f"{path} declares BurnedInAnnotation = YES: text "
                    "(possibly patient details) is burned into the pixels; crop it away or de-identify the "
                    "frame before sharing crops or figures", idx, "image_path")
    for idx, paths in masks.items():
        infos = [(p, cache[p]) for p in paths]
        for p, info in infos:
            if isinstance(info, ImageReadError):
                _file_problem(p, info, idx, "mask_path", out)
        good = [(p, i) for p, i in infos if isinstance(i, ImageInfo)]
        if good and all(i.foreground is None for _, i in good) and len(good) == len(infos):
            out.add("error", "mask_empty", f"mask(s) {', '.join(p for p, _ in good)} have no foreground "
                    "pixel: redraw the mask or give a bbox", idx, "mask_path")
        for p, info in good:
            _check_inverted(p, info, idx, out)
        shape = shapes.get(idx)
        for p, info in good if shape is not None else []:
            if info.shape == shape:
                continue
            fg = info.foreground
            h, w = shape
            outside = fg is not None and (fg[2] > w or fg[3] > h)
            out.add("error", "mask_outside" if outside else "mask_size_mismatch",
                    f"mask {p} is {info.shape[1]}x{info.shape[0]} px but its image is {w}x{h} px"
                    + (f" and its foreground reaches x={fg[2]}, y={fg[3]}, outside the image" if outside else "")
                    + ": export the mask at the image's size", idx, "mask_path")
    return shapes


def _check_inverted(path: str, info: ImageInfo, idx: object, out: Collector) -> None:
    h, w = info.shape
    whole = info.foreground == (0, 0, w, h)
    if info.foreground is None or not (whole or info.coverage > INVERTED_MASK_SHARE):
        return
    why = f"the lesion covers {100 * info.coverage:.0f}% of the frame" + (
        " and its box is the whole frame" if whole else "")
    out.add("warning", "mask_inverted", f"mask {path}: {why}; is it inverted (lesion black on white)? "
            "Pixels >= half the range (>= 128 of 255) count as lesion: re-export it white on black, "
            "or give the bbox", idx, "mask_path")


def check_bboxes(df: pd.DataFrame, shapes: Mapping[object, tuple[int, int]] | None, out: Collector) -> None:
    """bbox present, numeric, non-empty and inside the image (second observer's box: warnings)."""
    bad = df.attrs.get(NON_NUMERIC_ATTR, {})
    has_mask = df["mask_path"].notna() if "mask_path" in df.columns else pd.Series(False, index=df.index)
    for cols, severity in ((BBOX_COLUMNS, "error"), (BBOX2_COLUMNS, "warning")):
        present = [c for c in cols if c in df.columns]
        if not present:
            continue
        for col in present:
            for idx, raw in bad.get(col, {}).items():
                out.add(severity, "bbox_invalid", f"{col} = {raw!r} is not a pixel coordinate", idx, col)
        box = df.reindex(columns=list(cols)).astype("float64")
        n_missing = box.isna().sum(axis=1)
        required = severity == "error"
        for idx in df.index[(n_missing == 4) & required & ~has_mask]:
            out.add("error", "bbox_missing", "no bounding box and no mask: fill bbox_x0..bbox_y1 (pixels, "
                    "x1/y1 exclusive) or give mask_path", idx, cols[0])
        for idx in df.index[(n_missing > 0) & (n_missing < 4)]:
            gone = [c for c in cols if pd.isna(box.at[idx, c])]
            if not any(idx in bad.get(c, {}) for c in gone):
                out.add(severity, "bbox_invalid", f"incomplete box: {', '.join(gone)} empty", idx, gone[0])
        _check_box_geometry(box[n_missing == 0], shapes, severity, out, cols)


def _check_box_geometry(box: pd.DataFrame, shapes: Mapping[object, tuple[int, int]] | None, severity: Severity,
                        out: Collector, cols: tuple[str, ...]) -> None:
    x0, y0, x1, y1 = (box[c] for c in cols)
    for idx in box.index[(x1 <= x0) | (y1 <= y0)]:
        out.add(severity, "bbox_empty", f"box ({_box(box, idx)}) has no area: x1 must exceed x0 and y1 "
                "exceed y0 (x1, y1 exclusive)", idx, cols[0])
    for idx in box.index[(x1 > x0) & (y1 > y0)]:
        shape = shapes.get(idx) if shapes is not None else None
        h, w = shape if shape is not None else (np.inf, np.inf)
        if x0[idx] < 0 or y0[idx] < 0 or x1[idx] > w or y1[idx] > h:
            size = f"the {w}x{h} px image" if shape is not None else "the image (negative coordinate)"
            out.add(severity, "bbox_outside", f"box ({_box(box, idx)}) extends outside {size}: "
                    "fix the coordinates (pixels, origin top-left)", idx, cols[0])


def _box(box: pd.DataFrame, idx: object) -> str:
    return ", ".join(f"{v:g}" for v in box.loc[idx])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def check_identical(df: pd.DataFrame, cache: ImageCache, out: Collector) -> None:
    """Pixel-identical images across rows: one nodule entered twice (different patients, or
    overlapping boxes) is an error when the labels differ and a warning otherwise; the same
    frame in two splits is a leak (:func:`~liver_mm.cohort.grouping.split_leaks`). Two nodules boxed in one frame of one patient are fine."""
    keys = [image_key(p, int(f)) if isinstance(p, str) else None
            for p, f in zip(df["image_path"], frames(df), strict=True)]
    hashes = pd.Series([i.hash if k is not None and isinstance(i := cache.get(k), ImageInfo) else None
                        for k in keys], index=df.index, dtype=object)
    box = df.reindex(columns=list(BBOX_COLUMNS)).astype("float64").to_numpy()
    for _, rows in df[hashes.notna()].groupby(hashes[hashes.notna()], sort=False):
        if len(rows) < 2:
            continue
        idxs = list(rows.index)
        for j, b in enumerate(idxs[1:], start=1):
            for a in idxs[:j]:
                pa, pb = df.at[a, "patient_id"], df.at[b, "patient_id"]
                ba, bb = box[df.index.get_loc(a)], box[df.index.get_loc(b)]
                overlap = np.isnan(ba).any() or np.isnan(bb).any() or _iou(ba, bb) >= SAME_NODULE_IOU
                if pa == pb and not overlap:
                    continue
                la, lb = df.at[a, "label"], df.at[b, "label"]
                conflict = isinstance(la, str) and isinstance(lb, str) and la != lb
                out.add("error" if conflict else "warning",
                        "image_duplicate_label_conflict" if conflict else "image_duplicate",
                        f"image is pixel-identical to {out.case(a)}"
                        + (f" but labelled {lb} vs {la}: fix the label or drop one row" if conflict
                           else ": the same nodule twice? drop one row")
                        + (f" (patients {pb} / {pa})" if pa != pb and not pd.isna(pa) and not pd.isna(pb) else ""),
                        b, "image_path")
                break
    if "split" in df.columns:
        for leak in split_leaks(df, df["split"].where(df["split"].isin(SPLITS)), hashes):
            if leak.kind == "image":
                out.add("error", "split_leak_image", leak.message(out.lines), leak.last_row, "split")
