"""The one ``liver-mm`` entry point: parse, call, print (no logic a test would need to reach through it).

Imports: any ``liver_mm`` package, lazily inside each command.

Each command lives in a small module of this package exposing ``register(subparsers)``;
Hydra-driven commands (``train``, ``study``) hand their remaining arguments to Hydra. Ctrl-C
(SIGINT) ends any command with one line on stderr (what was stopped, how to go on: a command's
``on_interrupt`` default) and exit status 130, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

INTERRUPTED_STATUS = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
# command modules, in the order their commands appear in --help
_MODULES = ("data_cmds", "dictionary_cmds", "synth_cmds", "stats_cmds", "hydra_cmds", "serve_cmds", "explain_cmds",
            "evaluate_cmds", "pretrain_cmds")


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
    from liver_mm.fileio import private_umask
    from liver_mm.runtime import bounded_openmp_spin, quick_exit

    private_umask()  # patient-linked outputs: new files 0600, folders 0700 (LIVER_MM_UMASK overrides)
    bounded_openmp_spin()  # before anything imports torch: OpenMP waiters spin briefly, then sleep
    quick_exit()  # the exit skips the garbage collector's passes over torch's, MLflow's objects
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.overrides = rest
    args.argv = argv[1:]  # the command's own arguments, as given (a command may record its command line)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C during the exit: no traceback either
        how = getattr(args, "on_interrupt", None) or "nothing was finished; rerun the same command to start again"
        print(f"liver-mm {args.command}: stopped (Ctrl-C); {how}", file=sys.stderr, flush=True)
        return INTERRUPTED_STATUS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
