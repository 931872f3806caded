"""The synthetic lesion cohort on disk: :func:`~liver_mm.synth.lesions.synth_lesions`'s table plus a B-mode-like
frame per lesion (:func:`~liver_mm.synth.images.render_frame`), as a manifest a study reads with
``data=manifest dictionary=<lesions.yaml>``.

The frames carry no signal by default (``image_signal=0``: every lesion drawn from the class-neutral look), so
what a step adds over the image is the descriptors' signal alone (:data:`~liver_mm.synth.lesions.SIGNAL`).
Deterministic by ``seed``; results on it are synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from liver_mm.io.schema import BBOX_COLUMNS
from liver_mm.synth.images import render_frame
from liver_mm.synth.lesions import synth_lesions

# the look drawn towards when image_signal > 0 (the liver generator's subtypes; only the blend's weight matters)
_LOOK = {"benign": "hemangioma", "malignant": "HCC"}


def write_lesion_cohort(out_dir: str | Path, n: int = 300, seed: int = 0, image_signal: float = 0.0,
                        frame_size: tuple[int, int] = (96, 112)) -> Path:
    """Write ``out_dir/manifest.csv`` and ``out_dir/images/<case_id>.png`` for ``n`` synthetic lesions; return
    the manifest's path. ``out_dir`` must not hold a manifest already (FileExistsError)."""
    out = Path(out_dir)
    manifest = out / "manifest.csv"
    if manifest.exists():
        raise FileExistsError(f"{manifest} exists: choose a new folder for the synthetic lesion cohort")
    (out / "images").mkdir(parents=True, exist_ok=True)
    df = synth_lesions(n, seed)
    paths, boxes = [], []
    for k, (case_id, label) in enumerate(zip(df["case_id"], df["label"], strict=True)):
        frame = render_frame(_LOOK[label], np.random.default_rng([seed, k]), float(image_signal), frame_size)
        rel = f"images/{case_id}.png"
        Image.fromarray(frame.pixels).save(out / rel, optimize=False)
        paths.append(rel)
        boxes.append(frame.bbox)
    df.insert(2, "image_path", paths)
    for j, col in enumerate(BBOX_COLUMNS):
        df.insert(3 + j, col, [b[j] for b in boxes])
    df.to_csv(manifest, index=False, lineterminator="\n")
    return manifest
