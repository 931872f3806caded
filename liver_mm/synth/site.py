"""Acquisition sites of the synthetic cohort: the same kind of patients measured with another hospital's scanner
and laboratory (``liver-mm synth --site NAME``, ``+data.site=NAME``), for external-validation experiments.

No site (the default) is the home site: the cohort is byte-identical to one made before sites existed. A named
site changes *how* a cohort is measured, never who is in it: at the same seed the patients, labels, lesion looks
and speckle draws are the same, only

* the scanner differs (:class:`Scanner`): receive gain in dB added to every echo before log compression
  (brighter frames), the dynamic range (the log-compression window in dB mapped to gray 0..255; narrower = more
  contrast) and the point-spread function (axial and lateral sigma in beam samples; larger = coarser speckle);
* the laboratory differs: each listed lab is reported as ``scale * value + offset`` (an assay calibrated
  another way), rounded as a lab report prints it and kept inside the plausible range.

A model trained at the home site meets inputs shifted in a known direction, so its calibration drifts there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from liver_mm.synth.clinical import LAB_LIMITS


@dataclass(frozen=True)
class Scanner:
    """How a site's scanner forms a frame: gain (dB), log-compression window (dB), speckle PSF sigmas
    (axial, lateral) in beam samples. The home scanner is 0 dB, 55 dB, (0.8, 1.6)."""

    gain_db: float = 0.0
    dynamic_range_db: float = 55.0
    psf: tuple[float, float] = (0.8, 1.6)


@dataclass(frozen=True)
class Site:
    """A named site: its scanner and its lab assays (lab -> (scale, offset), reported = scale * true + offset,
    in the manifest's units)."""

    name: str
    description: str
    scanner: Scanner
    labs: dict[str, tuple[float, float]] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """The site as written into the cohort's ``cohort.json`` (JSON-safe)."""
        out = asdict(self)
        out["scanner"]["psf"] = list(self.scanner.psf)
        out["labs"] = {k: list(v) for k, v in self.labs.items()}
        return out


#: the named sites; none is the home site every default model is trained on
SITES: dict[str, Site] = {
    "b": Site(
        name="b",
        description=("another hospital: a brighter, higher-contrast scanner with a lower-frequency probe "
                     "(+6 dB gain, 45 dB dynamic range, coarser speckle); AST and ALT measured with "
                     "pyridoxal-phosphate activation (x1.25), albumin by bromocresol purple (-0.3 g/dL against "
                     "bromocresol green), platelets by an impedance counter (x0.9)"),
        scanner=Scanner(gain_db=6.0, dynamic_range_db=45.0, psf=(1.1, 2.2)),
        labs={"ast": (1.25, 0.0), "alt": (1.25, 0.0), "albumin": (1.0, -0.3), "platelets": (0.9, 0.0)},
    ),
}


def get_site(name: str | None) -> Site | None:
    """The site called ``name`` (None or "" = the home site: None); ``ValueError`` naming the known sites."""
    if name is None or str(name) == "":
        return None
    if str(name) not in SITES:
        raise ValueError(f"unknown site {name!r}: known sites are {', '.join(sorted(SITES))} (none = the home "
                         "site)")
    return SITES[str(name)]


def measure_labs(df: pd.DataFrame, site: Site | None) -> pd.DataFrame:
    """The clinical table as ``site``'s laboratory reports it (a copy; ``df`` itself when ``site`` is None):
    each of ``site.labs`` becomes ``scale * value + offset``, rounded to the lab's printed decimals and clipped
    inside its plausible range (:data:`~liver_mm.synth.clinical.LAB_LIMITS`); missing values stay missing and
    integer columns stay integer."""
    if site is None or not site.labs:
        return df
    out = df.copy()
    for lab, (scale, offset) in site.labs.items():
        lo, hi, decimals = LAB_LIMITS[lab]
        x = pd.to_numeric(out[lab], errors="coerce").astype("float64")
        step = 10.0 ** -decimals
        y = np.round(np.clip(scale * x + offset, lo + step, hi - step), decimals)
        out[lab] = y.round().astype("Int64") if isinstance(df[lab].dtype, pd.Int64Dtype) else y
    return out
