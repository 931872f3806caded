"""Lesion appearance of the synthetic cohort: a class-neutral look, each subtype's typical look, their blend,
and the optional lab-dependent echo shift (``interaction``).

``interaction`` (default 0: off, the cohort is byte-identical to one made without it) makes a lesion's core
echogenicity depend on its label *and* its platelet count: :func:`interaction_echo_db` adds
``interaction * INTERACTION_DB * s * tanh((PLATELET_PIVOT - platelets) / PLATELET_SCALE)`` dB, with s = +1 for a
malignant and -1 for a benign lesion. With low platelets (below 15 x10^4/uL = 150 x10^9/L, thrombocytopenia)
malignant lesions turn brighter and benign ones darker; with high platelets the other way round. The direction
of this image cue depends on a lab, so only a model that combines image and labs can use it; an image-only
model sees a cue whose sign it cannot read. No random numbers are drawn for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_CONTRAST_DB = 5.0  # least |echo| of a lesion core against the liver
#: echo shift (dB) of a lesion at interaction = 1 and platelets far from the pivot
INTERACTION_DB = 10.0
#: platelet count (x10^4/uL) where the shift changes sign, and the width of the change
PLATELET_PIVOT, PLATELET_SCALE = 15.0, 3.0


@dataclass(frozen=True)
class LesionLook:
    """Appearance of one lesion; dB are relative to the surrounding liver."""

    echo_db: float  # core echogenicity
    centre_db: float  # extra echo in the central half (scar, target centre)
    rim_db: float  # echogenicity of the peripheral rim (halo / capsule)
    rim_width: float  # rim thickness as a fraction of the radius
    edge_px: float  # width of the boundary transition (blur), pixels
    mosaic_db: float  # amplitude of internal nodular heterogeneity
    attenuation: float  # attenuation inside relative to liver (< 1: posterior enhancement)
    irregularity: float  # amplitude of boundary lobulation, fraction of the radius
    diameter: float  # mean diameter as a fraction of the frame height


def _neutral(rng: np.random.Generator) -> dict[str, float]:
    """Class-independent lesion look."""
    return {
        "echo_db": rng.choice([-1.0, 1.0]) * rng.normal(6.0, 2.5),  # clearly hypo- or hyperechoic
        "centre_db": rng.normal(0.0, 1.5),
        "rim_db": rng.normal(-6.0, 3.0) if rng.random() < 0.4 else 0.0,
        "rim_width": rng.uniform(0.08, 0.3),
        "edge_px": rng.uniform(0.8, 4.0),
        "mosaic_db": rng.uniform(0.0, 4.0),
        "attenuation": rng.normal(1.0, 0.2),
        "irregularity": rng.uniform(0.02, 0.15),
        "diameter": np.log(0.16) + rng.normal(0.0, 0.35),
    }


def _subtype(subtype: str, rng: np.random.Generator) -> dict[str, float]:
    """The subtype's typical look (with per-lesion variation)."""
    n, u = rng.normal, rng.uniform
    halo = n(-12, 3) if rng.random() < 0.8 else 0.0
    sign = rng.choice([-1.0, 1.0])
    looks = {  # echo, centre, rim, rim width, edge, mosaic, attenuation, irregularity, diameter
        "hemangioma": (n(8, 3), n(0, 1), n(2, 1), 0.1, u(0.5, 1.2), u(0, 2), n(0.85, 0.08), u(0.02, 0.08), 0.12),
        "FNH": (n(-1, 2), n(4, 1.5), 0.0, 0.1, u(2.5, 5), u(0.5, 2), n(1.0, 0.05), u(0.02, 0.06), 0.15),
        "angiomyolipoma": (n(12, 3), 0.0, 0.0, 0.1, u(0.5, 1.5), u(0, 2), n(1.1, 0.1), u(0.02, 0.08), 0.11),
        "cyst": (n(-32, 2), 0.0, 0.0, 0.1, u(0.4, 0.8), 0.0, n(0.1, 0.03), u(0.0, 0.03), 0.10),
        "focal_fat": (sign * n(6, 2), 0.0, 0.0, 0.1, u(3, 6), u(0, 1), 1.0, u(0.15, 0.3), 0.12),
        "abscess": (n(-14, 3), 0.0, n(2, 2), 0.2, u(2, 4), u(4, 7), n(0.7, 0.1), u(0.08, 0.18), 0.20),
        "other_benign": (n(3, 5), n(0, 1), n(0, 2), 0.15, u(1, 3), u(0, 3), n(0.95, 0.1), u(0.03, 0.1), 0.13),
        "HCC": (n(-3, 3), n(0, 1), halo, u(0.07, 0.14), u(1, 2.5), u(3, 7), n(0.9, 0.08), u(0.02, 0.08), 0.20),
        "metastasis": (n(-6, 2), n(9, 2), n(-10, 2), u(0.2, 0.35), u(2, 4), u(1, 3), n(1.1, 0.08), u(0.06, 0.14),
                       0.16),
        "cholangiocarcinoma": (n(-2, 3), 0.0, 0.0, 0.1, u(4, 7), u(1, 3), n(1.25, 0.1), u(0.15, 0.25), 0.25),
    }
    if subtype not in looks:
        raise ValueError(f"unknown subtype {subtype!r}; expected one of {sorted(looks)}")
    values = list(looks[subtype])
    values[-1] = np.log(values[-1]) + rng.normal(0.0, 0.35)  # log-normal size
    return dict(zip(LesionLook.__dataclass_fields__, values, strict=True))


def draw_look(subtype: str, rng: np.random.Generator, image_signal: float, echo_shift_db: float = 0.0) -> LesionLook:
    """Blend a neutral look and the subtype's look: ``(1 - s) * neutral + s * subtype``; ``echo_shift_db``
    (see :func:`interaction_echo_db`) is added to the core echogenicity (no random draw)."""
    neutral, typical = _neutral(rng), _subtype(subtype, rng)
    p = {k: (1.0 - image_signal) * neutral[k] + image_signal * typical[k] for k in neutral}
    if echo_shift_db:
        p["echo_db"] += float(echo_shift_db)
    if abs(p["echo_db"]) < _MIN_CONTRAST_DB:  # every lesion stays visible: at least slightly hypo/hyper
        p["echo_db"] = _MIN_CONTRAST_DB if p["echo_db"] >= 0 else -_MIN_CONTRAST_DB
    p["diameter"] = float(np.clip(np.exp(p["diameter"]), 0.06, 0.45))
    p["edge_px"] = max(p["edge_px"], 0.4)
    p["attenuation"] = max(p["attenuation"], 0.1)
    p["rim_width"] = float(np.clip(p["rim_width"], 0.05, 0.4))
    return LesionLook(**{k: float(v) for k, v in p.items()})


def interaction_echo_db(labels: np.ndarray, platelets: np.ndarray, interaction: float) -> np.ndarray:
    """Echo shift (dB) (N,) of each lesion from its label (N,) benign/malignant and platelets (N,) x10^4/uL;
    zeros when ``interaction`` is 0 (see the module docstring). ``interaction`` must lie in [0, 1]."""
    if not 0.0 <= float(interaction) <= 1.0:
        raise ValueError(f"interaction must lie in [0, 1], got {interaction}")
    labels = np.asarray(labels, dtype=object)
    plt = np.asarray(platelets, dtype=np.float64)
    if float(interaction) == 0.0:
        return np.zeros(labels.shape[0], dtype=np.float64)
    if np.isnan(plt).any():
        raise ValueError("interaction needs every lesion's platelet count; some are missing")
    sign = np.where(labels == "malignant", 1.0, -1.0)
    return float(interaction) * INTERACTION_DB * sign * np.tanh((PLATELET_PIVOT - plt) / PLATELET_SCALE)
