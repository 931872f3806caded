"""Cross-validated comparison of a study's arms from their out-of-fold predictions (pandas + liver_mm.stats).

Inputs: ``oof``, one row per (arm, repeat, fold, test case) with columns case_id, patient_id, arm,
repeat, fold, label (benign/malignant), prob, threshold (the fold's dev-Youden threshold, frozen) and
optionally degenerate_threshold (True when that threshold separates nothing: +-inf, every case called one
class; without the column a non-finite threshold counts as degenerate);
``sizes``, one row per (repeat, fold) with n_test and n_outside_test (the cases outside the test fold:
the fold model's training and dev parts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from liver_mm.stats import (
    THRESHOLD_METRICS,
    auc_ci,
    compare_fold_aucs,
    comparison_families,
    comparison_pairs,
    delong_test,
    encode_labels,
    holm_by_family,
    wilson_ci,
)

OOF_COLUMNS = ("case_id", "patient_id", "arm", "repeat", "fold", "label", "prob")
COMPARISON_COLUMNS = ("a", "b", "family", "n_folds", "mean_auc_diff", "sd_auc_diff", "t", "df", "size_ratio", "p_t",
                      "p_t_holm", "pooled_auc_a", "pooled_auc_b", "pooled_diff", "pooled_diff_ci_low",
                      "pooled_diff_ci_high", "z_delong", "p_delong", "p_delong_holm")


def degenerate(part: pd.DataFrame) -> np.ndarray:
    """(n,) bool: the row's fold threshold is degenerate (column ``degenerate_threshold``, else non-finite)."""
    if "degenerate_threshold" in part.columns:
        return part["degenerate_threshold"].to_numpy(dtype=bool)
    return ~np.isfinite(part["threshold"].to_numpy(dtype=float))


def check_oof_coverage(oof: pd.DataFrame, case_ids: Sequence[str], arms: Sequence[str], repeats: int) -> None:
    """Every case of the cohort exactly once per (arm, repeat): ValueError naming the arm, repeat and the first
    duplicated, missing or foreign cases (a duplicated case would count twice in every pooled number)."""
    cohort = pd.Index([str(c) for c in case_ids])
    for arm in arms:
        for rep in range(repeats):
            part = oof[(oof["arm"] == arm) & (oof["repeat"] == rep)]
            ids = part["case_id"].astype(str)
            counts = ids.value_counts()
            dup = sorted(counts.index[counts > 1])
            missing, foreign = sorted(cohort.difference(ids)), sorted(pd.Index(ids).difference(cohort))
            problems = []
            if dup:
                c = dup[0]
                folds = sorted(int(f) for f in part.loc[ids == c, "fold"])
                problems.append(f"{len(dup)} case(s) predicted more than once, e.g. {c} in folds {folds}")
            if missing:
                problems.append(f"{len(missing)} case(s) of the cohort never predicted, e.g. {', '.join(missing[:3])}")
            if foreign:
                problems.append(f"{len(foreign)} case(s) not in the cohort, e.g. {', '.join(foreign[:3])}")
            if problems:
                raise ValueError(f"out-of-fold predictions of arm {arm}, repeat {rep} do not hold each of the "
                                 f"{len(cohort)} cases exactly once: {'; '.join(problems)}")


def cv_auc_table(oof: pd.DataFrame) -> pd.DataFrame:
    """arm, repeat, fold, n_test, auc, degenerate_threshold: the test AUC of every fold model, and whether its
    frozen dev-Youden threshold was degenerate."""
    rows = []
    for (arm, rep, fold), part in oof.groupby(["arm", "repeat", "fold"], sort=False):
        y = encode_labels(part["label"].to_numpy(dtype=object))
        rows.append({"arm": arm, "repeat": int(rep), "fold": int(fold), "n_test": len(part),
                     "auc": auc_ci(y, part["prob"].to_numpy(dtype=float)).auc,
                     "degenerate_threshold": bool(degenerate(part).any())})
    return pd.DataFrame(rows, columns=["arm", "repeat", "fold", "n_test", "auc", "degenerate_threshold"])


def _pooled(oof: pd.DataFrame, arm: str, repeat: int = 0) -> pd.DataFrame:
    part = oof[(oof["arm"] == arm) & (oof["repeat"] == repeat)]
    return part.sort_values("case_id", kind="stable").reset_index(drop=True)


def _proportion(k: int, n: int) -> tuple[float, float, float]:
    lo, hi = wilson_ci(k, n) if n else (math.nan, math.nan)
    return (k / n if n else math.nan), lo, hi


#: the figures beside the headline: ``accuracy_without_degenerate``, ``..._k``, ``..._n``, ``..._ci_low``, ...
WITHOUT_DEGENERATE = "_without_degenerate"


def _called_counts(y: np.ndarray, called: np.ndarray) -> dict[str, tuple[int, int]]:
    return dict(zip(THRESHOLD_METRICS, ((int((called == (y == 1)).sum()), len(y)),  # accuracy
                                        (int((called & (y == 1)).sum()), int((y == 1).sum())),  # sensitivity
                                        (int((~called & (y == 0)).sum()), int((y == 0).sum()))),  # specificity
                    strict=True))


def pooled_metrics(part: pd.DataFrame) -> dict[str, float]:
    """AUC (DeLong CI) of pooled out-of-fold predictions, and accuracy / sensitivity / specificity (k/n, Wilson
    CIs) with every case called at its own fold's frozen threshold as the fold model calls it
    (``prob >= threshold``), a degenerate one included (-inf: every case malignant; +inf: every case benign):
    the headline holds every case. Beside it, ``<metric>_without_degenerate`` (with ``_k``, ``_n``, CIs) leaves
    out the folds whose threshold is degenerate; ``left_out_folds`` / ``left_out_cases`` count them."""
    y = encode_labels(part["label"].to_numpy(dtype=object))
    p = part["prob"].to_numpy(dtype=float)
    thr = part["threshold"].to_numpy(dtype=float)
    if np.isnan(thr).any():
        row = part[np.isnan(thr)].iloc[0]
        raise ValueError(f"arm {row['arm']}, repeat {row['repeat']}, fold {row['fold']}: no threshold (NaN): "
                         "its cases cannot be called")
    called = p >= thr
    bad = degenerate(part)
    auc = auc_ci(y, p)
    out: dict[str, float] = {"n": len(y), "pooled_auc": auc.auc, "pooled_auc_ci_low": auc.ci_low,
                             "pooled_auc_ci_high": auc.ci_high,
                             "left_out_folds": int(part.loc[bad, "fold"].nunique()), "left_out_cases": int(bad.sum())}
    for suffix, keep in (("", slice(None)), (WITHOUT_DEGENERATE, ~bad)):
        for name, (k, n) in _called_counts(y[keep], called[keep]).items():
            value, lo, hi = _proportion(k, n)
            key = f"{name}{suffix}"
            out.update({key: value, f"{key}_k": k, f"{key}_n": n, f"{key}_ci_low": lo, f"{key}_ci_high": hi})
    return out


def cv_summary(oof: pd.DataFrame, cv_auc: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Per arm: folds, fold models with a degenerate threshold (all repeats), mean and SD (ddof=1) of the fold
    AUCs, and :func:`pooled_metrics` of repeat 0."""
    rows = []
    for arm in order:
        mine = cv_auc[cv_auc["arm"] == arm]
        aucs = mine["auc"].to_numpy(dtype=float)
        rows.append({"arm": arm, "n_folds": aucs.size,
                     "degenerate_folds": int(mine["degenerate_threshold"].to_numpy(dtype=bool).sum()),
                     "auc_mean": float(aucs.mean()),
                     "auc_sd": float(aucs.std(ddof=1)) if aucs.size > 1 else math.nan,
                     **pooled_metrics(_pooled(oof, arm))})
    return pd.DataFrame(rows)


def _aligned_aucs(cv_auc: pd.DataFrame, sizes: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    wide = cv_auc.pivot_table(index=["repeat", "fold"], columns="arm", values="auc")[[a, b]]
    return wide.join(sizes.set_index(["repeat", "fold"])[["n_outside_test", "n_test"]], how="inner")


def cv_comparisons(oof: pd.DataFrame, cv_auc: pd.DataFrame, sizes: pd.DataFrame, order: Sequence[str],
                   reference: str, families: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Each arm vs the reference and each adjacent pair: mean AUC difference over folds with the
    Nadeau-Bengio corrected resampled t-test (df = K*R - 1), and the paired DeLong test on repeat 0's
    pooled out-of-fold predictions (the pooled difference a - b with its DeLong 95% CI); Holm-adjusted within each family, for each test separately. One arm:
    nothing to compare, an empty table with these columns."""
    pairs = comparison_pairs(list(order), reference)
    fams = comparison_families(pairs, families)
    rows = []
    for (a, b), fam in zip(pairs, fams, strict=True):
        al = _aligned_aucs(cv_auc, sizes, a, b)
        t = compare_fold_aucs(al[a], al[b], al["n_test"], al["n_outside_test"])
        pa, pb = _pooled(oof, a), _pooled(oof, b)
        if not pa["case_id"].equals(pb["case_id"]):
            raise ValueError(f"arms {a} and {b} have not predicted the same out-of-fold cases in repeat 0")
        d = delong_test(encode_labels(pa["label"].to_numpy(dtype=object)), pa["prob"].to_numpy(dtype=float),
                        pb["prob"].to_numpy(dtype=float))
        rows.append({"a": a, "b": b, "family": fam, "n_folds": t.n_folds, "mean_auc_diff": t.mean_diff,
                     "sd_auc_diff": t.sd_diff, "t": t.t, "df": t.df, "size_ratio": t.ratio, "p_t": t.p_value,
                     "pooled_auc_a": d.auc_a, "pooled_auc_b": d.auc_b, "pooled_diff": d.diff,
                     "pooled_diff_ci_low": d.diff_ci_low, "pooled_diff_ci_high": d.diff_ci_high, "z_delong": d.z,
                     "p_delong": d.p_value})
    out = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if not c.endswith("_holm")])
    out["p_t_holm"] = holm_by_family(out["p_t"].to_numpy(dtype=float), fams)
    out["p_delong_holm"] = holm_by_family(out["p_delong"].to_numpy(dtype=float), fams)
    return out[list(COMPARISON_COLUMNS)]


def cv_parent_metrics(summary: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, float]:
    """``cv_auc_mean_<arm>``, ``cv_auc_sd_<arm>``, ``cv_pooled_auc_<arm>``, ``cv_degenerate_folds_<arm>``,
    ``cv_p_<a>_vs_<b>`` (corrected t-test) and ``cv_p_holm_<a>_vs_<b>``; finite values only."""
    out: dict[str, float] = {}
    for r in summary.to_dict("records"):
        out[f"cv_degenerate_folds_{r['arm']}"] = r["degenerate_folds"]
        out[f"cv_auc_mean_{r['arm']}"] = r["auc_mean"]
        out[f"cv_auc_sd_{r['arm']}"] = r["auc_sd"]
        out[f"cv_pooled_auc_{r['arm']}"] = r["pooled_auc"]
    for r in comparisons.to_dict("records"):
        out[f"cv_p_{r['a']}_vs_{r['b']}"] = r["p_t"]
        out[f"cv_p_holm_{r['a']}_vs_{r['b']}"] = r["p_t_holm"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(float(v))}
