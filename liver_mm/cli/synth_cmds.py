"""``liver-mm synth`` (the built-in synthetic cohort) and ``liver-mm split`` (leakage-safe split)."""

from __future__ import annotations

import argparse
import json
import sys

from liver_mm.cli._args import add_unit_option


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(t) for t in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers like 0.8,0.1,0.1, got {text!r}")
    return parts  # type: ignore[return-value]


def _frame_size(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not sep or not h.strip().isdigit() or not w.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected HxW in pixels like 256x320, got {text!r}")
    return int(h), int(w)


def _synth(args: argparse.Namespace) -> int:
    from liver_mm.synth.cohort import DEFAULT_IMAGE_SIGNAL, generate_cohort

    signal = DEFAULT_IMAGE_SIGNAL if args.image_signal is None else args.image_signal
    try:
        manifest = generate_cohort(args.out, n=args.n, seed=args.seed, image_signal=signal,
                                   frame_size=args.frame_size, force=args.force, site=args.site)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.n} synthetic nodules{f' (site {args.site})' if args.site else ''}: {manifest}")
    print(f"next: liver-mm validate {manifest}")
    return 0


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    """Counts per split and class as an aligned text table."""
    lines = [f"{'split':<6} {'benign':>7} {'malignant':>9} {'total':>6} {'% malig':>8}"]
    for part, row in counts.items():
        share = 100.0 * row["malignant"] / row["total"] if row["total"] else float("nan")
        lines.append(f"{part:<6} {row['benign']:>7} {row['malignant']:>9} {row['total']:>6} {share:>7.1f}%")
    return "\n".join(lines)


def _split(args: argparse.Namespace) -> int:
    from liver_mm.cohort.split import prepare_split
    from liver_mm.io.schema import ManifestError

    try:
        result = prepare_split(args.manifest, args.out, fractions=args.fractions, seed=args.seed,
                               units=dict(args.unit) or None)
    except (ManifestError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"path": str(result.path), "manifest_hash": result.manifest_hash,
                          "split_hash": result.split_hash, "counts": result.counts, "reused": result.reused},
                         indent=2))
        return 0
    print(format_counts(result.counts))
    print(f"{'reused' if result.reused else 'wrote'} {result.path} (split hash {result.split_hash[:12]})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``split`` to the ``liver-mm`` parser."""
    p = subparsers.add_parser("synth", help="write the built-in synthetic cohort (images + manifest)",
                              description="Write a synthetic cohort calibrated to the paper's tables: "
                              "full-frame B-mode-like PNGs under DIR/images, DIR/manifest.csv and the "
                              "DIR/cohort.json marker. Same seed, same bytes. DIR must be new or empty; "
                              "the cohort is written to a temporary folder and renamed into place.")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--force", action="store_true",
                   help="replace a synthetic cohort written earlier in DIR (never a folder holding anything "
                   "liver-mm synth did not write)")
    p.add_argument("--n", type=int, default=1080, help="number of nodules (default 1080)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--image-signal", type=float, default=None,
                   help="how much the image tells about the label, 0..1 (default: calibrated to the "
                   "paper's image-only AUC)")
    p.add_argument("--frame-size", type=_frame_size, default=(256, 320), metavar="HxW",
                   help="frame size in pixels (default 256x320)")
    p.add_argument("--site", default=None, metavar="NAME",
                   help="measure the cohort with another site's scanner and lab assays, for external "
                   "validation (b: +6 dB gain, 45 dB dynamic range, coarser speckle; AST/ALT x1.25, albumin "
                   "-0.3 g/dL, platelets x0.9). Default: the home site (the cohort every default model "
                   "trains on, byte-identical to one made without --site)")
    p.set_defaults(func=_synth)

    p = subparsers.add_parser("split", help="leakage-safe train/dev/test split into a copy of a manifest",
                              description="Split a cohort stratified by label and grouped by patient and "
                              "identical image content; write the split as a column of a copy of the "
                              "manifest (reused when the manifest, fractions and seed are unchanged).")
    p.add_argument("manifest", help="manifest CSV")
    p.add_argument("--out", required=True, help="split manifest CSV to write")
    p.add_argument("--fractions", type=_fractions, default=(0.8, 0.1, 0.1), metavar="TRAIN,DEV,TEST",
                   help="fractions (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_unit_option(p)
    p.add_argument("--json", action="store_true", help="print path, hashes and counts as JSON")
    p.set_defaults(func=_split)

