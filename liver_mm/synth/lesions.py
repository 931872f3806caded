"""A second synthetic cohort whose clinical table is not the liver one: breast-lesion-like descriptors.

Each descriptor has a known amount of signal (:data:`SIGNAL`), some none: ``birads`` (ordinal), ``shape``
(categorical) and ``margin`` (multi-valued, ``&``-joined) carry strong signal, ``age`` (continuous, ``not
available`` when unknown) a moderate one, ``echogenicity`` (categorical) and ``halo`` (binary) none (drawn
alike in both classes). Its data dictionary is ``liver_mm/dictionary/lesions.yaml`` (steps: image, +age,
+descriptors, +the null descriptors). Deterministic by ``seed``; results on it are synthetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from liver_mm.dictionary import Dictionary, load_dictionary
from liver_mm.dictionary import default_path as _default_path

CLASSES = ("benign", "malignant")
#: descriptor -> the signal the generator puts in it
SIGNAL = {"age": "moderate", "shape": "strong", "margin": "strong", "birads": "strong", "echogenicity": "none",
          "halo": "none"}
MISSING_TOKEN = "not available"
AGE_MISSING_FRACTION = 0.1
#: per class, the probability of each level (categorical / ordinal / binary) or each value (multi)
_LEVELS = {
    "shape": (("oval", "round", "irregular"), {"benign": (0.6, 0.3, 0.1), "malignant": (0.1, 0.2, 0.7)}),
    "birads": (("2", "3", "4a", "4b", "4c", "5"),
               {"benign": (0.25, 0.35, 0.25, 0.1, 0.04, 0.01), "malignant": (0.01, 0.04, 0.1, 0.2, 0.3, 0.35)}),
    "echogenicity": (("anechoic", "hypoechoic", "isoechoic", "hyperechoic", "complex"),
                     {"benign": (0.15, 0.45, 0.2, 0.1, 0.1), "malignant": (0.15, 0.45, 0.2, 0.1, 0.1)}),
    "halo": (("no", "yes"), {"benign": (0.8, 0.2), "malignant": (0.8, 0.2)}),
}
_MARGIN = (("circumscribed", "not circumscribed - indistinct", "not circumscribed - angular",
            "not circumscribed - microlobulated", "not circumscribed - spiculated"),
           {"benign": (0.75, 0.2, 0.05, 0.05, 0.02), "malignant": (0.1, 0.5, 0.4, 0.3, 0.35)})
_AGE = {"benign": (47.0, 13.0), "malignant": (55.0, 12.0)}  # mean, SD (years)


def lesions_dictionary() -> Dictionary:
    """The synthetic lesion cohort's data dictionary (``lesions.yaml``, shipped next to the liver one)."""
    return load_dictionary(str(_default_path()).replace("liver.yaml", "lesions.yaml"))


def synth_lesions(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """``n`` lesions (half malignant, rounded down): case_id, patient_id, label and the descriptors as an
    export writes them (text; ``age`` with ``not available`` cells)."""
    if n < 2:
        raise ValueError(f"n must be at least 2 (one lesion per class), got {n}")
    rng = np.random.default_rng(seed)
    labels = np.array(["benign"] * (n - n // 2) + ["malignant"] * (n // 2))
    rng.shuffle(labels)
    out: dict[str, list[str]] = {name: [] for name in ("age", "shape", "margin", "birads", "echogenicity", "halo")}
    for lab in labels:
        mean, sd = _AGE[lab]
        age = int(np.clip(round(rng.normal(mean, sd)), 18, 95))
        out["age"].append(MISSING_TOKEN if rng.random() < AGE_MISSING_FRACTION else str(age))
        for name, (levels, p) in _LEVELS.items():
            out[name].append(str(levels[rng.choice(len(levels), p=p[lab])]))
        values, q = _MARGIN
        chosen = [v for v, pv in zip(values, q[lab], strict=True) if rng.random() < pv] or [values[0]]
        out["margin"].append("&".join(chosen))
    width = max(4, len(str(n)))
    df = pd.DataFrame({"case_id": [f"L{i:0{width}d}" for i in range(1, n + 1)],
                       "patient_id": [f"Q{i:0{width}d}" for i in range(1, n + 1)], "label": labels, **out})
    return df
