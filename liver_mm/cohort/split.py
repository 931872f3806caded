"""Leakage-safe train/dev/test split of a cohort manifest.

Rows are grouped by patient AND by identical image content (:mod:`liver_mm.cohort.grouping`: two rows
share a group when they share a ``patient_id`` or decode to the same pixels, transitively), then split
with scikit-learn's ``StratifiedGroupKFold`` (stratified by label, shuffled by ``seed``): the fractions
are written over their common denominator K (80/10/10 -> K = 10; 70/15/15 -> K = 20; K <= 20, else
the fractions are rounded to twentieths), the cohort is cut into K folds and whole folds go to train,
dev and test (8 / 1 / 1 for 80/10/10).

``prepare_split`` writes the split into a copy of the manifest (original cells kept, paths
rewritten to stay resolvable from the copy's folder) next to a ``<name>.split.json`` provenance
record, and reuses that copy when the same manifest content, fractions, seed and units made it.
Cross-validation folds (same grouping) are in :mod:`liver_mm.cohort.folds`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cohort.grouping import check_case_ids, group_folds, image_hashes, labels_and_groups, split_leaks
from liver_mm.io.dialect import TableOptions
from liver_mm.io.schema import (
    LABELS,
    SOURCE_ATTR,
    SPLITS,
    line_numbers,
    manifest_hash,
    read_manifest,
    read_raw_table,
    recode,
    shipped_headers,
    table_hash,
)
from liver_mm.synth.cohort import SIDECAR_NAME

log = logging.getLogger(__name__)

SPLIT_VERSION = 1  # bump when the algorithm changes: old split files are then recomputed
MAX_FOLDS = 20


@dataclass(frozen=True)
class SplitResult:
    """A written split manifest: its path, sha256 of the input manifest's content and of the
    case_id -> split mapping, and counts ``{split: {"benign", "malignant", "total"}}``."""

    path: Path
    manifest_hash: str
    split_hash: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reused: bool = False


def fold_plan(fractions: Sequence[float]) -> tuple[int, tuple[int, int, int]]:
    """Number of folds K and folds per part (train, dev, test) for ``fractions`` summing to 1."""
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers (train, dev, test) summing to 1, "
                         f"got {tuple(fractions)}")
    if fr[0] <= 0:
        raise ValueError(f"the train fraction must be positive, got {fr[0]}")
    k = math.lcm(*(Fraction(f).limit_denominator(1000).denominator for f in fr))
    if k > MAX_FOLDS:
        k = MAX_FOLDS
        log.warning("fractions %s rounded to twentieths", tuple(fr))
    exact = np.array(fr) * k
    parts = np.floor(exact).astype(int)
    parts[np.argsort(-(exact - parts), kind="stable")[: k - parts.sum()]] += 1
    if parts[0] == 0:  # rounding left train without a fold: take one from the largest part
        parts[int(np.argmax(parts))] -= 1
        parts[0] = 1
    return k, (int(parts[0]), int(parts[1]), int(parts[2]))




def _existing_split(df: pd.DataFrame, where: str) -> pd.Series | None:
    """The manifest's own split column, validated and lower-cased; None when absent or empty."""
    if "split" not in df.columns:
        return None
    given = df["split"].astype("string").str.strip().str.lower().replace("", pd.NA)
    if given.isna().all():
        return None
    lines = line_numbers(df)
    if given.isna().any():
        missing = [str(lines[i]) for i in df.index[given.isna()]]
        raise ValueError(f"{where}, column split: filled for {int(given.notna().sum())} of {len(df)} rows; fill "
                         f"it for all rows or none (empty on line(s) {', '.join(missing[:10])}"
                         f"{' ...' if len(missing) > 10 else ''})")
    bad = ~given.isin(SPLITS)
    if bad.any():
        i = df.index[bad][0]
        raise ValueError(f"{where}, line {lines[i]}, column split: {df.at[i, 'split']!r} is not one of "
                         f"{', '.join(SPLITS)} ({int(bad.sum())} such row(s))")
    return given.astype(str).rename("split")



def assign_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    *,
    image_keys: Sequence[object] | None = None,
) -> pd.Series:
    """``train`` / ``dev`` / ``test`` per row of a manifest frame (index-aligned Series named ``split``).

    Stratified by ``label`` (benign/malignant), grouped by ``patient_id`` and identical image
    content: ``image_keys`` (one per row) when given, else the content hash of each row's
    ``image_path`` (absolute, as :func:`liver_mm.io.schema.read_manifest` returns it). A
    ``split`` column already filled in ``df`` is validated and returned as is; one that puts a patient or
    an identical image in two parts is refused (``ValueError`` naming them and their lines).
    """
    where = str(df.attrs.get(SOURCE_ATTR, "<manifest>"))
    existing = _existing_split(df, where)
    if existing is not None:
        _refuse_leaks(df, existing, where, image_keys)
        return existing
    k, parts = fold_plan(fractions)
    y, groups = labels_and_groups(df, where, image_keys)
    if groups.max() + 1 < k:
        raise ValueError(f"{where}: {groups.max() + 1} independent patient/image groups cannot be split into "
                         f"{k} folds for fractions {tuple(fractions)}; add cases or use coarser fractions")
    folds = group_folds(y, groups, k, seed, where)
    part_of_fold = np.repeat(np.arange(3), parts)[np.random.default_rng(seed).permutation(k)]
    return pd.Series(np.asarray(SPLITS)[part_of_fold[folds]], index=df.index, name="split", dtype=object)


def _refuse_leaks(df: pd.DataFrame, split: pd.Series, where: str, image_keys: Sequence[object] | None) -> None:
    """Raise ``ValueError`` when a user-given split puts a patient or an identical image in two parts
    (:func:`~liver_mm.cohort.grouping.split_leaks`, the validator's rule), naming them and their lines."""
    if image_keys is None and "image_path" in df.columns:
        image_keys = image_hashes(df, where)
    leaks = split_leaks(df, split, image_keys)
    if leaks:
        lines = line_numbers(df)
        shown = "; ".join(leak.message(lines) for leak in leaks[:3])
        more = f" (and {len(leaks) - 3} more)" if len(leaks) > 3 else ""
        raise ValueError(f"{where}, column split: the given split leaks: {shown}{more}. Fix the split column, "
                         "or drop it to have a leakage-safe split made")


def split_hash(case_ids: Sequence[object], split: Sequence[object]) -> str:
    """sha256 of the case_id -> split mapping (order-independent)."""
    pairs = sorted(zip(map(str, case_ids), map(str, split), strict=True))
    return hashlib.sha256("".join(f"{c}\t{s}\n" for c, s in pairs).encode()).hexdigest()


def split_counts(labels: Sequence[object], split: Sequence[object]) -> dict[str, dict[str, int]]:
    """``{part: {"benign": n, "malignant": n, "total": n}}`` for train, dev, test and ``all``."""
    tab = pd.crosstab(pd.Series(list(split), name="split"), pd.Series(list(labels), name="label"))
    tab = tab.reindex(index=list(SPLITS), columns=list(LABELS), fill_value=0)
    tab.loc["all"] = tab.sum()
    tab["total"] = tab.sum(axis=1)
    return {str(p): {str(c): int(v) for c, v in row.items()} for p, row in tab.iterrows()}


def _portable(abs_path: str, out_dir: Path) -> str:
    """Path relative to ``out_dir`` when the file lies below it, else absolute."""
    p = Path(abs_path)
    try:
        return p.relative_to(out_dir).as_posix()
    except ValueError:
        return str(p)


def _record_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".split.json")


def _provenance(mhash: str, fractions, seed: int, units, options: TableOptions | None = None,
                content_hash: str | None = None) -> dict:
    key = {"manifest_hash": mhash, "fractions": [float(f) for f in fractions], "seed": int(seed),
           "units": dict(sorted((units or {}).items())), "version": SPLIT_VERSION}
    read = (options or TableOptions()).key()
    if read:
        key["read"] = read
    if content_hash:  # the images' bytes group identical images: another image may regroup the cohort
        key["content_hash"] = content_hash
    return key


def matching_record(out_path: Path, record: Path, key: dict) -> dict | None:
    """The provenance record of a written file when both exist and the record was made for ``key``, else None."""
    if not (out_path.is_file() and record.is_file()):
        return None
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return meta if {k: meta.get(k) for k in key} == key else None


def _reusable(out_path: Path, key: dict) -> SplitResult | None:
    meta = matching_record(out_path, _record_path(out_path), key)
    if meta is None:
        return None
    try:
        done = pd.read_csv(out_path, dtype=str, keep_default_na=False, usecols=["case_id", "label", "split"])
    except (OSError, ValueError):
        return None
    if split_hash(done["case_id"], done["split"]) != meta.get("split_hash"):
        log.info("%s was edited after it was written; recomputing the split", out_path)
        return None
    counts = split_counts(done["label"].str.strip().str.lower(), done["split"])
    return SplitResult(out_path, key["manifest_hash"], meta["split_hash"], counts, reused=True)



def prepare_split(
    manifest_path: str | Path,
    out_path: str | Path,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    units: Mapping[str, str] | None = None,
    options: TableOptions | None = None,
    content_hash: str | None = None,
    frame: pd.DataFrame | None = None,
    table: pd.DataFrame | None = None,
) -> SplitResult:
    """Write a copy of the manifest with a ``split`` column to ``out_path`` (reused when current: the same
    manifest content, fractions, seed, units, table options and, when given, image content ``content_hash``).

    The copy is a comma-separated CSV (whatever the input's dialect or format) keeping every original
    cell (converted to the canonical units when ``units`` are declared; decimal commas, declared code
    mappings and censored values as ``options`` read them, with their ``<lab>_censored`` columns) with
    ``image_path`` / ``mask_path`` rewritten to resolve from the copy's folder. ``frame``: the manifest as
    :func:`~liver_mm.io.schema.read_manifest` read it with these ``units`` and ``options``, ``table``: the same
    read's raw table (:func:`~liver_mm.io.schema.read_manifest_table`); given, the file is not read again.
    """
    manifest_path, out_path = Path(manifest_path), Path(out_path)
    if out_path.resolve() == manifest_path.resolve():
        raise ValueError(f"{out_path}: the split manifest must be a copy, not the input manifest itself")
    fold_plan(fractions)  # validate early
    raw = read_raw_table(manifest_path, options=options) if table is None else table  # the hash and the copy
    mhash = table_hash(raw) if shipped_headers() else manifest_hash(manifest_path, options)
    key = _provenance(mhash, fractions, seed, units, options, content_hash)
    done = _reusable(out_path, key)
    if done is not None:
        log.info("split reused: %s (split hash %s)", out_path, done.split_hash[:12])
        return done

    df = read_manifest(manifest_path, units, options=options) if frame is None else frame
    check_case_ids(df, manifest_path)
    split = assign_split(df, fractions, seed)

    copy = recode(raw, options).reset_index(drop=True)
    for col in (units or {}):
        if col in copy.columns:
            copy[col] = df[col].round(6)
    out_dir = out_path.resolve().parent
    if "image_path" in copy.columns:
        copy["image_path"] = df["image_path"].map(lambda p: _portable(p, out_dir) if isinstance(p, str) else p)
    if "mask_path" in copy.columns:
        copy["mask_path"] = df["mask_path"].map(
            lambda v: ";".join(_portable(p, out_dir) for p in v.split(";")) if isinstance(v, str) else v)
    copy["split"] = split.to_numpy()
    shash = split_hash(copy["case_id"], copy["split"])
    counts = split_counts(df["label"], split)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")  # one per process: parallel arms
    copy.to_csv(tmp, index=False, lineterminator="\n")
    os.replace(tmp, out_path)
    record = {**key, "split_hash": shash, "source": str(manifest_path.resolve()), "counts": counts}
    _record_path(out_path).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    _carry_cohort_sidecar(manifest_path, out_path)
    log.info("split written: %s (split hash %s)", out_path, shash[:12])
    return SplitResult(out_path, key["manifest_hash"], shash, counts)


def _carry_cohort_sidecar(manifest_path: Path, out_path: Path) -> None:
    """Copy cohort.json (synthetic marker) next to the split copy unless one is already there."""
    src, dst = manifest_path.parent / SIDECAR_NAME, out_path.parent / SIDECAR_NAME
    if not src.is_file() or src.resolve() == dst.resolve():
        return
    if dst.exists():
        if dst.read_bytes() != src.read_bytes():
            log.warning("%s differs from %s; left as is", dst, src)
        return
    shutil.copyfile(src, dst)
