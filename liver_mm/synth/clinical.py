"""Clinical table of the synthetic cohort, calibrated to the paper's Tables 1 and 2.

Per class, the labs are drawn from a Gaussian copula (correlated latent normals) whose
marginals are the paper's medians and quartiles: each marginal's quantile function is
piecewise linear in a bounded-logit space through (Q1, median, Q3), which gives skewed labs
log-normal-like tails that never leave a plausible range. The latent ranks are mapped to
stratified quantiles ``(rank + 0.5) / m`` (Latin-hypercube style), so the medians and
quartiles of a generated class match the table at any seed while the copula keeps labs
correlated as in life (AST with ALT, low platelets with low albumin in malignant cases).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm

CLASSES = ("benign", "malignant")
#: Table 1 subtype counts per class (n = 1,080: 532 benign, 548 malignant).
SUBTYPE_COUNTS: dict[str, dict[str, int]] = {
    "benign": {
        "hemangioma": 405,
        "FNH": 19,
        "angiomyolipoma": 7,
        "cyst": 5,
        "focal_fat": 3,
        "abscess": 1,
        "other_benign": 92,
    },
    "malignant": {"HCC": 440, "metastasis": 104, "cholangiocarcinoma": 4},
}
PAPER_N = 1080
#: Table 2, median and IQR per class: (Q1, median, Q3) in the paper's units.
LAB_QUARTILES: dict[str, dict[str, tuple[float, float, float]]] = {
    "age": {"benign": (47, 58, 68), "malignant": (66, 73, 80)},
    "ast": {"benign": (17, 20, 25), "malignant": (25, 35, 51)},
    "alt": {"benign": (12, 16, 23), "malignant": (16, 25, 42)},
    "platelets": {"benign": (19.8, 23.25, 27.3), "malignant": (9.275, 12.5, 18.6)},
    "albumin": {"benign": (4.1, 4.2, 4.4), "malignant": (3.2, 3.6, 4.0)},
    "wbc": {"benign": (4.5, 5.4, 6.4), "malignant": (4.0, 5.0, 6.4)},
    "hemoglobin": {"benign": (13.1, 13.7, 14.8), "malignant": (10.575, 12.1, 13.7)},
    "ggt": {"benign": (17, 24, 39), "malignant": (32, 50, 140.5)},
    "alp": {"benign": (171, 203, 256), "malignant": (247.5, 330, 452)},
}
FEMALE_FRACTION = {"benign": 0.538, "malignant": 0.349}
#: plausible open range (lo, hi) of each variable and the decimals a lab report prints.
LAB_LIMITS: dict[str, tuple[float, float, int]] = {
    "age": (15.0, 100.0, 0),
    "ast": (5.0, 3000.0, 0),
    "alt": (3.0, 3000.0, 0),
    "platelets": (1.0, 60.0, 1),
    "albumin": (1.5, 5.5, 1),
    "wbc": (1.0, 30.0, 1),
    "hemoglobin": (5.0, 19.0, 1),
    "ggt": (5.0, 1500.0, 0),
    "alp": (40.0, 2000.0, 0),
}
#: missing values per 1,080 nodules (Table 2 footnote).
MISSING_PER_PAPER_N = {"ggt": 3, "alp": 28}
LABS = tuple(LAB_QUARTILES)
_LATENT = ("sex_f", *LABS)  # copula dimensions; sex is a thresholded latent normal

# latent correlations (Gaussian copula), shared then class-specific
_CORR_COMMON = {
    ("ast", "alt"): 0.75,
    ("ggt", "alp"): 0.45,
    ("ast", "ggt"): 0.35,
    ("alt", "ggt"): 0.35,
    ("ast", "alp"): 0.2,
    ("albumin", "hemoglobin"): 0.35,
    ("wbc", "platelets"): 0.35,
    ("age", "albumin"): -0.2,
    ("age", "hemoglobin"): -0.15,
    ("age", "alt"): -0.2,
    ("sex_f", "hemoglobin"): -0.5,
    ("sex_f", "alt"): -0.15,
    ("sex_f", "ggt"): -0.15,
}
_CORR_CLASS = {
    "benign": {("platelets", "albumin"): 0.15, ("platelets", "ast"): -0.1, ("albumin", "ast"): -0.1},
    "malignant": {
        ("platelets", "albumin"): 0.45,
        ("platelets", "ast"): -0.35,
        ("albumin", "ast"): -0.3,
        ("albumin", "alp"): -0.25,
        ("platelets", "hemoglobin"): 0.25,
    },
}
#: diagnostic basis per subtype: (histology, contrast imaging, follow-up) probabilities.
DIAGNOSTIC_BASIS = ("histology", "contrast imaging", "follow-up")
_BASIS_P = {
    "hemangioma": (0.02, 0.70, 0.28),
    "FNH": (0.20, 0.75, 0.05),
    "angiomyolipoma": (0.55, 0.45, 0.0),
    "cyst": (0.0, 0.40, 0.60),
    "focal_fat": (0.0, 0.70, 0.30),
    "abscess": (0.30, 0.50, 0.20),
    "other_benign": (0.15, 0.45, 0.40),
    "HCC": (0.40, 0.60, 0.0),
    "metastasis": (0.30, 0.55, 0.15),
    "cholangiocarcinoma": (0.75, 0.25, 0.0),
}
MULTI_NODULE_PATIENT_FRACTION = 0.08  # patients with two nodules
_Z_Q1 = norm.ppf(0.75)  # 0.6745: latent distance of a quartile from the median


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total``, proportional to ``weights`` (largest remainder)."""
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return dict(zip(keys, counts.tolist(), strict=True))


def class_counts(n: int) -> dict[str, int]:
    """Benign/malignant counts for ``n`` nodules: 532/548 at n = 1,080, proportional otherwise."""
    return apportion(n, {c: sum(SUBTYPE_COUNTS[c].values()) for c in CLASSES})


def lab_quantile(var: str, label: str, u: np.ndarray) -> np.ndarray:
    """Quantile function of ``var`` in class ``label`` at probabilities ``u`` in (0, 1), unrounded.

    Piecewise linear in latent-normal z through (Q1, median, Q3) after the transform
    ``t = logit((x - lo) / (hi - lo))``, so tails stay inside the plausible range (lo, hi).
    """
    lo, hi, _ = LAB_LIMITS[var]
    q1, med, q3 = (logit((np.asarray(q, dtype=float) - lo) / (hi - lo)) for q in LAB_QUARTILES[var][label])
    z = norm.ppf(np.asarray(u, dtype=float))
    t = med + z * np.where(z < 0, med - q1, q3 - med) / _Z_Q1
    return lo + (hi - lo) * expit(t)


def _correlation(label: str) -> np.ndarray:
    idx = {v: i for i, v in enumerate(_LATENT)}
    c = np.eye(len(_LATENT))
    for (a, b), r in {**_CORR_COMMON, **_CORR_CLASS[label]}.items():
        c[idx[a], idx[b]] = c[idx[b], idx[a]] = r
    vals, vecs = np.linalg.eigh(c)
    if vals.min() < 1e-6:  # nearest valid correlation by eigenvalue clipping
        c = vecs @ np.diag(np.clip(vals, 1e-6, None)) @ vecs.T
        d = np.sqrt(np.diag(c))
        c = c / np.outer(d, d)
    return c


def _class_table(label: str, m: int, rng: np.random.Generator) -> pd.DataFrame:
    """``m`` rows of sex and labs for one class (stratified marginals, copula ranks)."""
    z = rng.multivariate_normal(np.zeros(len(_LATENT)), _correlation(label), size=m, method="cholesky")
    ranks = np.argsort(np.argsort(z, axis=0, kind="stable"), axis=0, kind="stable")
    u = (ranks + 0.5) / m
    out = {}
    n_female = int(round(FEMALE_FRACTION[label] * m))
    out["sex"] = np.where(ranks[:, 0] >= m - n_female, "F", "M")
    for j, var in enumerate(LABS, start=1):
        out[var] = np.round(lab_quantile(var, label, u[:, j]), LAB_LIMITS[var][2])
    return pd.DataFrame(out)


def _pair_patients(df: pd.DataFrame, rng: np.random.Generator) -> list[list[int]]:
    """Group row positions into patients: ~8% of patients carry two nodules of one class and sex.

    The second nodule copies the first's age and labs (same visit) or is seen a year later
    (age + 1, own labs).
    """
    n = len(df)
    n_pairs = int(round(n * MULTI_NODULE_PATIENT_FRACTION / (1 + MULTI_NODULE_PATIENT_FRACTION)))
    strata = df.groupby(["label", "sex"]).indices
    capacity = {key: len(rows) // 2 for key, rows in strata.items()}
    per_stratum = apportion(n_pairs, capacity) if n_pairs and sum(capacity.values()) else {}
    paired: list[list[int]] = []
    for key, k in per_stratum.items():
        chosen = rng.choice(strata[key], size=2 * min(k, capacity[key]), replace=False)
        paired += [[int(a), int(b)] for a, b in chosen.reshape(-1, 2)]
    in_pair = {i for p in paired for i in p}
    units = paired + [[i] for i in range(n) if i not in in_pair]
    return [units[i] for i in rng.permutation(len(units))]


def synth_clinical(n: int = PAPER_N, seed: int = 0) -> pd.DataFrame:
    """The clinical table of a synthetic cohort of ``n`` nodules, no images.

    Returns one row per nodule: case_id, patient_id, label, subtype, diagnostic_basis, age
    (years), sex (F/M), ast, alt (U/L), platelets (x10^4/uL), albumin (g/dL), wbc (x10^3/uL),
    hemoglobin (g/dL), ggt, alp (U/L; nullable, a few missing). Nodules of one patient are
    adjacent. Deterministic by ``seed``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (one nodule per class), got {n}")
    rng = np.random.default_rng(seed)
    parts = []
    for label, m in class_counts(n).items():
        part = _class_table(label, m, rng)
        part.insert(0, "label", label)
        subtypes = apportion(m, SUBTYPE_COUNTS[label])
        part.insert(1, "subtype", rng.permutation(np.repeat(list(subtypes), list(subtypes.values()))))
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    df.insert(2, "diagnostic_basis", [DIAGNOSTIC_BASIS[rng.choice(3, p=_BASIS_P[s])] for s in df["subtype"]])

    patients = _pair_patients(df, rng)
    for first, *rest in (p for p in patients if len(p) > 1):
        for other in rest:
            if rng.random() < 0.6:  # same visit: one blood draw
                df.loc[other, ["age", *LABS[1:]]] = df.loc[first, ["age", *LABS[1:]]].to_numpy()
            else:
                df.loc[other, "age"] = min(df.loc[first, "age"] + 1, LAB_LIMITS["age"][1] - 1)
    order = [i for p in patients for i in p]
    pid = np.repeat(np.arange(1, len(patients) + 1), [len(p) for p in patients])
    df = df.iloc[order].reset_index(drop=True)
    width = max(4, len(str(n)))
    df.insert(0, "case_id", [f"C{i:0{width}d}" for i in range(1, n + 1)])
    df.insert(1, "patient_id", [f"P{i:0{width}d}" for i in pid])

    for var, k in MISSING_PER_PAPER_N.items():
        k = int(round(k * n / PAPER_N))
        df.loc[rng.choice(n, size=k, replace=False), var] = np.nan
    for var in ("age", "ast", "alt", "ggt", "alp"):
        df[var] = df[var].round().astype("Int64")
    cols = ["case_id", "patient_id", "label", "subtype", "diagnostic_basis", "age", "sex", *LABS[1:]]
    return df[cols]
