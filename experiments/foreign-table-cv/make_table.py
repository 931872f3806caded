"""Make the foreign table of the worked example: a breast-ultrasound-like lesion export (synthetic).

Images, boxes and the descriptors' signal come from the project's synthetic lesion generator
(:func:`liver_mm.synth.lesion_cohort.write_lesion_cohort`); the table is then rewritten the way a hospital
export looks: the team's own column names (``Age (years)``, ``Shape``, ``Margin``, ``BI-RADS``, ``Echo
pattern``, ``Halo``, ``Exam room``), ``not available`` / ``n/a`` for unknown values, a few cells in another case
or with stray spaces, and one typo (``irregullar``) that ``liver-mm validate --dictionary`` finds.

``Exam room`` carries no signal (drawn alike for both classes), as do ``Echo pattern`` and ``Halo``; ``Age``
carries a moderate signal and ``Shape``, ``Margin``, ``BI-RADS`` a strong one (see ``liver_mm.synth.lesions``).

    python experiments/foreign-table-cv/make_table.py --out lesions --n 300

writes ``lesions/lesions_export.csv`` and ``lesions/images/``. Deterministic by ``--seed``; synthetic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.synth.lesion_cohort import write_lesion_cohort

#: the generator's column -> the team's header
HEADERS = {"age": "Age (years)", "shape": "Shape", "margin": "Margin", "birads": "BI-RADS",
           "echogenicity": "Echo pattern", "halo": "Halo"}
#: (column, row, new cell): the export's hand-typed quirks; the typo is fixed after `validate` reports it
QUIRKS = [("Shape", 3, "Oval"), ("Shape", 7, " round "), ("Margin", 5, "Circumscribed"), ("BI-RADS", 4, "4A"),
          ("Halo", 9, "n/a"), ("Shape", 11, "IRREGULAR"), ("Shape", 14, "irregullar")]


def make_table(out: Path, n: int = 300, seed: int = 0, image_signal: float = 0.5) -> Path:
    """Write ``out/lesions_export.csv`` (+ ``out/images/``) and return its path."""
    manifest = write_lesion_cohort(out, n=n, seed=seed, image_signal=image_signal)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    manifest.unlink()  # the export below is the only table the user has
    rng = np.random.default_rng([seed, 31])
    df["exam_room"] = rng.choice(["US-1", "US-2", "US-3"], size=len(df))  # no signal
    df = df.rename(columns={**HEADERS, "exam_room": "Exam room"})
    for col, row, cell in QUIRKS:
        df.loc[row, col] = cell
    path = out / "lesions_export.csv"
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="a new folder")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-signal", type=float, default=0.5, help="0: frames without signal, 1: full")
    a = p.parse_args()
    print(make_table(a.out, a.n, a.seed, a.image_signal))


if __name__ == "__main__":
    main()
