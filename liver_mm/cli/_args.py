"""Argument types shared by the command modules."""

from __future__ import annotations

import argparse

UNIT_HELP = "declare a column's unit, converted to the canonical one (e.g. albumin=g/L); repeatable"


def key_value(kind: str):
    """An argparse type parsing ``KEY=VALUE`` into a (key, value) pair; ``kind`` names the form in errors."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return key.strip(), value.strip()

    return parse


def add_unit_option(parser: argparse.ArgumentParser, help_suffix: str = "") -> None:
    """``--unit COL=UNIT`` (repeatable) -> ``args.unit``: list of (column, unit)."""
    parser.add_argument("--unit", action="append", default=[], type=key_value("COL=UNIT"), metavar="COL=UNIT",
                        help=UNIT_HELP + help_suffix)
