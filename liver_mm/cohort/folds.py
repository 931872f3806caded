"""Cross-validation folds of a cohort manifest (``liver-mm study cv.folds=K cv.repeats=R``).

Rows are grouped exactly as :func:`liver_mm.cohort.split.assign_split` groups them (patient AND identical
image content, :mod:`liver_mm.cohort.grouping`), then, per repeat r, cut into K label-stratified folds with scikit-learn's
``StratifiedGroupKFold`` (shuffled, seed derived from ``(seed, r)``). For fold f the test part is
fold f; inside the other K-1 folds a dev part (one of round(1/dev_fraction) stratified group folds of
those rows, seed derived from ``(seed, r, f)``) is held out for early stopping and the frozen
threshold; the rest is train.

The assignment is a DataFrame index-aligned with the manifest frame, one column per (repeat, fold)
(a ``MultiIndex`` named ``repeat``, ``fold``) holding ``train`` / ``dev`` / ``test``: the split of
repeat r, fold f is ``assignment[(r, f)]``, a Series exactly like ``assign_split`` returns
(``df.assign(split=assignment[(r, f)])``). On disk (:func:`prepare_folds`) it is the long CSV
``case_id, repeat, fold, part``; :func:`read_folds` turns it back into the wide frame indexed by case_id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cohort.grouping import check_case_ids, group_folds, labels_and_groups
from liver_mm.cohort.split import matching_record
from liver_mm.fileio import atomic_write_text
from liver_mm.io.dialect import TableOptions
from liver_mm.io.schema import LABELS, SOURCE_ATTR, SPLITS, manifest_hash, read_manifest
from liver_mm.stats import encode_labels

log = logging.getLogger(__name__)

FOLDS_VERSION = 1  # bump when the algorithm changes: old fold files are then recomputed
LONG_COLUMNS = ("case_id", "repeat", "fold", "part")


@dataclass(frozen=True)
class FoldsResult:
    """A written fold assignment: the CSV, its provenance JSON, sha256 of the input manifest's content
    and of the case_id -> assignment mapping, and the assignment itself (wide, indexed by case_id)."""

    path: Path
    record_path: Path
    manifest_hash: str
    folds_hash: str
    folds: int
    repeats: int
    assignment: pd.DataFrame = field(repr=False, compare=False)
    reused: bool = False


def derived_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys, e.g. ``(seed, repeat)`` or ``(seed, repeat, fold)`` (numpy SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _class_groups(y: np.ndarray, groups: np.ndarray) -> dict[str, int]:
    """Independent groups holding at least one case of each class: {"benign": n, "malignant": n}."""
    return {name: int(np.unique(groups[y == code]).size) for code, name in enumerate(LABELS)}


def _check_enough_groups(y: np.ndarray, groups: np.ndarray, folds: int, where: str) -> None:
    for name, n in _class_groups(y, groups).items():
        if n < folds:
            fewer = f"use folds <= {n} (cv.folds) or add" if n >= 2 else "add"
            raise ValueError(
                f"{where}: the {name} class has {n} independent patient/image group(s), fewer than the "
                f"{folds} folds asked: some test fold would hold no {name} case and have no AUC; {fewer} "
                f"{name} cases from other patients")


def _check_part(y: np.ndarray, part: str, r: int, f: int, where: str, hint: str) -> None:
    for code, name in enumerate(LABELS):
        if not (y == code).any():
            raise ValueError(f"{where}: repeat {r}, fold {f}: the {part} part has no {name} case; {hint}")


def _validate(folds: int, repeats: int, seed: int, dev_fraction: float) -> int:
    """Check the arguments; the number of dev splits round(1 / dev_fraction)."""
    for name, value, low in (("folds", folds, 2), ("repeats", repeats, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 < float(dev_fraction) <= 0.5:
        raise ValueError(f"dev_fraction must be in (0, 0.5], got {dev_fraction!r}")
    return round(1 / float(dev_fraction))


def assign_folds(
    df: pd.DataFrame,
    folds: int,
    repeats: int = 1,
    seed: int = 0,
    dev_fraction: float = 1 / 8,
    *,
    image_keys: Sequence[object] | None = None,
) -> pd.DataFrame:
    """``train`` / ``dev`` / ``test`` per row and (repeat, fold): index-aligned with ``df``, columns a
    ``MultiIndex`` (repeat 0..R-1, fold 0..K-1); ``assignment[(r, f)]`` is the split of one training run.

    Grouped by ``patient_id`` and identical image content (``image_keys``, one per row, else the
    content hash of each row's ``image_path``), stratified by ``label``. Every row is in the test part
    of exactly one fold per repeat. The dev part is about 1/round(1/dev_fraction) of the fold's
    non-test rows. Raises ``ValueError`` (before any training) when a class has fewer independent
    groups than ``folds``, or when a fold's test, dev or train part would miss a class. A ``split``
    column in ``df`` is ignored (logged).
    """
    where = str(df.attrs.get(SOURCE_ATTR, "<manifest>"))
    n_dev = _validate(folds, repeats, seed, dev_fraction)
    folds, repeats, seed = int(folds), int(repeats), int(seed)
    if "split" in df.columns and df["split"].notna().any():
        log.warning("%s: column split ignored: cross-validation assigns its own train/dev/test parts", where)
    y, groups = labels_and_groups(df, where, image_keys)
    _check_enough_groups(y, groups, folds, where)
    dev_hint = (f"use a larger dev_fraction (now {dev_fraction:g}: {n_dev} dev splits) or fewer folds, "
                f"or add cases")
    out = np.empty((len(df), repeats * folds), dtype=object)
    for r in range(repeats):
        test_fold = group_folds(y, groups, folds, derived_seed(seed, r), where)
        for f in range(folds):
            parts = np.where(test_fold == f, SPLITS[2], SPLITS[0]).astype(object)
            _check_part(y[test_fold == f], "test", r, f, where, "use fewer folds or add cases")
            rest = np.flatnonzero(test_fold != f)
            n_groups = int(np.unique(groups[rest]).size)
            if n_groups < n_dev:
                raise ValueError(f"{where}: repeat {r}, fold {f}: {n_groups} independent groups outside the "
                                 f"test fold cannot give a dev part of 1/{n_dev}; {dev_hint}")
            dev_fold = group_folds(y[rest], groups[rest], n_dev, derived_seed(seed, r, f), where)
            parts[rest[dev_fold == 0]] = SPLITS[1]
            for part in SPLITS[:2]:
                _check_part(y[parts == part], part, r, f, where, dev_hint)
            out[:, r * folds + f] = parts
    columns = pd.MultiIndex.from_product([range(repeats), range(folds)], names=["repeat", "fold"])
    return pd.DataFrame(out, index=df.index, columns=columns)


def folds_long(assignment: pd.DataFrame, case_ids: Sequence[object]) -> pd.DataFrame:
    """The wide assignment as the long table ``case_id, repeat, fold, part`` (case-major order)."""
    n, m = assignment.shape
    if len(case_ids) != n:
        raise ValueError(f"{len(case_ids)} case ids for an assignment of {n} rows")
    cols = assignment.columns
    return pd.DataFrame({
        "case_id": np.repeat(np.asarray([str(c) for c in case_ids], dtype=object), m),
        "repeat": np.tile(cols.get_level_values("repeat").to_numpy(dtype=int), n),
        "fold": np.tile(cols.get_level_values("fold").to_numpy(dtype=int), n),
        "part": assignment.to_numpy(dtype=object).reshape(-1),
    })


def folds_hash(case_ids: Sequence[object], assignment: pd.DataFrame) -> str:
    """sha256 of the case_id -> (repeat, fold, part) mapping (independent of row and column order)."""
    long = folds_long(assignment, case_ids)
    lines = sorted(f"{c}\t{r}\t{f}\t{p}\n" for c, r, f, p in long.itertuples(index=False))
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def fold_sizes(assignment: pd.DataFrame, y: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per (repeat, fold): n_train, n_dev, n_test (case counts); with ``y`` (n,) 0/1 also
    malignant_train, malignant_dev, malignant_test. For the corrected t-test, the training size of
    a fold is n_train + n_dev (every case outside the test fold)."""
    rows = []
    for (r, f), parts in assignment.items():
        row: dict[str, int] = {"repeat": int(r), "fold": int(f)}
        row.update({f"n_{p}": int((parts == p).sum()) for p in SPLITS})
        if y is not None:
            yy = np.asarray(y)
            row.update({f"malignant_{p}": int(yy[(parts == p).to_numpy()].sum()) for p in SPLITS})
        rows.append(row)
    return pd.DataFrame(rows)


def read_folds(path: str | Path) -> pd.DataFrame:
    """The long CSV written by :func:`prepare_folds` as the wide assignment indexed by case_id."""
    path = Path(path)
    long = pd.read_csv(path, dtype={"case_id": str, "part": str}, keep_default_na=False)
    missing = [c for c in LONG_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"{path}: column(s) {', '.join(missing)} missing (expected {', '.join(LONG_COLUMNS)})")
    bad = ~long["part"].isin(SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {i + 2}, column part: {long.at[i, 'part']!r} is not one of "
                         f"{', '.join(SPLITS)}")
    if long.duplicated(["case_id", "repeat", "fold"]).any():
        raise ValueError(f"{path}: a (case_id, repeat, fold) appears more than once")
    wide = long.pivot(index="case_id", columns=["repeat", "fold"], values="part")
    wide = wide.reindex(pd.unique(long["case_id"])).sort_index(axis=1)
    if wide.isna().any().any():
        raise ValueError(f"{path}: not every case has a part in every (repeat, fold)")
    wide.index.name = "case_id"
    return wide


def _record_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".folds.json")


def _reusable(out_path: Path, key: dict) -> FoldsResult | None:
    record = _record_path(out_path)
    meta = matching_record(out_path, record, key)
    if meta is None:
        return None
    try:
        wide = read_folds(out_path)
    except (OSError, ValueError):
        return None
    if folds_hash(wide.index, wide) != meta.get("folds_hash"):
        log.info("%s was edited after it was written; recomputing the folds", out_path)
        return None
    return FoldsResult(out_path, record, key["manifest_hash"], meta["folds_hash"], key["folds"], key["repeats"],
                       wide, reused=True)


def prepare_folds(
    manifest_path: str | Path,
    out_path: str | Path,
    folds: int,
    repeats: int = 1,
    seed: int = 0,
    units: Mapping[str, str] | None = None,
    dev_fraction: float = 1 / 8,
    options: TableOptions | None = None,
    content_hash: str | None = None,
) -> FoldsResult:
    """Write the fold assignment of a manifest to ``out_path`` (long CSV ``case_id, repeat, fold, part``)
    next to ``<name>.folds.json`` (provenance and per-fold sizes); reused when the same manifest
    content, folds, repeats, seed, dev_fraction, units, table options (code maps: the labels the folds are
    stratified by) and, when given, image content ``content_hash`` made it. Both files are replaced atomically.
    """
    manifest_path, out_path = Path(manifest_path), Path(out_path)
    _validate(folds, repeats, seed, dev_fraction)
    key = {"manifest_hash": manifest_hash(manifest_path, options=options), "folds": int(folds), "repeats": int(repeats),
           "seed": int(seed), "dev_fraction": float(dev_fraction),
           "units": dict(sorted((units or {}).items())), "version": FOLDS_VERSION}
    read = (options or TableOptions()).key()
    if read:
        key["read"] = read
    if content_hash:  # identical images are grouped: another image may regroup the cohort
        key["content_hash"] = content_hash
    done = _reusable(out_path, key)
    if done is not None:
        log.info("folds reused: %s (folds hash %s)", out_path, done.folds_hash[:12])
        return done

    df = read_manifest(manifest_path, units, options=options)
    check_case_ids(df, manifest_path)
    assignment = assign_folds(df, folds, repeats, seed, dev_fraction)
    y = encode_labels(df["label"].to_numpy(dtype=object))
    fhash = folds_hash(df["case_id"], assignment)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_path, folds_long(assignment, df["case_id"]).to_csv(index=False, lineterminator="\n"))
    sizes = fold_sizes(assignment, y).to_dict("records")
    record = {**key, "folds_hash": fhash, "source": str(manifest_path.resolve()), "sizes": sizes}
    atomic_write_text(_record_path(out_path), json.dumps(record, indent=2, sort_keys=True) + "\n")
    log.info("folds written: %s (folds hash %s)", out_path, fhash[:12])
    wide = assignment.set_axis(pd.Index(df["case_id"].astype(str), name="case_id"))
    return FoldsResult(out_path, _record_path(out_path), key["manifest_hash"], fhash, int(folds), int(repeats), wide)
