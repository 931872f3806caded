"""Items of TRIPOD+AI's Results section (20a, 20c, 21, 22, 23a) answered from a study's records
(:class:`~liver_mm.study.tripod.evidence.Evidence`); used by :mod:`liver_mm.study.tripod.answers`."""

from __future__ import annotations

from liver_mm.study.tripod.evidence import (
    ANSWERED,
    MODEL_SETTINGS,
    PARTLY,
    PARTS,
    Answer,
    Evidence,
    inputs_text,
    model_type,
    part_counts,
    sub,
)


def counts_answer(ev: Evidence) -> Answer:
    """Item 21: nodules and malignant cases in each part of each analysis."""
    c = part_counts(ev)
    per = []
    for analysis, g in c.groupby("analysis", sort=False):
        each = ", ".join(f"{r.part} {r.n} ({r.malignant} malignant)" for r in g.itertuples())
        per.append(each if ev.design == "split" else f"{analysis}: {each}")
    return (ANSWERED, "Nodules (events) per part: " + "; ".join(per) + ". Every arm uses the same parts.",
            ev.pointer("counts.csv" if ev.design == "split" else "cv_fold_sizes.csv"))


def outcome_by_part(ev: Evidence) -> Answer:
    """Item 20c: the outcome's share by part (predictor distributions are for the authors)."""
    if ev.design == "cv":
        return (PARTLY, "Every nodule is evaluated once per repeat; the outcome per fold is in item 21. For the "
                        "authors: predictor distributions by fold (not tabulated by liver-mm).", "cv_fold_sizes.csv")
    c = part_counts(ev)
    share = ", ".join(f"{r.part} {100 * r.malignant / r.n:.1f}%" for r in c.itertuples() if r.n)
    return (PARTLY, f"Malignant share by part: {share}. For the authors: predictor distributions of the test part "
                    "against the training part (not tabulated by liver-mm).", ev.pointer("counts.csv"))


def performance(ev: Evidence) -> Answer:
    """Item 23a: discrimination and calibration of every arm as the report prints them."""
    text = f"{ev.performance_note}. Discrimination: " + "; ".join(f"{a} {t}" for a, t in ev.discrimination.items())
    if ev.calibration:
        text += ". Calibration: " + "; ".join(f"{a} {t}" for a, t in ev.calibration.items())
        text += ". Clinical utility: decision curves (net benefit of every arm, treat-all, treat-none)"
    else:
        text += ". Calibration and decision curves: not computed in this report"
    files = ("table3.csv", "calibration.csv", "decision_curve.csv", "decision_curve.png", "calibration.png")
    return (PARTLY, text + ". For the authors: key subgroups (not computed by liver-mm).",
            ev.pointer(*(("cv_summary.csv", "cv_auc.csv") if ev.design == "cv" else files)))


def specification(ev: Evidence) -> Answer:
    """Item 22: each arm's inputs, model and MLflow run."""
    runs = sub(ev.provenance, "child_runs")
    arms = "; ".join(f"{a} ({inputs_text(ev, a)}): {model_type(ev, a)}"
                     + (f", MLflow run {runs[a]}" if a in runs else "") for a in ev.arms)
    where = "the fold runs nested under each arm's run" if ev.design == "cv" else "each arm's run"
    return (PARTLY, f"{arms}. The trained models are kept in {where} (MLflow, parent run "
                    f"{ev.provenance.get('parent_run_id', 'not recorded')}); every setting is in the model "
                    "settings table. For the authors: restrictions to access or re-use.", MODEL_SETTINGS)


def flow(ev: Evidence) -> Answer:
    """Item 20a: nodules, patients and events that entered the analysis."""
    assert ev.cohort is not None
    y = ev.y()
    n_pat = ev.cohort["patient_id"].nunique() if "patient_id" in ev.cohort.columns else "?"
    parts = f" (parts: {', '.join(PARTS)})" if ev.design == "split" else ""
    return (PARTLY, f"{len(y)} nodules of {n_pat} patients entered the analysis, {int(y.sum())} malignant and "
                    f"{int(len(y) - y.sum())} benign{parts}; none was excluded by liver-mm. For the authors: the "
                    "flow before the manifest (screened, excluded) and a diagram.",
            ev.pointer("counts.csv", "cv_fold_sizes.csv"))
