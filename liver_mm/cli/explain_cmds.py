"""``liver-mm explain``: Grad-CAM overlays and montage, and permutation importance of the labs, of a trained model."""

from __future__ import annotations

import argparse
import sys

from liver_mm.cli._args import add_model_options, add_table_options, add_unit_option, load_validated_cases

MARKER = ".liver-mm-explain"  # an --out folder explain made: the only non-empty one it writes into


def _cases(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"--cases must be >= 1, got {n}")
    return n


def _explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    import mlflow

    from liver_mm.explain import explain_run, feature_groups
    from liver_mm.explain.cases import prepare_cases
    from liver_mm.fileio import check_writable_dir
    from liver_mm.io.images import ImageReadError
    from liver_mm.serve.predict import ModelLoadError
    from liver_mm.tracking.store import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
    out = Path(args.out)
    try:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {out}: is a file; it names the folder to write the pictures into")
        if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
            raise ValueError(f"--out {out} holds files that liver-mm explain did not write (no {MARKER} marker); "
                             "choose a new or empty folder: explain writes over its own file names")
        check_writable_dir(out)
        (out / MARKER).write_text("written by liver-mm explain; a later explain may write over this folder\n")
        loaded = load_validated_cases(args)
        if loaded is None:
            return 1
        predictor, df = loaded
        cases = prepare_cases(predictor, df, str(args.manifest))
        spec = predictor.spec
        name = str((spec.get("modalities") or {}).get("name") or "model")
        title = f"{name}{' [synthetic]' if spec.get('synthetic') else ''}: "
        written = explain_run(predictor.bundle.net, cases.crops, cases.tabular,
                              feature_groups(predictor.preprocessor.feature_names_out), cases.labels, cases.case_ids,
                              out, threshold=predictor.threshold, n_cases=args.cases, n_repeats=args.repeats,
                              seed=args.seed, title=title)
    except (ModelLoadError, ImageReadError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import pandas as pd

    n_overlays = len(pd.read_csv(written["gradcam_cases.csv"])) if "gradcam_cases.csv" in written else 0
    parts = [f"{n_overlays} overlay(s) in overlays/"] if n_overlays else []
    parts += [key for key in written if key != "overlays"]
    print(f"{out}: {len(cases.case_ids)} case(s); wrote " + (", ".join(parts) or "nothing (see the warnings)"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``explain`` to the ``liver-mm`` parser."""
    p = subparsers.add_parser(
        "explain", help="Grad-CAM overlays and montage, and lab permutation importance, of a trained model",
        description="Validate MANIFEST as `liver-mm predict` does, score its cases with the model and write to "
        "OUT: overlays/<case>.png (crop and Grad-CAM map of the called class, probability, label if known) for "
        "the N most confident correct and wrong cases (most confident calls without labels), "
        "gradcam_montage.png and gradcam_cases.csv (image models); importance.csv and importance.png, the "
        "drop in AUC when each clinical feature (with its missing and censored indicators) is permuted (models with labs, "
        "manifest labelled with both classes). Exit 0 when done, 1 on invalid input.")
    add_model_options(p)
    p.add_argument("--manifest", required=True, help="cohort manifest CSV of the cases (labels optional)")
    p.add_argument("--out", required=True, help="folder to write into (created)")
    p.add_argument("--cases", type=_cases, default=16,
                   help="cases drawn as overlays and in the montage (default 16: half the most confident "
                   "wrong, half the most confident correct)")
    p.add_argument("--repeats", type=int, default=10, help="permutations per feature (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    p.add_argument("--allow-missing", action="store_true",
                   help="impute empty model inputs with the training median instead of refusing them")
    add_unit_option(p)
    add_table_options(p)
    p.add_argument("--batch-size", type=int, default=32, help="cases per forward pass (default 32)")
    p.set_defaults(func=_explain)
