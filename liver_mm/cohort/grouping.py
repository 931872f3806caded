"""Leakage groups shared by the train/dev/test split and the cross-validation folds.

Two rows share a group when they share a ``patient_id`` or decode to the same pixels, transitively
(connected components of the row/patient/image graph), so no patient and no image sits in two parts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from liver_mm.cohort.labels import parse_labels
from liver_mm.io.images import ImageReadError, file_content_hash, image_key
from liver_mm.io.schema import line_numbers

log = logging.getLogger(__name__)


def leakage_groups(patient_ids: Sequence[object], image_keys: Sequence[object] | None = None) -> np.ndarray:
    """Group number (n,) per row: rows sharing a patient id or an image key (e.g. content hash)
    are in one group, transitively. Missing ids/keys link nothing."""
    n = len(patient_ids)
    cols = [pd.Series(list(patient_ids), dtype=object)]
    if image_keys is not None:
        cols.append(pd.Series(list(image_keys), dtype=object))
    rows, nodes, offset = [], [], n
    for keys in cols:
        codes, uniques = pd.factorize(keys)
        ok = codes >= 0
        rows.append(np.flatnonzero(ok))
        nodes.append(codes[ok] + offset)
        offset += len(uniques)
    r, c = np.concatenate(rows), np.concatenate(nodes)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:n])[0]


def image_hashes(df: pd.DataFrame, where: str) -> list[str | None]:
    """Content hash of each row's image (memoised per path); errors name the line and column."""
    lines = line_numbers(df)
    cache: dict[str, str] = {}
    out: list[str | None] = []
    frames = (pd.to_numeric(df["frame"], errors="coerce").fillna(0).astype("int64") if "frame" in df.columns
              else pd.Series(0, index=df.index))
    for i, p in zip(df.index, df["image_path"], strict=True):
        if not isinstance(p, str) or not p:
            out.append(None)
            continue
        key = image_key(p, int(frames[i]))
        if key not in cache:
            try:
                cache[key] = file_content_hash(p, int(frames[i]))
            except ImageReadError as exc:
                raise ValueError(f"{where}, line {lines[i]}, column image_path: {exc}") from None
        out.append(cache[key])
    return out


def labels_and_groups(
    df: pd.DataFrame, where: str, image_keys: Sequence[object] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(y, groups), both (n,) int: 1 = malignant, and the :func:`leakage_groups` of ``patient_id`` and
    ``image_keys`` (default: the content hash of each row's ``image_path``). Bad labels name the line."""
    for col in ("label", "patient_id"):
        if col not in df.columns:
            raise ValueError(f"{where}: column {col} is required to split the cohort")
    y = parse_labels(df["label"], where, lines=line_numbers(df), case_ids=df.get("case_id"))
    if image_keys is None and "image_path" in df.columns:
        image_keys = image_hashes(df, where)
    patients = [None if pd.isna(p) or not str(p).strip() else str(p).strip() for p in df["patient_id"]]
    return y, leakage_groups(patients, image_keys)


@dataclass(frozen=True)
class SplitLeak:
    """One patient (``kind`` "patient", ``key`` its id) or one pixel-identical image (``kind`` "image")
    in more than one part: ``parts`` maps each part to its rows (index labels, in file order)."""

    kind: str
    key: str
    parts: dict[str, list[object]]
    last_row: object  # the row to report the leak on: the last of them in the file

    def message(self, lines: pd.Series) -> str:
        """'patient p0 is in several splits (train: line 2; test: line 7): ...' (``lines``: file line per row)."""
        where = "; ".join(f"{part}: {_lines(lines, rows)}" for part, rows in self.parts.items())
        if self.kind == "patient":
            return (f"patient {self.key} is in several splits ({where}): split by patient so all of a patient's "
                    "nodules share one split")
        return f"the same image (pixel-identical) is in several splits ({where}): keep identical images in one split"


def _lines(lines: pd.Series, rows: Sequence[object], limit: int = 8) -> str:
    nums = [str(lines[i]) for i in rows]
    more = f" and {len(nums) - limit} more" if len(nums) > limit else ""
    return f"line{'s' if len(nums) != 1 else ''} {', '.join(nums[:limit])}{more}"


def split_leaks(df: pd.DataFrame, split: pd.Series, image_keys: Sequence[object] | None = None) -> list[SplitLeak]:
    """The leak rule of a given split (``split``: index-aligned part names; rows without one are ignored): a
    patient (``patient_id``) or, with ``image_keys`` (one per row, e.g. a pixel hash), an image in two parts.
    The validator reports each as an error, and ``liver-mm split`` / training refuse such a split."""
    known = split.notna()
    out: list[SplitLeak] = []
    keyed = []
    if "patient_id" in df.columns:
        keyed.append(("patient", df["patient_id"]))
    if image_keys is not None:
        keyed.append(("image", pd.Series(list(image_keys), index=df.index, dtype=object)))
    for kind, keys in keyed:
        ok = known & keys.notna()
        for key, rows in split[ok].groupby(keys[ok].astype(str), sort=False):
            if rows.nunique() > 1:
                parts = {str(p): list(r.index) for p, r in rows.groupby(rows, sort=False)}
                out.append(SplitLeak(kind, str(key), parts, rows.index[-1]))
    return out


def check_case_ids(df: pd.DataFrame, where: object) -> None:
    """Raise ``ValueError`` naming ``where`` unless column case_id exists, is non-empty and unique."""
    if "case_id" not in df.columns:
        raise ValueError(f"{where}: column case_id is required")
    dup = df["case_id"][df["case_id"].duplicated(keep=False)]
    if dup.notna().any() or df["case_id"].isna().any():
        raise ValueError(f"{where}, column case_id: ids must be unique and non-empty "
                         f"(repeated: {', '.join(sorted(set(map(str, dup)))[:5]) or '-'})")


def group_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, where: str) -> np.ndarray:
    """Fold number (n,) of each row: StratifiedGroupKFold test folds (shuffled by ``seed``)."""
    out = np.empty(len(y), dtype=int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for k, (_, idx) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
            out[idx] = k
    for w in caught:
        log.info("%s: %s", where, w.message)
    return out
