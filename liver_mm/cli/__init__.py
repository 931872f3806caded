"""The one ``liver-mm`` entry point: parse, call, print (no logic a test would need to reach through it).

Imports: any ``liver_mm`` package, lazily inside each command.

Each command lives in a small module of this package exposing ``register(subparsers)``;
Hydra-driven commands (``train``, ``study``) hand their remaining arguments to Hydra.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command modules, in the order their commands appear in --help
_MODULES = ("data_cmds", "synth_cmds", "stats_cmds", "hydra_cmds", "serve_cmds", "explain_cmds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liver-mm",
        description="Multimodal ultrasound + clinical study of liver nodules (benign vs malignant).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _MODULES:
        importlib.import_module(f"liver_mm.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``liver-mm``; returns the process exit code."""
    from liver_mm.runtime import bounded_openmp_spin

    bounded_openmp_spin()  # before anything imports torch: OpenMP waiters spin briefly, then sleep
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = rest
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
