"""``liver-mm predict``: score a manifest of new cases with a logged model."""

from __future__ import annotations

import argparse
import sys

from liver_mm.cli._args import add_unit_option


def _predict(args: argparse.Namespace) -> int:
    import mlflow

    from liver_mm.data.images import ImageReadError
    from liver_mm.data.validate import ManifestValidationError
    from liver_mm.serve.predict import ModelLoadError, load_predictor, predict_manifest
    from liver_mm.training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
    try:
        predictor = load_predictor(args.model_uri, batch_size=args.batch_size)
        pred = predict_manifest(predictor, args.manifest, units=dict(args.unit), out=args.out)
    except ManifestValidationError as exc:
        print(exc.report.format_text(), file=sys.stderr)
        return 1
    except (ModelLoadError, ImageReadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n_mal = int((pred["label"] == "malignant").sum())
    print(f"{args.out}: {len(pred)} case(s), {n_mal} malignant at threshold {predictor.threshold:.4f}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict`` to the ``liver-mm`` parser."""
    p = subparsers.add_parser(
        "predict", help="score a manifest of cases with a trained model -> CSV of case_id, prob, label",
        description="Validate MANIFEST (labels and split optional), apply the model's preprocessing "
        "(crop, labs) and write case_id, prob (probability of malignancy) and label (malignant when "
        "prob >= the model's frozen threshold). Exit 0 when done, 1 on invalid input.")
    p.add_argument("--model-uri", required=True,
                   help="MLflow model URI (runs:/<run_id>/model, models:/name/1, a local model folder)")
    p.add_argument("--manifest", required=True, help="cohort manifest CSV of the cases to score")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    add_unit_option(p)
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, "
                   "else sqlite:///mlflow.db)")
    p.add_argument("--batch-size", type=int, default=32, help="cases per forward pass (default 32)")
    p.set_defaults(func=_predict)
