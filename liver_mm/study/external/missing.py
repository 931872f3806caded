"""Empty model inputs of the external cohort: kept where the study's models learned to take them missing.

An input that was missing in some of a model's training rows got a missing indicator and an imputation fitted on
the training rows, and the study's own test cases without it were scored that way: the same holds for external
cases (the report counts them per variable). Any other empty input is refused: its model never had it missing,
so its prediction would rest on an imputation the study never validated (a clinical score takes none).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import pandas as pd

from liver_mm.cohort.validate_report import Collector
from liver_mm.study.external.source import StudySource

log = logging.getLogger(__name__)


def model_inputs(source: StudySource) -> list[str]:
    """Every variable any arm reads, in arm order."""
    return list(dict.fromkeys(f for run in source.arms.values() for f in run.features))


def blank_cells(df: pd.DataFrame, features: list[str]) -> dict[str, pd.Index]:
    """Variable -> the rows whose cell is empty (an empty cell or a missing token; not a non-numeric one)."""
    from liver_mm.serve.predict import imputed_features

    blank = imputed_features(df, features).str.split(";")
    return {f: df.index[blank.apply(lambda cells, f=f: f in cells).to_numpy()] for f in features}


def check_filled(df: pd.DataFrame, source: StudySource, learned: Collection[str], out: Collector,
                 allow_missing: bool = False) -> None:
    """A ``missing_value`` error per empty cell of an input some arm never learned to take missing (once per
    column when it is empty on every row), naming those arms."""
    for f, rows in blank_cells(df, [f for f in model_inputs(source) if f not in learned or not allow_missing]).items():
        if rows.empty:
            continue
        arms = [a for a, r in source.arms.items() if f in r.features]
        if f in learned:  # the models can take it missing, but only the user may ask for the imputation
            why = (f"the models of arm(s) {', '.join(arms)} had {f} missing in training too: fill it in, or pass "
                   "--allow-missing to impute it as for their training rows (the report counts those cases)")
        else:
            why = (f"arm(s) {', '.join(arms)} never had {f} missing in training (a clinical score takes no missing "
                   "input), so a prediction without it would rest on an imputation the study never validated: "
                   "fill it in")
        if len(rows) == len(df) > 1:
            out.add("error", "missing_value", f"{f} is empty on every row ({out.where(rows)}): {why}", column=f)
            continue
        for idx in rows:
            out.add("error", "missing_value", f"{f} is empty: {why}", idx, f)


def imputed_counts(df: pd.DataFrame, source: StudySource) -> dict[str, int]:
    """Model input -> its number of empty cases (each imputed by the models as in training); logged, no case id."""
    counts = {f: len(rows) for f, rows in blank_cells(df, model_inputs(source)).items() if len(rows)}
    for f, n in counts.items():
        log.warning("%s is empty for %d of %d external case(s): imputed by each model as in its training rows, "
                    "where it was missing too", f, n, len(df))
    return counts


def imputed_notice(counts: Mapping[str, int]) -> list[str]:
    """The report's line on the empty model inputs (none: no line)."""
    if not counts:
        return []
    what = ", ".join(f"{f} {n} case(s)" for f, n in counts.items())
    return [f"Missing model inputs, imputed by each model as for its training rows (where they were missing too): "
            f"{what}.", ""]
