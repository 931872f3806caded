"""``liver-mm dictionary draft TABLE``: a data dictionary guessed from a table, for review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _draft(args: argparse.Namespace) -> int:
    from liver_mm.io.csvread import ManifestError
    from liver_mm.io.draft import draft_from_file

    try:
        text = draft_from_file(args.table)
    except (ManifestError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote a draft to {out}: review it, delete its `draft: true` line, then "
          f"liver-mm validate MANIFEST --dictionary {out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``liver-mm dictionary`` to the parser."""
    p = subparsers.add_parser("dictionary", help="data dictionary tools (draft one from a table)",
                              description="Data dictionary tools (README, 'Data dictionary').")
    sub = p.add_subparsers(dest="dictionary_command", metavar="ACTION")
    sub.required = True
    d = sub.add_parser("draft", help="guess a data dictionary from a table, for you to review",
                       description="Write a draft data dictionary guessed from TABLE's columns: kinds, categories "
                       "with counts, &-joined cells, missing-like words, number ranges; identifiers, paths and "
                       "the label left out; a draft steps: list. A draft is never used until you review it.")
    d.add_argument("table", help="CSV (any common separator) or .xlsx")
    d.add_argument("--out", default=None, help="file to write (default: print it)")
    d.add_argument("--force", action="store_true", help="overwrite --out")
    d.set_defaults(func=_draft)
