"""``liver-mm predict`` (score a manifest of new cases) and ``liver-mm serve`` (the model over HTTP)."""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from pathlib import Path

from liver_mm.cli._args import add_model_options, add_table_options, add_unit_option, load_validated_cases


def _predict(args: argparse.Namespace) -> int:
    import mlflow

    from liver_mm.io.images import ImageReadError
    from liver_mm.serve.predict import (
        ModelLoadError,
        check_output,
        predict_frame,
        write_predictions,
    )
    from liver_mm.tracking.store import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
    try:
        check_output(args.manifest, args.out)  # before any work: never overwrite the manifest
        loaded = load_validated_cases(args)
        if loaded is None:
            return 1
        predictor, df = loaded
        pred = predict_frame(predictor, df, mark_imputed=args.allow_missing)
        write_predictions(pred, args.out)
    except (ModelLoadError, ImageReadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n_mal = int((pred["label"] == "malignant").sum())
    extra = f", {int((pred['imputed'] != '').sum())} with imputed inputs" if args.allow_missing else ""
    print(f"{args.out}: {len(pred)} case(s), {n_mal} malignant at threshold {predictor.threshold:.4f}{extra}")
    return 0


def serve_command(model_uri: str, host: str, port: int, workers: int | None = None) -> list[str]:
    """``mlflow models serve`` of ``model_uri`` run by this interpreter (``--env-manager local``)."""
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--host", host,
           "--port", str(port), "--env-manager", "local"]
    return cmd + (["--workers", str(workers)] if workers else [])


def serve_environment(tracking: str, image_root: str | None, base: dict[str, str] | None = None
                      ) -> dict[str, str]:
    """The server's environment: this environment's scripts folder first on PATH (MLflow starts
    ``uvicorn`` by name from PATH), the tracking URI and, when given, the image root (resolved)."""
    from liver_mm.serve.image_root import IMAGE_ROOT_ENV

    env = dict(os.environ if base is None else base)
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join([scripts, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    env["MLFLOW_TRACKING_URI"] = tracking
    if image_root is not None:
        root = Path(image_root).expanduser().resolve()
        if not root.is_dir():
            raise NotADirectoryError(f"--image-root {image_root}: not an existing folder")
        env[IMAGE_ROOT_ENV] = str(root)
    return env


def _serve(args: argparse.Namespace) -> int:
    from liver_mm.tracking.store import tracking_uri

    try:
        env = serve_environment(tracking_uri(args.tracking_uri), args.image_root)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cmd = serve_command(args.model_uri, args.host, args.port, args.workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)  # the server replaces this process: signals reach it directly
    return 0  # pragma: no cover


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``serve`` to the ``liver-mm`` parser."""
    p = subparsers.add_parser(
        "predict", help="score a manifest of cases with a trained model -> CSV of case_id, prob, label",
        description="Validate MANIFEST (labels and split optional), apply the model's preprocessing "
        "(crop, labs) and write case_id, prob (probability of malignancy) and label (malignant when "
        "prob >= the model's frozen threshold). An empty model input (lab) is an error naming file, line, "
        "case and column unless --allow-missing. Exit 0 when done, 1 on invalid input.")
    add_model_options(p)
    p.add_argument("--manifest", required=True, help="cohort manifest CSV of the cases to score")
    p.add_argument("--out", required=True,
                   help="predictions CSV to write (atomically; must not be the manifest)")
    p.add_argument("--allow-missing", action="store_true",
                   help="impute empty model inputs with the training median instead of refusing them; "
                   "adds an 'imputed' column naming the filled features per case (';'-separated)")
    add_unit_option(p)
    add_table_options(p)
    p.add_argument("--batch-size", type=int, default=32, help="cases per forward pass (default 32)")
    p.set_defaults(func=_predict)

    s = subparsers.add_parser(
        "serve", help="serve a trained model over HTTP (mlflow models serve, this environment)",
        description="Run `mlflow models serve -m URI --env-manager local` with this installation's "
        "scripts on PATH, whatever the caller's PATH. POST /invocations with {\"dataframe_records\": "
        "[...]}; images inline as image_b64, or image_path under --image-root only.")
    s.add_argument("--model-uri", required=True, help="MLflow model URI (runs:/<run_id>/model, ...)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=5001, help="port (default 5001)")
    s.add_argument("--workers", type=int, default=None, help="server worker processes (MLflow's default)")
    s.add_argument("--image-root", default=None,
                   help="folder whose files requests may name in image_path (default: none, images inline "
                   "only; also $LIVER_MM_SERVE_IMAGE_ROOT)")
    s.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI for runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, "
                   "else sqlite:///mlflow.db)")
    s.set_defaults(func=_serve)
