"""The built-in synthetic cohort: full-frame B-mode-like PNGs plus a manifest calibrated to the paper.

``generate_cohort(out_dir)`` writes ``out_dir/manifest.csv``, ``out_dir/images/<case_id>.png`` and the
sidecar ``out_dir/cohort.json`` marking the cohort synthetic. Same arguments, same bytes: every
random draw comes from ``numpy.random.default_rng`` seeded by ``seed`` (clinical table) and by
``[seed, case number]`` (each image), PNGs are written with fixed settings and no metadata.

The cohort is written into a temporary sibling folder and renamed into place, so a killed run never
leaves half a cohort. ``out_dir`` must be new or empty; ``force=True`` replaces only a cohort this
generator wrote (its sidecar's ``manifest_sha256`` matches and nothing else is in the folder), never a
folder holding anything else.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from liver_mm.io.schema import BBOX2_COLUMNS, BBOX_COLUMNS
from liver_mm.synth.clinical import LABS, class_counts, synth_clinical
from liver_mm.synth.images import render_frame
from liver_mm.synth.looks import interaction_echo_db
from liver_mm.synth.site import Site, get_site, measure_labs

__all__ = [
    "DEFAULT_FRAME_SIZE",
    "DEFAULT_IMAGE_SIGNAL",
    "SIDECAR_NAME",
    "class_counts",
    "generate_cohort",
    "is_synthetic",
    "read_cohort_meta",
    "synth_clinical",
]

log = logging.getLogger(__name__)

#: how much a lesion's look tells about its label (0: nothing, 1: textbook patterns). At the default a
#: quick classifier on bbox-crop features (32x32 crop histogram + radial profile, logistic regression,
#: 5-fold CV, n = 1,080, seeds 0/1) reaches AUC ~0.75, near the paper's image-only model 1. Proxy curve:
#: 0 -> 0.50, 0.2 -> 0.63, 0.3 -> 0.71, 0.35 -> 0.75, 0.4 -> 0.79, 0.5 -> 0.86, 0.6 -> 0.92, 1 -> 0.97.
DEFAULT_IMAGE_SIGNAL = 0.35
DEFAULT_FRAME_SIZE = (256, 320)
SIDECAR_NAME = "cohort.json"
# the generator's name in cohort.json: an identifier kept from the module's first home (liver_mm.data.synth), so
# cohorts written before the move are still recognised as ours and the sidecar stays byte-identical
GENERATOR = "liver_mm.data.synth"
GENERATOR_VERSION = 1


def _save_png(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path, format="PNG", optimize=False, compress_level=1)


def _foreign(out: Path) -> list[str]:
    """Entries of ``out`` this generator did not write (all of them unless its sidecar and manifest check out)."""
    entries = sorted(p.name for p in out.iterdir())
    meta = read_cohort_meta(out / "manifest.csv")
    manifest = out / "manifest.csv"
    if (meta is None or meta.get("synthetic") is not True or meta.get("generator") != GENERATOR
            or meta.get("manifest") != manifest.name or not manifest.is_file()
            or meta.get("manifest_sha256") != hashlib.sha256(manifest.read_bytes()).hexdigest()):
        return entries
    foreign = [e for e in entries if e not in (manifest.name, SIDECAR_NAME, "images")]
    images = out / "images"
    if images.is_dir():
        with open(manifest, newline="") as fh:
            ours = {row.get("image_path") for row in csv.DictReader(fh)}
        foreign += [f"images/{p.name}" for p in sorted(images.iterdir())
                    if f"images/{p.name}" not in ours or not p.is_file()]
    elif images.exists():
        foreign.append("images")
    return foreign


def _replaceable(out: Path, force: bool) -> bool:
    """May a new cohort go to ``out``? True when an earlier synthetic cohort there is to be replaced;
    raises ``FileExistsError`` saying why not."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; choose a new or empty folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return False
    if not force:
        raise FileExistsError(f"{out} is not empty ({len(entries)} entries: {', '.join(entries[:3])}"
                              f"{', ...' if len(entries) > 3 else ''}): choose a new or empty folder, or pass "
                              "--force to replace a synthetic cohort written there")
    foreign = _foreign(out)
    if foreign:
        raise FileExistsError(f"{out}: not replaced even with --force: it holds {len(foreign)} entr"
                              f"{'y' if len(foreign) == 1 else 'ies'} liver-mm synth did not write "
                              f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                              "choose a new or empty folder")
    return True


def _move_into_place(tmp: Path, out: Path, replace: bool) -> None:
    if not replace:
        if out.exists():
            out.rmdir()  # empty (checked)
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def generate_cohort(
    out_dir: str | Path,
    n: int = 1080,
    seed: int = 0,
    image_signal: float = DEFAULT_IMAGE_SIGNAL,
    frame_size: tuple[int, int] = DEFAULT_FRAME_SIZE,
    progress: bool | None = None,
    force: bool = False,
    interaction: float = 0.0,
    site: str | None = None,
) -> Path:
    """Write a synthetic cohort of ``n`` nodules to ``out_dir``; return the path of its manifest.csv.

    Images are full frames of shape ``frame_size`` = (H, W) pixels (uint8 PNG) with the lesion's
    box in ``bbox_*`` (x1, y1 exclusive) and a second observer's box in ``bbox2_*``.
    ``image_signal`` in [0, 1] sets how much the image tells about the label. ``interaction`` in [0, 1]
    (default 0: off, same bytes as without it) lets a lesion's echogenicity depend on its label *and* its
    platelet count (:func:`liver_mm.synth.looks.interaction_echo_db`). ``site`` (default None: the home site,
    same bytes as without it) measures the same patients with another site's scanner and lab assays
    (:data:`liver_mm.synth.site.SITES`; recorded in ``cohort.json``). ``progress``:
    show a tqdm bar (None: only on a terminal). ``out_dir`` must be new or empty; ``force``
    replaces a synthetic cohort written there earlier (``FileExistsError`` otherwise).
    """
    if not 0.0 <= float(image_signal) <= 1.0:
        raise ValueError(f"image_signal must lie in [0, 1], got {image_signal}")
    if not 0.0 <= float(interaction) <= 1.0:
        raise ValueError(f"interaction must lie in [0, 1], got {interaction}")
    where = get_site(site)  # an unknown name is refused before anything is written
    height, width = (int(v) for v in frame_size)
    if height < 64 or width < 64:
        raise ValueError(f"frame_size must be at least (64, 64) pixels, got {frame_size}")
    target = Path(out_dir).resolve()
    replace = _replaceable(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    (tmp / "images").mkdir(parents=True)
    try:
        _write(tmp, n, seed, float(image_signal), (height, width), progress, float(interaction), where)
        _move_into_place(tmp, target, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = Path(out_dir) / "manifest.csv"
    log.info("synthetic cohort: %d nodules -> %s", n, manifest)
    return manifest


def _write(out: Path, n: int, seed: int, image_signal: float, frame_size: tuple[int, int],
           progress: bool | None, interaction: float = 0.0, site: Site | None = None) -> None:
    height, width = frame_size
    df = synth_clinical(n, seed)
    # the lesion's biology follows the true platelets; the manifest holds what the site's lab reports
    shifts = interaction_echo_db(df["label"].to_numpy(), df["platelets"].to_numpy(dtype=float), interaction)
    df = measure_labs(df, site)
    scanner = None if site is None else site.scanner
    boxes, boxes2, paths = [], [], []
    bar = tqdm(df["case_id"], desc="synthetic images", unit="img", disable=None if progress is None else not progress)
    for k, (case_id, subtype) in enumerate(zip(bar, df["subtype"], strict=True)):
        frame = render_frame(subtype, np.random.default_rng([seed, k]), float(image_signal), (height, width),
                             float(shifts[k]), scanner)
        rel = f"images/{case_id}.png"
        _save_png(frame.pixels, out / rel)
        boxes.append(frame.bbox)
        boxes2.append(frame.bbox2)
        paths.append(rel)
    df.insert(2, "image_path", paths)
    for j, col in enumerate(BBOX_COLUMNS):
        df.insert(3 + j, col, [b[j] for b in boxes])
    for j, col in enumerate(BBOX2_COLUMNS):
        df.insert(7 + j, col, [b[j] for b in boxes2])
    cols = ["case_id", "patient_id", "image_path", *BBOX_COLUMNS, *BBOX2_COLUMNS, "label", "subtype",
            "diagnostic_basis", "age", "sex", *LABS[1:]]
    manifest = out / "manifest.csv"
    df[cols].to_csv(manifest, index=False, lineterminator="\n")

    counts = df["label"].value_counts()
    sidecar = {
        "synthetic": True,
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "n": int(n),
        "seed": int(seed),
        "image_signal": float(image_signal),
        "frame_size": [height, width],
        "n_benign": int(counts.get("benign", 0)),
        "n_malignant": int(counts.get("malignant", 0)),
        "n_patients": int(df["patient_id"].nunique()),
        "manifest": manifest.name,
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
    }
    if interaction:  # (absent when off: the sidecar of a default cohort is unchanged)
        sidecar["interaction"] = float(interaction)
    if site is not None:  # (absent at the home site, likewise)
        sidecar["site"] = site.record()
    (out / SIDECAR_NAME).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")


def is_synthetic(manifest_path: str | Path) -> bool:
    """True when the manifest's folder holds a ``cohort.json`` sidecar marking it synthetic."""
    sidecar = Path(manifest_path).parent / SIDECAR_NAME
    if not sidecar.is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable cohort sidecar (%s); treating the cohort as real", sidecar, exc)
        return False
    return isinstance(meta, dict) and meta.get("synthetic") is True


def read_cohort_meta(manifest_path: str | Path) -> dict | None:
    """The ``cohort.json`` sidecar next to a manifest as a dict, or None when absent/unreadable."""
    sidecar = Path(manifest_path).parent / SIDECAR_NAME
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None

