"""``liver-mm dictionary draft TABLE``: a data dictionary guessed from a table, for the user to review.

Per column: the manifest's own columns, identifiers, file paths and the label are flagged and left out;
cells that look like missing-value words (``not available``, ``unknown``, ``-``, ...) are collected into
``missing:``; numbers become ``continuous`` with their observed range shown (unit and ranges to fill in);
text with ``&``-joined cells becomes ``multi``; two values ``binary``; values that all start with a digit
(``2``, ``4a``) ``ordinal`` in sorted order (check it); other text ``categorical``. Categories are listed
with their counts. A draft starts with ``draft: true``, which a dictionary may not hold: it is never used
until the user reviews it and deletes that line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from liver_mm.io.csvread import read_csv_table

MISSING_LIKE = ("not available", "not applicable", "unknown", "missing", "n.a.", "na", "n/a", "nd", "-", "--",
                "?", ".", "not done", "not recorded")
MULTI_SEPARATORS = ("&", "|", ";")
MANIFEST_COLUMNS = frozenset({"case_id", "patient_id", "image_path", "mask_path", "label", "split", "subtype",
                              "diagnostic_basis", "frame", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                              "mm_per_px_x", "mm_per_px_y"})
LABEL_WORDS = frozenset({"label", "class", "diagnosis", "outcome", "malignant", "malignancy", "target", "y"})
_PATH = re.compile(r"[/\\]|\.(png|jpe?g|tiff?|dcm|bmp|nii(\.gz)?)$", re.IGNORECASE)
MAX_CATEGORIES = 30


def _name(header: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", header.strip()).strip("_").lower() or "column"
    return f"v_{name}" if name[0].isdigit() else name


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _why_left_out(header: str, col: pd.Series) -> str | None:
    low = header.strip().lower()
    values = col.dropna().astype(str)
    if low in MANIFEST_COLUMNS:
        return "a manifest column"
    if low in LABEL_WORDS or (len(values) and set(values.str.lower()) <= {"benign", "malignant"}):
        return "looks like the label"
    if len(values) and values.map(lambda v: bool(_PATH.search(v))).mean() > 0.5:
        return "looks like file paths"
    unique = len(values) > 1 and values.nunique() == len(values)
    numeric = bool(pd.to_numeric(values, errors="coerce").notna().all())
    if unique and (re.search(r"(^|[_ ])id$|^id([_ ]|$)", low) or (len(values) > MAX_CATEGORIES and not numeric)):
        return "looks like an identifier (every value differs)"
    return None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _variable(header: str, col: pd.Series, tokens: set[str]) -> list[str]:
    name = _name(header)
    cells = col.dropna().astype(str).str.strip()
    cells = cells[~cells.str.lower().isin(tokens) & (cells != "")]
    alias = f", aliases: [{_q(header)}]" if name != header else ""
    numbers = pd.to_numeric(cells, errors="coerce")
    if len(cells) and numbers.notna().all() and cells.nunique() > 2:
        lo, hi = float(numbers.min()), float(numbers.max())
        return [f"  {name}:   # {len(cells)} values, {_fmt(lo)} to {_fmt(hi)}, median {_fmt(numbers.median())}",
                f"    {{kind: continuous, unit: \"\", plausible: [{_fmt(lo)}, {_fmt(hi)}]{alias}}}"
                "   # TODO: the unit; widen plausible to what is possible"]
    sep = next((s for s in MULTI_SEPARATORS if cells.str.contains(re.escape(s)).mean() > 0.05), None)
    parts = [p.strip() for c in cells for p in (c.split(sep) if sep else [c]) if p.strip()]
    counts = Counter(p.lower() for p in parts)
    first: dict[str, str] = {}
    for p, _ in Counter(parts).most_common():  # each value in its most frequent spelling (ties: first seen)
        first.setdefault(p.lower(), p)
    cats = [first[k] for k, _ in counts.most_common(MAX_CATEGORIES)]
    more = f"; {len(counts) - MAX_CATEGORIES} rarer values left out" if len(counts) > MAX_CATEGORIES else ""
    shown = ", ".join(f"{first[k]} {n}" for k, n in counts.most_common(MAX_CATEGORIES))
    if sep:
        kind, extra = "multi", f", separator: {_q(sep)}"
    elif len(cats) == 2:
        kind, extra = "binary", ""
    elif cats and all(c[:1].isdigit() for c in cats):
        kind, extra = "ordinal", ""
        cats = sorted(cats, key=lambda c: (float(re.match(r"\d+(\.\d+)?", c)[0]), c))  # type: ignore[index]
    else:
        kind, extra = "categorical", ""
    note = {"ordinal": "   # TODO: check the order (lowest first)",
            "categorical": "   # the first category is the reference level",
            "multi": f"   # cells join several values with {sep!r}"}.get(kind, "")
    return [f"  {name}:   # {len(cells)} values: {shown}{more}",
            f"    {{kind: {kind}{extra}, categories: [{', '.join(_q(c) for c in cats)}]{alias}}}{note}"]


def draft_dictionary(table: pd.DataFrame, source: str = "the table") -> str:
    """The draft's YAML text (comments included) for the columns of ``table`` (raw text cells)."""
    tokens_seen: Counter[str] = Counter()
    for col in table.columns:
        for v in table[col].dropna().astype(str).str.strip():
            if v.lower() in MISSING_LIKE:
                tokens_seen[v] += 1
    tokens = {t.lower() for t in tokens_seen}
    lines = [f"# A DRAFT data dictionary guessed from {source} by `liver-mm dictionary draft`.",
             "# Review every entry (kinds, categories and their order, units, ranges), then delete the line",
             "# `draft: true` and save the file as your dictionary: `liver-mm validate --dictionary PATH`,",
             "# `liver-mm study data=manifest data.manifest=M dictionary=PATH` (README, 'Data dictionary').",
             "draft: true",
             f"missing: [{', '.join(_q(t) for t, _ in tokens_seen.most_common())}]"
             + (f"   # seen: {', '.join(f'{t} {n}' for t, n in tokens_seen.most_common())}" if tokens_seen else ""),
             "variables:"]
    kept, left = [], []
    for header in table.columns:
        why = _why_left_out(str(header), table[header])
        if why:
            left.append(f"#   {header}: {why}")
            continue
        if table[header].dropna().empty:
            left.append(f"#   {header}: empty")
            continue
        lines += _variable(str(header), table[header], tokens)
        kept.append(_name(str(header)))
    lines += ["steps:   # cumulative, in order; split the variables into the steps of your study",
              "  - {name: image, image: true, add: []}",
              f"  - {{name: clinical, add: [{', '.join(kept)}]}}"]
    if left:
        lines += ["# left out (not clinical variables):", *left]
    return "\n".join(lines) + "\n"


def draft_from_file(path: str | Path) -> str:
    """:func:`draft_dictionary` of a CSV / .xlsx table (read as text, any common dialect)."""
    return draft_dictionary(read_csv_table(path, log_renames=False), str(path))
