"""Where a person finds the study in the MLflow UI (``make ui``)."""

from __future__ import annotations

UI_URL = "http://127.0.0.1:5000"
#: the columns that make the runs table read like Table 3
TABLE3_COLUMNS = ("metrics.test_auc", "metrics.test_auc_ci_low", "metrics.test_auc_ci_high", "metrics.test_accuracy",
                  "metrics.test_sensitivity", "metrics.test_specificity")


def runs_link(exp_id: str, parent_id: str, base: str = UI_URL) -> str:
    """A direct link to the study's runs (the experiment's runs table) and to its parent run, with the
    columns to add in the UI's "Columns" menu."""
    return (f"MLflow UI (make ui): runs {base}/#/experiments/{exp_id}/runs  ·  "
            f"study parent run {base}/#/experiments/{exp_id}/runs/{parent_id}\n"
            f"In the runs table, expand the parent row and add the columns {', '.join(TABLE3_COLUMNS)}.")
