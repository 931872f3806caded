"""The external cohort's input checks before any prediction: the manifest validated as ``liver-mm predict``
validates it, with a label on every row (:func:`validate_external`), and no category an arm's model never saw in
training (:func:`refuse_unseen`). Each problem is a finding naming file, line, case and column."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import pandas as pd

from liver_mm.cohort.validate import ManifestValidationError, ValidationReport
from liver_mm.cohort.validate_report import Collector
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.io.codes import unmapped_codes
from liver_mm.io.dialect import TableOptions
from liver_mm.io.schema import LABELS
from liver_mm.study.external import recalibration as rc
from liver_mm.study.external.missing import check_filled, model_inputs
from liver_mm.study.external.source import StudySource

log = logging.getLogger(__name__)


def validate_external(manifest: str | Path, source: StudySource, units: Mapping[str, str] | None = None,
                      options: TableOptions | None = None, recal_column: str | None = None,
                      learned_missing: Collection[str] = (), allow_missing: bool = False) -> pd.DataFrame:
    """The external manifest as ``liver-mm predict`` validates it for the features every arm reads (filled, in
    range, images and boxes when an arm sees images), with a benign/malignant label on every row, both classes,
    and a ``recal_column`` of fit/eval cells when given. ``ManifestValidationError`` (file, line, case, column of
    every problem) before any model is loaded. An empty model input (an empty cell or one of the dictionary's
    missing tokens) is kept for the variables in ``learned_missing`` (:mod:`.missing`) when ``allow_missing``
    (the user's ``--allow-missing``), refused otherwise."""
    from liver_mm.serve.predict import validate_cases

    use_image = any(run.use_image for run in source.arms.values())
    report, df = validate_cases(manifest, units, model_inputs(source), use_image, allow_missing=True,
                                options=options)
    if df is not None:
        out = Collector(df, str(manifest))
        if all(f.code != "missing_column" for f in report.errors):
            check_filled(df, source, learned_missing, out, allow_missing)
        needs = {"label": "every case's outcome (benign/malignant)"}
        if recal_column:
            needs[recal_column] = "each row's recalibration part (fit/eval; --recal-column)"
        for col, what in needs.items():
            if col not in df.columns:
                out.add("error", "missing_column", f"column {col!r} is missing: external validation needs {what}",
                        column=col)
        if "label" in df.columns:
            for idx in df.index[df["label"].isna()]:
                out.add("error", "missing_value", "label is empty: every case needs its outcome", idx, "label")
            wrong, fix = unmapped_codes(df, "label", LABELS)
            for idx, v in wrong.items():
                out.add("error", "label_invalid", f"label {v!r} is not benign/malignant: {fix}", idx, "label")
            if wrong.empty and df["label"].notna().all() and df["label"].nunique() < 2:
                out.add("error", "one_class", "every case has one label: AUCs need benign and malignant cases",
                        column="label")
        if recal_column and recal_column in df.columns:
            cells = df[recal_column].astype("string").str.strip().str.lower()
            for idx in df.index[~cells.isin(rc.PARTS).fillna(False)]:
                out.add("error", "recal_part_invalid", f"{recal_column} is {df.at[idx, recal_column]!r}: fit (the "
                        "recalibration is fitted on the row) or eval (evaluated on it)", idx, recal_column)
        report.findings = [*report.findings, *out]
    if not report.ok or df is None:
        raise ManifestValidationError(report)
    for finding in report.warnings:
        log.warning("%s", finding)
    return df


def refuse_unseen(df: pd.DataFrame, preprocessors: Mapping[str, TabularPreprocessor], manifest: str | Path) -> None:
    """``ManifestValidationError`` when a categorical / ordinal / binary / multi cell of ``df`` holds a category an
    arm's model never saw in training (``preprocessors``: arm -> its fitted clinical preprocessing): one error per
    variable and value, naming the lines, the arms and the categories the model knows. Its prediction for such a
    case would rest on nothing learned, so the cohort is refused before any prediction."""
    out = Collector(df, str(manifest))
    found: dict[tuple[str, str], tuple[list[str], list[int], list[str]]] = {}
    for arm, prep in preprocessors.items():
        for f, values in prep.unseen_rows(df).items():
            for v, rows in values.items():
                found.setdefault((f, v), ([], rows, prep.seen(f)))[0].append(arm)
    for (f, v), (arms, rows, known) in found.items():
        idx = df.index[rows]
        out.add("error", "category_unseen",
                f"{f} = {v!r} ({out.where(idx)}): a category the model of arm(s) {', '.join(arms)} never saw in "
                f"training (it knows {', '.join(known)}): remove these cases, or retrain on a cohort that holds "
                f"{v!r}", idx[0], f)
    if out:
        raise ManifestValidationError(ValidationReport(str(manifest), list(out), len(df)))
