"""Where a person finds the study in the MLflow UI (``make ui``)."""

from __future__ import annotations

UI_URL = "http://127.0.0.1:5000"
#: the columns that make the runs table read like Table 3
TABLE3_COLUMNS = ("metrics.test_auc", "metrics.test_auc_ci_low", "metrics.test_auc_ci_high", "metrics.test_accuracy",
                  "metrics.test_sensitivity", "metrics.test_specificity")


def runs_link(exp_id: str, parent_id: str, base: str = UI_URL) -> str:
    """A direct link to the study's runs (the experiment's runs table) and to its parent run, with the
    columns to add in the UI's "Columns" menu."""
    where = "MLflow UI (make ui)" if base == UI_URL else "MLflow server"
    return (f"{where}: runs {base}/#/experiments/{exp_id}/runs  ·  "
            f"study parent run {base}/#/experiments/{exp_id}/runs/{parent_id}\n"
            f"In the runs table, expand the parent row and add the columns {', '.join(TABLE3_COLUMNS)}.")


def ui_base(uri: str) -> str:
    """The UI of a tracking server (``http(s)://`` URI: the server itself), else ``make ui``'s address."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_URL


def study_links(uri: str, base: str = UI_URL) -> list[str]:
    """One line per study parent run in the store at ``uri``: its name, status and direct link."""
    from mlflow.tracking import MlflowClient

    from liver_mm.tracking.store import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return []
    client = MlflowClient(uri)
    lines = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], "tags.is_study_parent = 'true'",
                                      order_by=["attributes.start_time DESC"]):
            lines.append(f"{run.data.tags.get('study', '?')} ({run.info.status}): "
                         f"{base}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}")
    return lines


def main() -> None:
    """Print where the studies of ``./mlflow.db`` (or $MLFLOW_TRACKING_URI) are in the UI."""
    from liver_mm.tracking.store import tracking_uri

    lines = study_links(tracking_uri())
    if lines:
        print("Studies (parent runs; their children are the arms):")
        print("\n".join(f"  {line}" for line in lines))
        print(f"In the runs table, expand a study's row and add the columns {', '.join(TABLE3_COLUMNS)}.")
    else:
        print("No study in this store yet: run `make demo` first.")


if __name__ == "__main__":
    main()
