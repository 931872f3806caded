"""``liver-mm delong | icc | cohort``: the statistics on CSV files, JSON (--json) or a readable table.

Bad input (missing file or column, a non-numeric or missing score, one class only) exits with
code 2 and a one-line message naming the file, the column and the CSV line (header = line 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cli._args import add_unit_option
from liver_mm.cohort.labels import LabelError, parse_labels
from liver_mm.stats import delong_report, icc, markdown_table, table1, table2

log = logging.getLogger(__name__)
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad user input; the message is printed as is."""


def _read_csv(path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot read as CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _split_names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _where(df: pd.DataFrame, rows: np.ndarray) -> str:
    """'line 5 (case_id c0004)' for the first offending row, plus a count."""
    i = int(rows[0])
    where = f"line {i + 2}"
    if "case_id" in df.columns:
        where += f" (case_id {df['case_id'].iloc[i]})"
    return where + (f" and {rows.size - 1} more row(s)" if rows.size > 1 else "")


def _require(df: pd.DataFrame, path: str, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{path}: column(s) {', '.join(map(repr, missing))} not found "
                         f"(columns: {', '.join(df.columns)})")


def _labels(df: pd.DataFrame, path: str, col: str) -> np.ndarray:
    try:
        y = parse_labels(df[col], path, case_ids=df.get("case_id"), codes=True)
    except LabelError as exc:
        raise InputError(str(exc)) from None
    assert y is not None  # empty labels are errors here
    if y.min() == y.max():
        only = "malignant (1)" if y[0] else "benign (0)"
        raise InputError(f"{path}: column {col!r} has one class only (all {y.size} rows {only}); "
                         "an AUC needs both benign and malignant cases")
    return y


def _numeric(df: pd.DataFrame, path: str, col: str, allow_missing: bool = False) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce")
    text_bad = np.flatnonzero((values.isna() & df[col].notna()).to_numpy())
    if text_bad.size:
        raise InputError(f"{path}: column {col!r} has non-numeric '{df[col].iloc[text_bad[0]]}' "
                         f"at {_where(df, text_bad)}")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(arr)) if not allow_missing else np.flatnonzero(np.isinf(arr))
    if bad.size:
        raise InputError(f"{path}: column {col!r} has a missing or infinite value ({arr[bad[0]]}) "
                         f"at {_where(df, bad)}")
    return arr


def _fail(command: str, exc: Exception) -> int:
    print(f"liver-mm {command}: error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "inf" if x is None else format(x, spec)


def _print_delong(rep: dict, alpha: float) -> None:
    level = round(100 * (1 - alpha))
    print(f"{rep['n_pos']} malignant / {rep['n_neg']} benign cases; DeLong {level}% CIs")
    print(f"{'model':<16}{'AUC':>8}{'CI low':>9}{'CI high':>9}")
    for name, m in rep["models"].items():
        print(f"{name:<16}{m['auc']:>8.4f}{m['ci_low']:>9.4f}{m['ci_high']:>9.4f}")
    if rep["comparisons"]:
        print()
        print(f"{'comparison':<24}{'diff':>8}{'CI low':>9}{'CI high':>9}{'z':>8}{'p':>10}{'p Holm':>10}  Holm family")
        for c in rep["comparisons"]:
            pair = f"{c['a']} vs {c['b']}"
            print(f"{pair:<24}{c['diff']:>8.4f}{c['diff_ci_low']:>9.4f}{c['diff_ci_high']:>9.4f}"
                  f"{_fmt(c['z'], '.3f'):>8}{c['p_value']:>10.3g}{c['p_holm']:>10.3g}  {c['family']}")


def _families(specs: list[str] | None, names: list[str]) -> dict[str, list[str]] | None:
    """``--family NAME=a,b,c`` (repeatable, in order) -> {NAME: [a, b, c]}; None when not given."""
    if not specs:
        return None
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, models = spec.partition("=")
        members = _split_names(models)
        if not sep or not name.strip() or not members:
            raise InputError(f"--family {spec!r}: expected NAME=model,model,...")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise InputError(f"--family {spec!r}: {', '.join(unknown)} not among --scores {names}")
        out[name.strip()] = members
    return out


def cmd_delong(args: argparse.Namespace) -> int:
    """Handler of ``liver-mm delong``."""
    try:
        df = _read_csv(args.csv)
        names = _split_names(args.scores)
        if not names:
            raise InputError("--scores needs at least one column name")
        _require(df, args.csv, [args.label, *names])
        if args.reference is not None and args.reference not in names:
            raise InputError(f"--reference {args.reference!r} is not one of --scores {names}")
        y = _labels(df, args.csv, args.label)
        scores = {name: _numeric(df, args.csv, name) for name in names}
        families = _families(args.family, names)
        rep = delong_report(y, scores, reference=args.reference, alpha=args.alpha, families=families)
    except (InputError, ValueError) as exc:
        return _fail("delong", exc)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        _print_delong(rep, args.alpha)
    return 0


def cmd_icc(args: argparse.Namespace) -> int:
    """Handler of ``liver-mm icc``."""
    try:
        df = _read_csv(args.csv)
        raters = _split_names(args.raters)
        if len(raters) < 2:
            raise InputError(f"--raters needs at least two columns, got {raters}")
        _require(df, args.csv, raters)
        x = np.column_stack([_numeric(df, args.csv, r, allow_missing=True) for r in raters])
        res = icc(x, alpha=args.alpha)
    except (InputError, ValueError) as exc:
        return _fail("icc", exc)
    out = {name: {"icc": r.icc, "F": r.F, "df1": r.df1, "df2": r.df2, "p": r.p,
                  "ci_low": r.ci_low, "ci_high": r.ci_high} for name, r in res.items()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{'form':<7}{'ICC':>8}{'CI low':>9}{'CI high':>9}{'F':>10}{'df1':>7}{'df2':>8}{'p':>11}")
        for name, r in out.items():
            print(f"{name:<7}{r['icc']:>8.4f}{r['ci_low']:>9.4f}{r['ci_high']:>9.4f}{r['F']:>10.3f}"
                  f"{r['df1']:>7.0f}{r['df2']:>8.1f}{r['p']:>11.3g}")
    return 0


def _load_manifest(path: str, units: dict[str, str] | None = None) -> pd.DataFrame:
    """The cohort manifest as the data package reads it (imported here: a heavy, optional path)."""
    from liver_mm.io.schema import read_manifest

    return read_manifest(path, units)


def cmd_cohort(args: argparse.Namespace) -> int:
    """Handler of ``liver-mm cohort``: Table 1 and Table 2 as CSV + Markdown, Table 2 printed."""
    out_dir = Path(args.out)
    try:
        df = _load_manifest(args.manifest, dict(args.unit) or None)
        t2 = table2(df)
        try:
            t1 = table1(df)
        except ValueError as exc:
            log.warning("Table 1 skipped: %s", exc)
            t1 = None
        out_dir.mkdir(parents=True, exist_ok=True)
        t2.to_csv(out_dir / "table2.csv", index=False)
        (out_dir / "table2.md").write_text(markdown_table(t2), encoding="utf-8")
        if t1 is not None:
            t1.to_csv(out_dir / "table1.csv", index=False)
            (out_dir / "table1.md").write_text(markdown_table(t1), encoding="utf-8")
    except FileNotFoundError as exc:
        return _fail("cohort", InputError(f"{exc.filename or args.manifest}: no such file"))
    except (InputError, ValueError, OSError) as exc:
        return _fail("cohort", InputError(f"{args.manifest}: {exc}"))
    print(markdown_table(t2), end="")
    log.info("tables written to %s", out_dir.resolve())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``delong``, ``icc`` and ``cohort`` commands."""
    p = subparsers.add_parser("delong", help="AUCs with DeLong CIs and paired DeLong tests (Holm-adjusted)",
                              description="AUC (pROC-exact) with DeLong CI per score column; paired DeLong "
                                          "tests of each model vs the reference and of adjacent models.")
    p.add_argument("csv", help="CSV with one row per case")
    p.add_argument("--label", required=True, help="label column: 0/1 or benign/malignant (malignant = 1)")
    p.add_argument("--scores", required=True, help="comma-separated score columns (probability of malignancy), "
                                                   "in stepwise order")
    p.add_argument("--reference", default=None, help="reference model (default: the first score column)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--family", action="append", metavar="NAME=a,b,...",
                   help="a Holm family: the comparisons among these models are adjusted together (repeatable; "
                        "a comparison joins the first family holding both models, else it is its own family a_vs_b; "
                        "default: one family 'all')")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_delong)

    p = subparsers.add_parser("icc", help="intraclass correlations (six Shrout-Fleiss forms, as psych::ICC)")
    p.add_argument("csv", help="CSV with one row per subject")
    p.add_argument("--raters", required=True, help="comma-separated rating columns (at least two)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_icc)

    p = subparsers.add_parser("cohort", help="cohort tables: Table 1 (subtypes) and Table 2 (clinical data)")
    p.add_argument("manifest", help="cohort manifest CSV")
    p.add_argument("--out", default=".", help="folder for table1/table2 .csv and .md (default: current)")
    add_unit_option(p)
    p.set_defaults(func=cmd_cohort)
