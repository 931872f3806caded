"""Where a person finds the study in the MLflow UI (``make ui``): one link per study to its Table 3.

The study's parent run carries ``table3.html`` (the answer and Table 3: each arm's test AUC with its CI,
accuracy, sensitivity and specificity side by side), which the UI's artifact viewer renders; the experiment is
marked as model training (MLflow 3's experiment kind tag) so the UI opens in that mode, not the GenAI one.
"""

from __future__ import annotations

from liver_mm.tracking.store import EXPERIMENT_KIND_TAG, MODEL_TRAINING

UI_URL = "http://127.0.0.1:5000"
#: the parent run's artifact the link opens (written by liver_mm.study.report.markdown)
TABLE3_PAGE = "table3.html"
#: the UI's own mode switch (GenAI / Model training) follows this URL parameter before the experiment's tag
WORKFLOW = "workflowType=machine_learning"


def mark_model_training(client, exp_id: str) -> None:
    """Tag the experiment as model training, unless it already carries an experiment kind."""
    exp = client.get_experiment(exp_id)
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
        client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def table3_url(exp_id: str, parent_id: str, base: str = UI_URL) -> str:
    """The UI page of the study's Table 3: the parent run's ``table3.html`` in the artifact viewer."""
    return f"{base}/#/experiments/{exp_id}/runs/{parent_id}/artifacts/{TABLE3_PAGE}?{WORKFLOW}"


def runs_link(exp_id: str, parent_id: str, base: str = UI_URL) -> str:
    """One line: where to open the study's Table 3 (every arm's test AUC, CI, accuracy, sensitivity,
    specificity) in the UI."""
    where = "MLflow UI (make ui)" if base == UI_URL else "MLflow server"
    return f"{where}, Table 3 of every arm: {table3_url(exp_id, parent_id, base)}"


def ui_base(uri: str) -> str:
    """The UI of a tracking server (``http(s)://`` URI: the server itself), else ``make ui``'s address."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_URL


def study_links(uri: str, base: str = UI_URL) -> list[str]:
    """One line per study parent run in the store at ``uri``: its name, status and Table 3 link; marks each
    experiment holding a study as model training (stores written before the tag was set)."""
    from mlflow.tracking import MlflowClient

    from liver_mm.tracking.store import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return []
    client = MlflowClient(uri)
    lines = []
    for exp in client.search_experiments():
        runs = client.search_runs([exp.experiment_id], "tags.is_study_parent = 'true'",
                                  order_by=["attributes.start_time DESC"])
        if runs:
            mark_model_training(client, exp.experiment_id)
        for run in runs:
            lines.append(f"{run.data.tags.get('study', '?')} ({run.info.status}): "
                         f"{table3_url(exp.experiment_id, run.info.run_id, base)}")
    return lines


def main() -> None:
    """Print where the studies of ``./mlflow.db`` (or $MLFLOW_TRACKING_URI) are in the UI."""
    from liver_mm.tracking.store import tracking_uri

    lines = study_links(tracking_uri())
    if lines:
        print("Studies: each link opens the study's Table 3 (every arm's test AUC, CI, accuracy, sensitivity, "
              "specificity) in the MLflow UI:")
        print("\n".join(f"  {line}" for line in lines))
    else:
        print("No study in this store yet: run `make demo` first.")


if __name__ == "__main__":
    main()
