"""``liver-mm evaluate``: external validation of a finished study (every arm's saved model, thresholds frozen)."""

from __future__ import annotations

import argparse
import shlex
import sys

from liver_mm.cli._args import add_table_options, add_unit_option, table_options


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {text!r}")
    return value


def _evaluate(args: argparse.Namespace) -> int:
    from liver_mm.io.images import ImageReadError
    from liver_mm.serve.predict import ModelLoadError
    from liver_mm.study.external.run import Recalibration, evaluate

    if args.recal_column and args.recal_fraction is not None:
        print("error: --recal-column and --recal-fraction both declare the fitting part: give one", file=sys.stderr)
        return 1
    if (args.recal_column or args.recal_fraction is not None) and not args.recalibrate:
        print("error: --recal-column / --recal-fraction need --recalibrate intercept|logistic", file=sys.stderr)
        return 1
    recal = None
    if args.recalibrate:
        recal = Recalibration(args.recalibrate, 0.5 if args.recal_fraction is None else args.recal_fraction,
                              args.recal_seed, args.recal_column)
    command = shlex.join(["liver-mm", "evaluate", *args.argv])
    try:
        result = evaluate(args.study, args.manifest, args.out, tracking=args.tracking_uri, units=dict(args.unit),
                          options=table_options(args), recal=recal, batch_size=args.batch_size, command=command,
                          allow_overlap=args.allow_overlap, allow_missing=args.allow_missing)
    except (ModelLoadError, ImageReadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    t3 = result.comparison.table3
    aucs = ", ".join(f"{a} {v:.3f}" for a, v in zip(t3["arm"], t3["auc"], strict=True))
    if result.overlap.n:
        print(f"NOT EXTERNAL (--allow-overlap): {result.overlap.summary()}")
    if result.missing:
        print(f"not evaluated: arm(s) {', '.join(result.missing)} of the study never finished")
    print(f"{result.out / 'report.md'}: {int(t3['n_test'].iloc[0])} external case(s); AUC {aucs}\n"
          f"MLflow run {result.run_id} (under the study's parent run)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the ``liver-mm`` parser."""
    p = subparsers.add_parser(
        "evaluate", help="external validation: apply every arm of a finished study to another cohort",
        description="Apply every arm of a finished single-split study (its saved models, thresholds frozen as "
        "trained) to a labelled external MANIFEST and write into OUT what the study wrote for its test split: "
        "predictions.csv, Table 3 (n/N, CIs), the DeLong table with the study's Holm families, calibration (Brier, "
        "intercept, slope, LOESS figure), decision curves, cohort tables and report.md; logged as an MLflow run "
        "under the study's parent run. The manifest is validated before any model is loaded; nothing is trained. "
        "A manifest sharing case ids, patient ids or images with the study's cohort is refused (--allow-overlap). "
        "OUT must be new, empty or an earlier evaluate's folder. Exit 0 when done, 1 on invalid input.")
    p.add_argument("--study", required=True,
                   help="the study: its out_dir (folder with report.md) or its parent run id")
    p.add_argument("--manifest", required=True, help="the external cohort's manifest (labels required)")
    p.add_argument("--out", required=True, help="folder to write (new, empty, or an earlier evaluate's)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store the study logged to (default: the study command's logger.tracking_uri, else "
                   "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--allow-overlap", action="store_true",
                   help="evaluate even when cases, patients or images of MANIFEST are in the study's own cohort "
                   "(an error otherwise); the report then states how many, in a heading")
    p.add_argument("--allow-missing", action="store_true",
                   help="keep cases with an empty model input (an empty cell or one of the study's dictionary's "
                   "missing tokens) where every model reading it had it missing in training too: each imputes it "
                   "as for its training rows, and the report counts them per variable (an error otherwise)")
    p.add_argument("--recalibrate", choices=("intercept", "logistic"), default=None,
                   help="also recalibrate each arm on a fit part of the cohort and evaluate original and "
                   "recalibrated probabilities side by side on the rest: intercept (calibration in the large) or "
                   "logistic (intercept and slope)")
    p.add_argument("--recal-column", default=None, metavar="COL",
                   help="manifest column declaring each row fit or eval (default: a seeded fraction)")
    p.add_argument("--recal-fraction", type=_fraction, default=None, metavar="F",
                   help="fraction of the cases to fit the recalibration on (default 0.5), stratified by label, "
                   "grouped by patient and identical image")
    p.add_argument("--recal-seed", type=int, default=0, help="seed of the fit fraction (default 0)")
    add_unit_option(p)
    add_table_options(p)
    p.add_argument("--batch-size", type=int, default=32, help="cases per forward pass (default 32)")
    p.set_defaults(func=_evaluate, on_interrupt="nothing was written to --out; rerun the same command")
