"""``liver-mm import-folder``: build a manifest from a class-per-folder image set (BUSI layout).

Supported layouts, one folder per class under ``root``::

    root/<class>/images/<name>.png   root/<class>/mask(s)/<name>_mask.png, <name>_mask_1.png
    root/<class>/<name>.png          root/<class>/<name>_mask.png          (side by side)

Images may be PNG, JPEG, BMP, TIFF or DICOM (``.dcm``; masks too). A DICOM image adds its ultrasound
region's pixel size (``mm_per_px_x`` / ``mm_per_px_y``, empty when the file declares none in cm);
a DICOM clip (several frames) is read at ``frame`` 0 (a ``frame`` column is written: edit it to
the frame the mask was drawn on). No DICOM header field other than these is read.

Each image needs at least one mask (its bbox is the bounding box of the union of its masks);
images without a usable mask, folders not mapped to a label and masks without an image are
skipped and counted. An optional clinical table (CSV of any dialect or .xlsx; see
:class:`~liver_mm.io.dialect.TableOptions` for separators, decimal commas, censored values and
code mappings) is joined on a key column: its headers match the
schema case-insensitively (``AST`` -> ``ast``, logged), the number of cases it matches is reported,
and a table matching no case is an error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from liver_mm.io.codes import CENSORED_SUFFIX
from liver_mm.io.dialect import TableOptions
from liver_mm.io.dicom import DICOM_SUFFIXES, DicomReadError, dicom_info, is_dicom
from liver_mm.io.images import ImageReadError, mask_union_bbox
from liver_mm.io.schema import (
    BBOX_COLUMNS,
    FRAME_COLUMN,
    LABELS,
    MM_COLUMNS,
    ManifestError,
    convert_units,
    known_columns,
    read_raw_table,
    recode,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES})
MASK_STEM = re.compile(r"^(?P<base>.+?)_mask(?:[ _-]?\d+)?$", re.IGNORECASE)
_IMAGE_DIRS, _MASK_DIRS = {"images", "image", "imgs"}, {"mask", "masks"}
_GENERATED = ("case_id", "image_path", "mask_path", "label", *BBOX_COLUMNS, FRAME_COLUMN, *MM_COLUMNS)


@dataclass
class ImportResult:
    """What :func:`import_folder` wrote and what it skipped (paths relative to ``root``)."""

    manifest: Path
    frame: pd.DataFrame
    skipped_folders: dict[str, int] = field(default_factory=dict)  # unmapped folder -> n images
    no_mask: list[str] = field(default_factory=list)  # images without a usable mask (skipped)
    orphan_masks: list[str] = field(default_factory=list)  # masks without an image (ignored)
    missing_labs: list[str] = field(default_factory=list)  # case_ids without a clinical row
    unused_labs: list[str] = field(default_factory=list)  # clinical keys matching no case
    clinical_matched: int | None = None  # cases with a clinical row (None: no clinical table)

    def summary(self) -> str:
        counts = self.frame["label"].value_counts().reindex(list(LABELS), fill_value=0)
        parts = [f"wrote {len(self.frame)} cases ({', '.join(f'{n} {k}' for k, n in counts.items())}) "
                 f"to {self.manifest}"]
        if self.clinical_matched is not None:
            parts.append(f"clinical data matched {self.clinical_matched} of {len(self.frame)} cases"
                         + (f" ({len(self.missing_labs)} without clinical data)" if self.missing_labs else ""))
        if self.skipped_folders:
            parts.append("skipped unmapped folders: " + ", ".join(
                f"{k} ({n} images)" for k, n in self.skipped_folders.items()))
        for name, items in (("images without a usable mask (skipped)", self.no_mask),
                            ("masks without an image (ignored)", self.orphan_masks),
                            ("cases without clinical data", self.missing_labs),
                            ("clinical rows matching no case", self.unused_labs)):
            if items:
                more = f", ... ({len(items)} in all)" if len(items) > 5 else ""
                parts.append(f"{name}: {', '.join(items[:5])}{more}")
        return "\n".join(parts)


def _pair_masks(folder: Path) -> tuple[list[tuple[Path, list[Path]]], list[Path]]:
    """[(image, [masks])] sorted by path, and the masks left without an image."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    images: dict[tuple[Path, str], Path] = {}
    masks: dict[tuple[Path, str], list[Path]] = {}
    for p in files:
        m = MASK_STEM.match(p.stem)
        if m:
            home = p.parent.parent if p.parent.name.lower() in _MASK_DIRS else p.parent
            masks.setdefault((home, m["base"]), []).append(p)
        else:
            home = p.parent.parent if p.parent.name.lower() in _IMAGE_DIRS else p.parent
            images[(home, p.stem)] = p
    pairs = [(img, masks.get(key, [])) for key, img in images.items()]
    orphans = [m for key, ms in masks.items() if key not in images for m in ms]
    return pairs, orphans


def _case_id(root: Path, image: Path) -> str:
    rel = image.relative_to(root).with_suffix("")
    return "/".join(part for part in rel.parts[:-1] if part.lower() not in _IMAGE_DIRS) + "/" + rel.name


def _dicom_fields(image: Path, box: tuple[int, int, int, int]) -> dict[str, object]:
    """mm_per_px_x/y (of the region holding the box; empty outside every one) and frame count of a DICOM image."""
    try:
        info = dicom_info(image, box)
    except DicomReadError:
        return {}
    mm = info.mm_per_px or (None, None)
    return {"_frames": info.n_frames, **dict(zip(MM_COLUMNS, mm, strict=True))}


def _join_clinical(df: pd.DataFrame, clinical: Path, on: str, units: Mapping[str, str] | None,
                   result: ImportResult, options: TableOptions | None = None) -> pd.DataFrame:
    labs = recode(read_raw_table(clinical, options=options), options)
    if on not in labs.columns and on.lower() in {c.lower() for c in known_columns()}:
        on = next(c for c in known_columns() if c.lower() == on.lower())  # its header was matched to it
    if on not in labs.columns:
        raise ManifestError(f"{clinical}: no key column {on!r} (columns: {', '.join(labs.columns)})", column=on)
    dup = labs[on].dropna().duplicated(keep=False)
    if dup.any():
        lines = ", ".join(map(str, labs[on].dropna().index[dup][:8]))
        raise ManifestError(f"{clinical}, lines {lines}: duplicate {on} values; one row per case", column=on)
    dropped = [c for c in labs.columns if c in _GENERATED and c != on]
    if dropped:
        log.warning("%s: ignoring column(s) %s (taken from the image folders)", clinical, ", ".join(dropped))
    labs = labs.drop(columns=dropped).dropna(subset=[on]).rename(columns={on: "_key"})
    labs = convert_units(labs, units)
    pid = labs.pop("patient_id") if "patient_id" in labs.columns else None
    merged = df.merge(labs, how="left", left_on="case_id", right_on="_key", validate="one_to_one")
    if pid is not None:
        mapped = merged["case_id"].map(dict(zip(labs["_key"], pid, strict=True)))
        merged["patient_id"] = mapped.fillna(merged["patient_id"])
    for col in [c for c in merged.columns if c.endswith(CENSORED_SUFFIX)]:
        merged[col] = merged[col].fillna(0).astype("int64")  # a case without clinical row: nothing censored
    result.missing_labs = merged.loc[merged["_key"].isna(), "case_id"].tolist()
    result.unused_labs = sorted(set(labs["_key"]) - set(df["case_id"]))
    result.clinical_matched = len(df) - len(result.missing_labs)
    if result.clinical_matched == 0:
        raise ManifestError(f"{clinical}: none of its {len(labs)} {on} values matches a case_id (case_ids are "
                            f"<class folder>/<image stem>, e.g. {df['case_id'].iloc[0]!r}): fix the key column "
                            "or pass --on COLUMN", column=on)
    if result.missing_labs:
        log.warning("import-folder: %d of %d cases have no clinical row in %s (matched on %s)",
                    len(result.missing_labs), len(df), clinical, on)
    return merged.drop(columns="_key")


def _dicom_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Keep mm_per_px_x/y when any image declared them; add ``frame`` (0) when any image is a clip."""
    frames = df.pop("_frames") if "_frames" in df.columns else None
    for col in MM_COLUMNS:
        if col in df.columns and df[col].isna().all():
            df = df.drop(columns=col)
    if frames is not None and (frames > 1).any():
        df[FRAME_COLUMN] = 0
        log.warning("import-folder: %d DICOM clip(s) read at frame 0: set the frame column (0-based) to the "
                    "frame each mask was drawn on", int((frames > 1).sum()))
    return df


def import_folder(root: str | Path, out: str | Path, classes: Mapping[str, str] | None = None,
                  clinical: str | Path | None = None, on: str = "case_id",
                  units: Mapping[str, str] | None = None, options: TableOptions | None = None) -> ImportResult:
    """Scan ``root``'s class folders and write a manifest CSV to ``out``.

    ``classes``: folder name -> label (benign/malignant); default: folders named benign /
    malignant (any case). ``clinical``: a CSV joined where its ``on`` column equals the case_id
    (``<class>/<image stem>``); a ``patient_id`` column there overrides the default (= case_id);
    its declared ``units`` are converted to canonical ones and ``options`` say how it is written
    (separator, decimal mark, censored values, code mappings). Paths are written relative to
    ``out``'s folder. Raises ``ValueError`` / ``ManifestError`` on unusable input.
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if classes is None:
        classes = {p.name: p.name.lower() for p in folders if p.name.lower() in LABELS}
    bad = {k: v for k, v in classes.items() if v not in LABELS}
    absent = [k for k in classes if not (root / k).is_dir()]
    if bad or absent:
        raise ValueError(f"--class: labels must be benign/malignant (got {bad})" if bad
                         else f"--class: no folder {', '.join(absent)} in {root}")
    result = ImportResult(out, pd.DataFrame())
    rows: list[dict[str, object]] = []
    base = out.resolve().parent
    for folder in folders:
        pairs, orphans = _pair_masks(folder)
        if folder.name not in classes:
            result.skipped_folders[folder.name] = len(pairs)
            continue
        result.orphan_masks += [str(m.relative_to(root)) for m in orphans]
        for image, masks in pairs:
            try:
                box = mask_union_bbox(masks) if masks else None
            except ImageReadError as exc:
                log.warning("%s: unreadable mask (%s)", image, exc)
                box = None
            if box is None:
                result.no_mask.append(str(image.relative_to(root)))
                continue
            rel = [Path(os.path.relpath(p.resolve(), base)).as_posix() for p in (image, *masks)]
            rows.append({"case_id": _case_id(root, image), "image_path": rel[0], "mask_path": ";".join(rel[1:]),
                         **dict(zip(BBOX_COLUMNS, box, strict=True)), "label": classes[folder.name],
                         **(_dicom_fields(image, box) if is_dicom(image) else {})})
    if not rows:
        raise ValueError(f"{root}: no image with a mask in the mapped class folders "
                         f"({', '.join(classes) or 'none mapped; use --class FOLDER=LABEL'})")
    df = _dicom_columns(pd.DataFrame(rows))
    clash = df["case_id"].duplicated(keep=False)
    df.loc[clash, "case_id"] += df.loc[clash, "image_path"].map(lambda p: Path(p).suffix)  # a.png, a.jpg
    df.insert(1, "patient_id", df["case_id"])
    if clinical is not None:
        df = _join_clinical(df, Path(clinical), on, units, result, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    result.frame = df
    for what, items in (("skipped folders", result.skipped_folders), ("images without mask", result.no_mask)):
        if items:
            log.warning("import-folder: %d %s", len(items), what)
    return result
