"""``liver-mm validate`` and ``liver-mm import-folder``."""

from __future__ import annotations

import argparse
import json
import sys

from liver_mm.cli._args import add_table_options, add_unit_option, key_value, table_options
from liver_mm.io.schema import ManifestError


def _validate(args: argparse.Namespace) -> int:
    from liver_mm.cohort.validate import validate_manifest
    from liver_mm.dictionary import activate

    try:
        options = table_options(args)
        dictionary = activate(args.dictionary)
    except ValueError as exc:  # a DictionaryError names the file and the key
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = validate_manifest(args.manifest, units=dict(args.unit), check_images=not args.no_images,
                               options=options, dictionary=dictionary)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_text())
    return 0 if report.ok else 1


def _import_folder(args: argparse.Namespace) -> int:
    from liver_mm.io.importers import import_folder

    try:
        result = import_folder(args.dir, args.out, classes=dict(args.cls) or None, clinical=args.clinical,
                               on=args.on, units=dict(args.unit), options=table_options(args))
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"next: liver-mm validate {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the ``liver-mm`` parser."""
    p = subparsers.add_parser("validate", help="check a cohort manifest and its images; exit 1 if unusable",
                              description="Check a cohort manifest: columns, labels, labs, images, boxes, "
                              "masks, duplicates, splits. Exit 0 when usable (warnings allowed), 1 when not.")
    p.add_argument("manifest", help="manifest: CSV (any common separator) or .xlsx")
    p.add_argument("--json", action="store_true", help='print {"errors": [...], "warnings": [...]}')
    add_unit_option(p)
    add_table_options(p)
    p.add_argument("--no-images", action="store_true", help="skip decoding images and masks")
    p.add_argument("--dictionary", metavar="PATH", default=None,
                   help="data dictionary (YAML) declaring the clinical variables and steps (default: the shipped "
                   "liver dictionary; README, 'Data dictionary')")
    p.set_defaults(func=_validate)

    p = subparsers.add_parser("import-folder", help="build a manifest from class folders of images + masks",
                              description="Build a manifest from DIR/<class>/[images/]*.png (or .jpg, "
                              ".tif, .dcm DICOM) with <name>_mask*.png masks (side by side or in mask/). "
                              "case_id = <class>/<image stem>.")
    p.add_argument("dir", help="folder holding one sub-folder per class")
    p.add_argument("--out", required=True, help="manifest CSV to write (paths relative to its folder)")
    p.add_argument("--class", dest="cls", action="append", default=[], type=key_value("FOLDER=LABEL"),
                   metavar="FOLDER=LABEL", help="map a folder to benign/malignant; repeatable "
                   "(default: folders named benign, malignant); unmapped folders are skipped")
    p.add_argument("--clinical", help="lab table to join (CSV or .xlsx, one row per case)")
    p.add_argument("--on", default="case_id", help="key column of --clinical matching case_id (default case_id)")
    add_unit_option(p, " (clinical table)")
    add_table_options(p)
    p.set_defaults(func=_import_folder)
