"""The content hash of a cohort's image and mask files: part of the study's identity.

The manifest hash covers the table's text; an image replaced or a mask corrected under the same path changes
only the files. :func:`cohort_content_hash` digests every image and mask file a cohort's rows reference (sha256 of
the file's bytes), once: each digest is cached in ``<cache_dir>/content/files.json`` under the file's absolute
path with its size and modification time (ns), and read again only when either changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pandas as pd

from liver_mm.fileio import atomic_write_text

log = logging.getLogger(__name__)

FILE_COLUMNS = ("image_path", "mask_path")


def _paths(cell: object) -> list[str]:
    return [p for p in str(cell).split(";") if p] if isinstance(cell, str) else []


def file_digest(path: str, cache: dict[str, list], chunk: int = 1 << 20) -> str:
    """sha256 of the file's bytes, from ``cache`` (path -> [size, mtime_ns, digest]) while its size and
    modification time are unchanged; ``cache`` is updated. FileNotFoundError names a missing file."""
    st = os.stat(path)
    hit = cache.get(path)
    if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return str(hit[2])
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    cache[path] = [st.st_size, st.st_mtime_ns, h.hexdigest()]
    return h.hexdigest()


def _load(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cohort_content_hash(df: pd.DataFrame, cache_dir: str | Path) -> str:
    """sha256 over (case_id, column, digests of its files) of every row of ``df`` (a manifest frame with absolute
    ``image_path`` / ``mask_path``; several masks are ``;``-separated): any image or mask whose bytes change,
    under the same path or not, changes it. Independent of row order and of where the cohort lies."""
    cache_path = Path(cache_dir) / "content" / "files.json"
    cache = _load(cache_path)
    before = dict(cache)
    lines = []
    cols = [c for c in FILE_COLUMNS if c in df.columns]
    for row in df[["case_id", *cols]].itertuples(index=False):
        for col, cell in zip(cols, row[1:], strict=True):
            digests = ",".join(file_digest(str(Path(p).resolve()), cache) for p in _paths(cell))
            lines.append(f"{row[0]}\t{col}\t{digests}\n")
    if cache != before:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_path, json.dumps(cache, sort_keys=True))
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
