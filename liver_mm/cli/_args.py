"""Argument types, and the steps after them, shared by the command modules."""

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


def _map_type(text: str) -> tuple[str, dict[str, str]]:
    from liver_mm.io.codes import parse_map

    try:
        return parse_map(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_table_options(parser: argparse.ArgumentParser) -> None:
    """``--sep``, ``--decimal``, ``--censored``, ``--map`` (how an exported table is written and coded)."""
    parser.add_argument("--sep", help="column separator: , ; tab | (default: detected, and logged)")
    parser.add_argument("--decimal", choices=(".", ","), help="decimal mark (default: '.'; decimal commas "
                        "are detected in ;/tab-separated files when unambiguous)")
    parser.add_argument("--censored", choices=("error", "limit"), default=None,
                        help="lab cells like <5 or >1000: error (default) refuses them; limit uses the limit "
                        "and adds a 0/1 <lab>_censored column")
    parser.add_argument("--map", dest="maps", action="append", default=[], type=_map_type,
                        metavar="COL=CODE:VALUE,...", help="declare what codes mean, e.g. sex=1:M,2:F or "
                        "label=0:benign,1:malignant; repeatable (codes are never guessed)")


def table_options(args: argparse.Namespace):
    """The :class:`~liver_mm.io.dialect.TableOptions` of parsed :func:`add_table_options` arguments
    (raises ``ValueError`` for a bad separator or mapping, e.g. one code mapped to two values)."""
    from liver_mm.io.codes import merge_maps
    from liver_mm.io.dialect import make_options

    return make_options(args.sep, args.decimal, args.censored, merge_maps(args.maps))


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model-uri`` (required) and ``--tracking-uri``: which trained model, from which MLflow store."""
    parser.add_argument("--model-uri", required=True,
                        help="MLflow model URI (runs:/<run_id>/model, models:/name/1, a local model folder)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, "
                        "else sqlite:///mlflow.db)")


def load_validated_cases(args: argparse.Namespace):
    """(predictor, validated case table) of ``--model-uri`` and ``--manifest``; None after printing the report
    when the table is refused. Warnings go to stderr. Shared by ``predict`` and ``explain``."""
    import sys

    from liver_mm.serve.predict import load_predictor, validate_cases

    predictor = load_predictor(args.model_uri, batch_size=args.batch_size)
    report, df = validate_cases(args.manifest, dict(args.unit), predictor.features, predictor.use_image,
                                allow_missing=args.allow_missing, options=table_options(args))
    if not report.ok or df is None:
        print(report.format_text(), file=sys.stderr)
        return None
    for finding in report.warnings:
        print(finding, file=sys.stderr)
    return predictor, df
