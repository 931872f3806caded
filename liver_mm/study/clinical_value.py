"""Beyond the AUC, per study arm: calibration, decision curves, Grad-CAM montages, lab importance, score cut-offs.

Calibration and decision curves are computed here from the arms' test predictions (the numbers each child
run logged as ``test_brier`` / ``test_cal_intercept`` / ``test_cal_slope``); the Grad-CAM montages, the lab
importance tables and the clinical scores' published cut-offs are what the child runs wrote, gathered.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.stats import calibration_metrics, decision_curves, markdown_table, reliability_curve
from liver_mm.study.compare import StudyComparison
from liver_mm.study.report.tables import fmt_number, fmt_proportion

log = logging.getLogger(__name__)
CALIBRATION_COLUMNS = ("arm", "n_test", "brier", "cal_intercept", "cal_slope")


def calibration_table(comparison: StudyComparison) -> pd.DataFrame:
    """One row per arm: n_test, Brier score, calibration intercept (in the large) and slope on the test split."""
    y = comparison.y_test
    rows = [{"arm": a, "n_test": int(y.size), **calibration_metrics(y, comparison.prob(a))} for a in comparison.order]
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


def format_calibration(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"Model": table["arm"], "Brier score": table["brier"].map(fmt_number),
                         "Calibration intercept": table["cal_intercept"].map(lambda v: fmt_number(v, 2)),
                         "Calibration slope": table["cal_slope"].map(lambda v: fmt_number(v, 2))})


def decision_table(comparison: StudyComparison) -> pd.DataFrame:
    """Net benefit of every arm over thresholds 0.01-0.99: arm, threshold, net_benefit, treat_all."""
    curves = decision_curves(comparison.y_test, {a: comparison.prob(a) for a in comparison.order})
    return curves[["arm", "threshold", "net_benefit", "treat_all"]]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


def write_calibration_and_dca(comparison: StudyComparison, out: Path, synthetic: bool,
                              where: str = "the test split") -> dict[str, object]:
    """calibration.csv/.md, calibration.png (LOESS reliability curves over a histogram), decision_curve.csv and
    decision_curve.png in ``out``; returns the tables by name. ``where``: the cases, as the figure titles name
    them."""
    from liver_mm.figures import decision_curve_figure, reliability_figure

    tag = "SYNTHETIC: " if synthetic else ""
    cal = calibration_table(comparison)
    cal.to_csv(out / "calibration.csv", index=False)
    (out / "calibration.md").write_text(markdown_table(format_calibration(cal)), encoding="utf-8")
    y = comparison.y_test
    curves = {a: (comparison.prob(a), reliability_curve(y, comparison.prob(a)))
              for a in comparison.order if np.ptp(comparison.prob(a)) > 0}
    if curves:
        _save(reliability_figure(curves, f"{tag}calibration on {where} (n={y.size})"), out / "calibration.png")
    dca = decision_table(comparison)
    dca.to_csv(out / "decision_curve.csv", index=False)
    per_arm = {a: g.reset_index(drop=True) for a, g in dca.groupby("arm", sort=False)}
    _save(decision_curve_figure(per_arm, f"{tag}decision curves on {where} (n={y.size})"),
          out / "decision_curve.png")
    return {"calibration": cal, "decision_curve": dca}


def _download(client, run_id: str, path: str, dst: Path) -> Path | None:
    """A child's artifact into ``dst`` (a folder), or None when the run has none at ``path``."""
    parent = str(Path(path).parent) if "/" in path else None
    names = {f.path for f in client.list_artifacts(run_id, parent)}
    if path not in names:
        return None
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst)))


def _copy_figure(client, run_id: str, path: str, tmp: Path, dest: Path) -> bool:
    """Copy a child's artifact ``path`` to ``dest`` (through ``tmp``); False when the run has none."""
    src = _download(client, run_id, path, tmp)
    if src is None:
        return False
    shutil.copyfile(src, dest)
    return True


def gather_child_outputs(client, runs: Mapping[str, object], out: Path, tmp: Path) -> dict[str, object]:
    """From each arm's child run: ``gradcam_<arm>.png`` (image arms), ``importance.csv`` (long: arm, feature,
    auc_drop_mean, auc_drop_sd, n_repeats) with ``importance_<arm>.png``, and ``score_cutoffs.csv`` (clinical
    score arms at their published cut-offs) and the case gallery (:func:`~liver_mm.study.report.gallery.gather_gallery`).
    Returns what was found by kind."""
    montages: dict[str, str] = {}
    importance, cutoffs, figures = [], [], {}
    for arm, run in runs.items():
        rid = run.info.run_id  # type: ignore[attr-defined]
        where = tmp / f"child-{arm}"
        if _copy_figure(client, rid, "explain/gradcam_montage.png", where, out / f"gradcam_{arm}.png"):
            montages[arm] = f"gradcam_{arm}.png"
        src = _download(client, rid, "explain/importance.csv", where)
        if src is not None:
            importance.append(pd.read_csv(src).assign(arm=arm))
            if _copy_figure(client, rid, "explain/importance.png", where, out / f"importance_{arm}.png"):
                figures[arm] = f"importance_{arm}.png"
        src = _download(client, rid, "cutoffs.csv", where)
        if src is not None:
            cutoffs.append(pd.read_csv(src).assign(arm=arm))
    from liver_mm.study.report.gallery import gather_gallery

    found: dict[str, object] = {"montages": montages, "importance_figures": figures,
                                "gallery": gather_gallery(client, runs, out, tmp)}
    for key, frames, name in (("importance", importance, "importance.csv"), ("cutoffs", cutoffs, "score_cutoffs.csv")):
        if frames:
            table = pd.concat(frames, ignore_index=True)
            found[key] = table[["arm", *[c for c in table.columns if c != "arm"]]]
            found[key].to_csv(out / name, index=False)  # type: ignore[union-attr]
    return found


def format_importance(table: pd.DataFrame) -> pd.DataFrame:
    """Wide text table: one row per lab, one column per arm, ``mean ± SD`` of the drop in test AUC."""
    cell = table.assign(text=[f"{m:.3f} ± {s:.3f}" for m, s in zip(table["auc_drop_mean"], table["auc_drop_sd"],
                                                                     strict=True)])
    wide = cell.pivot(index="feature", columns="arm", values="text")
    wide = wide.reindex(index=list(dict.fromkeys(table["feature"])), columns=list(dict.fromkeys(table["arm"])))
    return wide.fillna("–").reset_index().rename(columns={"feature": "Lab"})


def format_cutoffs(table: pd.DataFrame) -> pd.DataFrame:
    """The clinical scores' operating points at their published cut-offs (test split), as text."""
    rows = []
    for r in table.to_dict("records"):
        rows.append({"Model": r["arm"], "Cut-off": fmt_number(r["cutoff"], 2),
                     **{f"{m.capitalize()} (n/N; 95% CI)": fmt_proportion(
                         r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], r.get(f"{m}_k"), r.get(f"{m}_n"))
                        for m in ("sensitivity", "specificity")}})
    return pd.DataFrame(rows)


def clinical_value_section(tables: Mapping[str, object], youden_scores: Mapping[str, float],
                           where: str = "test split") -> list[str]:
    """report.md lines: calibration, decision curves, Grad-CAM, lab importance, score cut-offs (``where``: the
    cases, in the heading)."""
    lines = [f"## Calibration and clinical usefulness ({where})", "",
             "Brier score (0 is perfect); calibration intercept (calibration-in-the-large: logistic fit with the "
             "model's logit as offset; 0 is ideal, < 0 over-predicts malignancy); calibration slope (logistic "
             "recalibration of the logit, rms::val.prob's Slope; 1 is ideal, < 1 too extreme).", "",
             markdown_table(format_calibration(tables["calibration"])),  # type: ignore[arg-type]
             "Decision curves (Vickers & Elkin 2006): net benefit = TP/n − FP/n · pt/(1 − pt) of biopsying the "
             "nodules whose predicted probability is at least the threshold pt, against biopsying all and none; "
             "values in [decision_curve.csv](decision_curve.csv).", "",
             "![Decision curves](decision_curve.png)", "", "![Calibration](calibration.png)", ""]
    montages = tables.get("montages") or {}
    if montages:
        lines += ["### Where the CNN looks (Grad-CAM)", "",
                  "Grad-CAM of the image branch's last convolution on the most confident correct and the most "
                  "confident wrong test cases of each image model (map of the called class).", ""]
        for arm, name in montages.items():  # type: ignore[union-attr]
            lines += [f"![Grad-CAM {arm}]({name})", ""]
    imp = tables.get("importance")
    if imp is not None:
        lines += ["### Lab importance", "",
                  "Drop in test AUC when a lab (with its missing/censored indicators) is permuted across the test "
                  "cases, mean ± SD over repeats; 0 means the model does not use it.", "",
                  markdown_table(format_importance(imp)), ""]  # type: ignore[arg-type]
        for arm, name in (tables.get("importance_figures") or {}).items():  # type: ignore[union-attr]
            lines += [f"![Lab importance {arm}]({name})", ""]
    cut = tables.get("cutoffs")
    if cut is not None:
        lines += ["### Clinical scores at their published cut-offs", "",
                  "Malignant when the score is at least the cut-off (test split); Table 3 uses each score's own "
                  "dev-Youden threshold"
                  + (" (" + ", ".join(f"{a} {v:.2f}" for a, v in youden_scores.items() if math.isfinite(v)) + ")"
                     if youden_scores else "") + ".", "",
                  markdown_table(format_cutoffs(cut)), ""]  # type: ignore[arg-type]
    return lines
