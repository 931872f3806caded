"""Turn a DDTI folder (images/, masks/, labels.csv) into a liver-mm cohort manifest.

    python experiments/ddti-recipe/make_manifest.py DDTI_DIR --out MANIFEST.csv [--include-unlabelled no]

DDTI (Pedraza et al., Proc. SPIE 9287, 2015; open access) holds thyroid B-mode nodule crops with binary masks.
Its ``label`` is a TI-RADS category, NOT pathology: ``benign`` = TI-RADS 2-3, ``suspicious`` = 4a-5. Here
suspicious is written as ``malignant`` so that liver-mm can train on it: a TI-RADS proxy task for developing and
testing the pipeline on real ultrasound, never a diagnostic result.

One row per labelled nodule: ``case_id`` = nodule_id; ``patient_id`` = the DDTI case number (the part of
image_id before ``_``: images ``130_1`` and ``130_2`` are two images of DDTI case 130, one patient with one
TI-RADS score), so the split keeps every nodule and every image of one patient together (two nodules of one
image share a case too); ``image_path`` / ``mask_path`` relative to the manifest's folder when the DDTI folder
lies inside it, else absolute; ``label``; extra columns ``image_id`` and ``tirads``. No clinical columns: only
the image-only model (``modalities=m1``) applies.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from liver_mm.io.images import ImageReadError, mask_union_bbox

LABEL_MAP = {"benign": "benign", "suspicious": "malignant"}  # DDTI label -> liver-mm label (a TI-RADS proxy)
REQUIRED = ("nodule_id", "image_id", "tirads", "label")
COLUMNS = ("case_id", "patient_id", "image_path", "mask_path", "label", "image_id", "tirads")


class DDTIError(ValueError):
    """The DDTI folder cannot be turned into a manifest (file, line and column named)."""


def _path_for(target: Path, manifest_dir: Path) -> str:
    """``target`` relative to ``manifest_dir`` when inside it (POSIX separators), else absolute."""
    target, manifest_dir = target.resolve(), manifest_dir.resolve()
    if target.is_relative_to(manifest_dir):
        return target.relative_to(manifest_dir).as_posix()
    return str(target)


def patient_of(image_id: str) -> str:
    """DDTI case number of an image id: ``'130_2'`` -> ``'130'``."""
    return image_id.split("_", 1)[0]


def build_rows(ddti_dir: Path, manifest_dir: Path, include_unlabelled: bool = False
               ) -> tuple[list[dict[str, str]], list[str]]:
    """Manifest rows (dicts keyed by :data:`COLUMNS`) in labels.csv order, and one warning per nodule dropped
    because its mask has no lesion pixel (no bbox to crop: 7 of the 457 labelled DDTI nodules).

    Raises :class:`DDTIError` naming labels.csv, the line and the column for a missing column, an unknown
    label, a malformed image id, a missing or unreadable image/mask file.
    """
    labels = ddti_dir / "labels.csv"
    if not labels.is_file():
        raise DDTIError(f"{labels}: not found (is {ddti_dir} a DDTI folder with images/, masks/, labels.csv?)")
    with labels.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DDTIError(f"{labels}, line 1: missing column(s) {', '.join(missing)}")
        rows: list[dict[str, str]] = []
        dropped: list[str] = []
        for rec in reader:
            line = reader.line_num
            nodule, image_id = rec["nodule_id"].strip(), rec["image_id"].strip()
            raw_label = rec["label"].strip().lower()
            if raw_label and raw_label not in LABEL_MAP:
                raise DDTIError(f"{labels}, line {line}, column label: {rec['label']!r} is not one of "
                                f"{', '.join(LABEL_MAP)} or empty")
            if not raw_label and not include_unlabelled:
                continue
            if not nodule or "_" not in image_id or not patient_of(image_id):
                raise DDTIError(f"{labels}, line {line}, column image_id: {image_id!r} is not <case>_<image>")
            paths = {}
            for col, sub in (("image_path", "images"), ("mask_path", "masks")):
                file = ddti_dir / sub / f"{nodule}.png"
                if not file.is_file():
                    raise DDTIError(f"{labels}, line {line}, column nodule_id: {file} not found")
                paths[col] = _path_for(file, manifest_dir)
            try:
                empty = mask_union_bbox([ddti_dir / "masks" / f"{nodule}.png"]) is None
            except ImageReadError as exc:
                raise DDTIError(f"{labels}, line {line}, column nodule_id: {exc}") from None
            if empty:
                dropped.append(f"{labels}, line {line}: nodule {nodule} dropped: its mask has no lesion pixel")
                continue
            rows.append({"case_id": nodule, "patient_id": patient_of(image_id), **paths,
                         "label": LABEL_MAP.get(raw_label, ""), "image_id": image_id,
                         "tirads": rec["tirads"].strip()})
    if not rows:
        raise DDTIError(f"{labels}: no labelled nodule with a non-empty mask")
    return rows, dropped


def write_manifest(ddti_dir: str | Path, out: str | Path, include_unlabelled: bool = False
                   ) -> tuple[int, list[str]]:
    """Write the manifest CSV for ``ddti_dir`` to ``out`` (folders made as needed).

    Returns the number of rows written and the warnings of :func:`build_rows`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, dropped = build_rows(Path(ddti_dir), out.parent, include_unlabelled)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    return len(rows), dropped


def main(argv: list[str] | None = None) -> int:
    """Command line; exit 0 written, 1 on a bad DDTI folder (message on stderr)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ddti_dir", type=Path, help="folder with images/, masks/, labels.csv")
    ap.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    ap.add_argument("--include-unlabelled", choices=("no", "yes"), default="no",
                    help="'yes' keeps nodules without TI-RADS (empty label: for predict, not for train/validate)")
    args = ap.parse_args(argv)
    try:
        n, dropped = write_manifest(args.ddti_dir, args.out, args.include_unlabelled == "yes")
    except DDTIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for msg in dropped:
        print(f"warning: {msg}", file=sys.stderr)
    print(f"{args.out}: {n} nodules ({len(dropped)} dropped for an empty mask)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
