"""From a data config to a validated, split cohort table (the step before any training).

``data.kind`` is ``synthetic`` (generated once into the cache), ``folder`` (imported once into
the cache) or ``manifest`` (the user's CSV). The cohort is validated *before* anything is
trained: a cohort that fails stops here with the validator's findings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from liver_mm.io.dialect import TableOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedCohort:
    """A validated cohort with its split.

    df: one row per nodule (image paths absolute, labs in canonical units, ``split`` column);
    manifest_path: the split manifest; hashes identify the cohort's content and its split: ``manifest_hash`` the
    table, ``content_hash`` the bytes of every image and mask its rows use (:mod:`liver_mm.cohort.content`).
    """

    df: pd.DataFrame
    source_manifest: Path
    manifest_path: Path
    manifest_hash: str
    split_hash: str
    synthetic: bool
    content_hash: str = ""


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:12]


def _synthetic_manifest(data: Mapping, cache_dir: Path) -> Path:
    from liver_mm.synth.cohort import generate_cohort

    signal = data.get("image_signal")
    interaction = float(data.get("interaction") or 0.0)
    site = data.get("site") or None  # +data.site=b: another site's scanner and labs (liver_mm.synth.site)
    name = f"synthetic-n{data['n']}-seed{data['seed']}-signal{signal}"
    name += (f"-interaction{interaction:g}" if interaction else "") + (f"-site{site}" if site else "")
    out = cache_dir / "cohorts" / name
    manifest = out / "manifest.csv"
    if manifest.exists():
        return manifest
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    kwargs: dict[str, float] = {} if signal is None else {"image_signal": float(signal)}
    if interaction:
        kwargs["interaction"] = interaction
    generate_cohort(tmp, n=int(data["n"]), seed=int(data["seed"]), site=None if site is None else str(site),
                    **kwargs)
    try:
        os.replace(tmp, out)  # atomic: a parallel run or a killed one never sees half a cohort
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _folder_manifest(data: Mapping, cache_dir: Path) -> Path:
    """Import a class-folder layout once per call into the cache (atomically replaced, so parallel
    study arms never read half a file). Lab units stay as exported: ``data.units`` converts them
    when the manifest is read, as for any manifest."""
    from liver_mm.io.dialect import options_from_config
    from liver_mm.io.importers import import_folder

    root = Path(str(data["root"])).resolve()
    classes = dict(data.get("classes") or {})
    clinical = data.get("clinical")
    on = str(data.get("on", "case_id"))
    opts = options_from_config(data)
    key_parts: list[object] = [root, sorted(classes.items()), clinical, on]
    if opts.key():
        key_parts.append(opts.key())
    out = cache_dir / "cohorts" / f"folder-{_key(*key_parts)}"
    manifest = out / "manifest.csv"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".manifest.{os.getpid()}.csv"
    result = import_folder(root, tmp, classes=classes or None, clinical=clinical, on=on, options=opts)
    log.info("%s", result.summary())
    if manifest.exists() and manifest.read_bytes() == tmp.read_bytes():
        tmp.unlink()
    else:
        os.replace(tmp, manifest)
    return manifest


def source_manifest(data: Mapping, cache_dir: str | Path) -> tuple[Path, bool]:
    """(manifest path, is synthetic) for a ``data`` config group."""
    cache_dir = Path(cache_dir)
    kind = data["kind"]
    if kind == "synthetic":
        return _synthetic_manifest(data, cache_dir), True
    if kind == "folder":
        return _folder_manifest(data, cache_dir), False
    if kind == "manifest":
        path = Path(str(data["manifest"])).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: manifest not found (data.manifest)")
        from liver_mm.synth.cohort import is_synthetic

        return path, bool(data.get("synthetic")) or is_synthetic(path)
    raise ValueError(f"data.kind must be synthetic, folder or manifest, not {kind!r}")


def synthetic_meta(manifest: str | Path) -> dict | None:
    """The ``cohort.json`` record of a synthetic manifest (generator settings, ``site`` when not the home
    site); None for a cohort not marked synthetic."""
    from liver_mm.synth.cohort import is_synthetic, read_cohort_meta

    return (read_cohort_meta(manifest) or {"synthetic": True}) if is_synthetic(manifest) else None


def _file_state(df: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every image and mask file the cohort references."""
    paths: set[str] = set()
    for col in ("image_path", "mask_path"):
        if col in df.columns:
            for value in df[col].dropna().astype(str):
                paths.update(p for p in value.split(";") if p)
    out = []
    for p in sorted(paths):
        try:
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return out


def validate_once(manifest: Path, units: Mapping[str, str], features: Sequence[str], cache_dir: Path,
                  options: TableOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the cohort (raises ``ManifestValidationError``), skipping a cohort already found usable
    with the same manifest bytes, unit declarations, table options, required features and image files
    (size, mtime). Returns (the table as read, the manifest frame): the file is read once."""
    from liver_mm.cohort.validate import (
        ManifestValidationError,
        open_manifest_table,
        raise_or_warn,
        validate_frame,
    )

    report, table, df, cache = open_manifest_table(manifest, units, options)  # the one read of the table
    if df is None or table is None:
        raise ManifestValidationError(report)
    state = [hashlib.sha256(manifest.read_bytes()).hexdigest(), sorted(units.items()), _file_state(df)]
    if options is not None and options.key():
        state.append(options.key())
    stamp = cache_dir / "validated" / f"{_key(manifest.resolve(), state)}.json"
    if stamp.exists() and all(f in df.columns for f in features):
        log.info("%s: validated earlier with the same files; not validated again", manifest)
        return table, df
    raise_or_warn(validate_frame(report, df, cache, manifest, True, tuple(features)), df)  # the same frame
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"manifest": str(manifest.resolve())}))
    return table, df


def prepare_cohort(
    data: Mapping, split: Mapping, cache_dir: str | Path, features: Sequence[str] = ()
) -> PreparedCohort:
    """Resolve, validate (raises ``ManifestValidationError`` before any training) and split a cohort.

    ``features``: clinical columns the model needs; their absence is then an error, not a warning.
    """
    from liver_mm.cohort.content import cohort_content_hash
    from liver_mm.cohort.split import prepare_split
    from liver_mm.io.dialect import options_from_config
    from liver_mm.io.schema import read_manifest

    units = dict(data.get("units") or {})
    manifest, synthetic = source_manifest(data, cache_dir)
    opts = options_from_config(data) if data["kind"] == "manifest" else None  # an import is already canonical
    # raises with the findings when the cohort is unusable (checks an existing split column too)
    table, source = validate_once(manifest, units, features, Path(cache_dir), opts)
    content = cohort_content_hash(source, cache_dir)  # the images' and masks' bytes: not in the table's text
    fractions = tuple(float(f) for f in split["fractions"])
    key_parts: list[object] = [manifest, fractions, split["seed"], sorted(units.items())]
    if opts is not None and opts.key():
        key_parts.append(opts.key())
    out = Path(cache_dir) / "splits" / _key(*key_parts) / "manifest.csv"
    res = prepare_split(manifest, out, fractions=fractions, seed=int(split["seed"]), units=units, options=opts,
                        content_hash=content, frame=source, table=table)
    df = read_manifest(res.path)  # the copy holds canonical units already: no second conversion
    check_both_classes(df, str(res.path))
    return PreparedCohort(df, manifest, Path(res.path), res.manifest_hash, res.split_hash, synthetic, content)


def check_both_classes(df: pd.DataFrame, where: str, part: str = "split") -> None:
    """Every part (train, dev, test) must hold benign and malignant cases: raise naming the part and its counts."""
    from liver_mm.cohort.labels import parse_labels
    from liver_mm.io.schema import line_numbers

    y = parse_labels(df["label"], where, lines=line_numbers(df), case_ids=df.get("case_id"))
    for name in ("train", "dev", "test"):
        in_part = (df[part] == name).to_numpy()
        n_m = int(y[in_part].sum())
        n_b = int(in_part.sum()) - n_m
        if n_b == 0 or n_m == 0:
            raise ValueError(
                f"{where}: the {name} part has {n_b} benign and {n_m} malignant case(s); every part needs both "
                "classes (add cases of the missing class, or change split.fractions / split.seed)")
