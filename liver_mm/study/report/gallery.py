"""The study's case gallery: each arm's most confident errors on the test split, gathered from its child run.

A child's explain step writes ``explain/gallery.csv`` (and for an image model ``explain/gallery.png`` with the
pictures ``explain/gallery/*.png``: :mod:`liver_mm.explain.gallery`). The study folder gets ``gallery.csv`` (long,
an ``arm`` column), ``gallery_<arm>.png`` (the grid, linked from report.md) and ``gallery/<arm>/*.png`` (each
case's crop and Grad-CAM overlay, shown in the report's table of that arm).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from liver_mm.stats import markdown_table

FIXED = ("arm", "case_id", "kind", "prob", "threshold", "label", "confidence", "image")


def gather_gallery(client, runs: Mapping[str, object], out: Path, tmp: Path) -> pd.DataFrame | None:
    """Copy each arm's gallery into ``out`` (see the module docstring); the long table, or None when no arm
    has one (explain off, or no model got a test case wrong)."""
    frames = []
    for arm, run in runs.items():
        rid = run.info.run_id  # type: ignore[attr-defined]
        names = {f.path for f in client.list_artifacts(rid, "explain")}
        if "explain/gallery.csv" not in names:
            continue
        where = Path(client.download_artifacts(rid, "explain", str(tmp / f"gallery-{arm}")))
        table = pd.read_csv(where / "gallery.csv").assign(arm=arm)
        if (where / "gallery.png").is_file():
            shutil.copyfile(where / "gallery.png", out / f"gallery_{arm}.png")
        if "image" in table.columns:
            dest = out / "gallery" / arm
            dest.mkdir(parents=True, exist_ok=True)
            for name in table["image"].dropna():
                shutil.copyfile(where / str(name), dest / Path(str(name)).name)
            table["image"] = [f"gallery/{arm}/{Path(str(n)).name}" if isinstance(n, str) else n
                              for n in table["image"]]
        frames.append(table)
    if not frames:
        return None
    long = pd.concat(frames, ignore_index=True)
    long = long[[*[c for c in FIXED if c in long.columns], *[c for c in long.columns if c not in FIXED]]]
    long.to_csv(out / "gallery.csv", index=False)
    return long


def _value(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "missing"
    return f"{v:g}" if isinstance(v, float) else str(v)


def format_gallery(part: pd.DataFrame) -> pd.DataFrame:
    """One arm's gallery as text: kind, case, probability (threshold), label, picture, the clinical values."""
    values = [c for c in part.columns if c not in FIXED and part[c].notna().any()]
    rows = []
    for r in part.to_dict("records"):
        row = {"Error": r["kind"], "Case": str(r["case_id"]), "p (threshold)": f"{r['prob']:.3f} ({r['threshold']:.3f})",
               "Label": r["label"]}
        if isinstance(r.get("image"), str):
            row["Crop and Grad-CAM"] = f"![{r['kind']} {r['case_id']}]({r['image']})"
        rows.append(row | {c: _value(r[c]) for c in values})
    return pd.DataFrame(rows)


def gallery_section(gallery: pd.DataFrame | None) -> list[str]:
    """report.md lines: per arm, the grid picture and the table of its most confident errors."""
    if gallery is None or gallery.empty:
        return []
    lines = ["## Case gallery: the errors each model was surest of", "",
             "Per model, the test cases it got most wrong at its frozen threshold: false negatives (malignant "
             "called benign, lowest probability first) and false positives (benign called malignant, highest "
             "first), with the crop beside its Grad-CAM map of the called class, and the clinical values the model "
             "saw as the manifest holds them. Values in [gallery.csv](gallery.csv).", ""]
    for arm, part in gallery.groupby("arm", sort=False):
        kinds = part["kind"].value_counts()
        lines += [f"### {arm}: {int(kinds.get('false negative', 0))} false negative(s), "
                  f"{int(kinds.get('false positive', 0))} false positive(s)", ""]
        grid = f"gallery_{arm}.png"
        if part["image"].notna().any() if "image" in part.columns else False:
            lines += [f"![Case gallery {arm}]({grid})", ""]
        lines += [markdown_table(format_gallery(part)), ""]
    return lines
