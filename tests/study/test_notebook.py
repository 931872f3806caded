"""notebooks/compare_runs.ipynb runs against a fake study in a temporary MLflow store, and is stored clean."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from liver_mm.study.compare import compare_study, parent_metrics
from liver_mm.study.report.markdown import write_report
from liver_mm.study.report.tables import ARM_ORDER, fmt_auc, fmt_proportion
from liver_mm.training.evaluate import run_metrics as child_metrics
from tests.study.test_compare import make_predictions

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compare_runs.ipynb"
STUDY = "fake-study"
ORDER = list(ARM_ORDER)


def _log_metrics(client, run_id: str, metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()], synchronous=True)


def _fake_study(root: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """A parent + 7 child runs as `liver-mm study` logs them (plus a decoy run of another study)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("liver-mm", artifact_location=(root / "mlartifacts").as_uri())
    rng = np.random.default_rng(7)
    n = 90
    ids = [f"C{i:03d}" for i in range(n)]
    labels = np.where(rng.random(n) < 0.5, "malignant", "benign")
    splits = np.array(["train"] * 30 + ["dev"] * 30 + ["test"] * 30)
    preds = make_predictions(ids, labels, splits, seed=11)

    parent = client.create_run(exp, tags={"study": STUDY, "is_study_parent": "true"}, run_name=STUDY).info.run_id
    logged = {}
    for arm in ORDER:
        run = client.create_run(exp, run_name=arm, tags={"study": STUDY, "arm": arm, "modalities": f"{arm}_mods",
                                                         "mlflow.parentRunId": parent}).info.run_id
        out = root / "children" / arm
        out.mkdir(parents=True)
        preds[arm].to_csv(out / "predictions.csv", index=False)
        logged[arm] = child_metrics(preds[arm])
        _log_metrics(client, run, logged[arm])
        client.log_artifact(run, str(out / "predictions.csv"))
        client.set_terminated(run)
    comp = compare_study(preds, ORDER)
    report = write_report(root / "study", comp, preds, None, {"study": STUDY}, True, "liver-mm study (fake)")
    for name in ("report.md", "figure2_roc.png", "delong.json", "table3.csv"):
        client.log_artifact(parent, str(report.parent / name))
    _log_metrics(client, parent, parent_metrics(comp))
    client.set_terminated(parent)

    decoy = client.create_run(exp, tags={"study": "other-study", "arm": "m1"}).info.run_id
    _log_metrics(client, decoy, {"test_auc": 0.123456, "test_auc_ci_low": 0.1, "test_auc_ci_high": 0.2})
    client.set_terminated(decoy)
    return uri, logged


def _outputs(nb, kind: str) -> list[str]:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if kind in data:
                found.append(data[kind])
            elif kind == "text/plain" and out.get("output_type") == "stream":
                found.append(out["text"])
    return found


def test_notebook_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "TRACKING_URI" in params[0].source and "STUDY" in params[0].source
    assert "/".join(["..", "shared"]) not in NOTEBOOK.read_text()  # the notebook reads only MLflow


@pytest.mark.slow
def test_notebook_runs_on_a_fake_study(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    uri, logged = _fake_study(tmp_path)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f"TRACKING_URI = {uri!r}\nSTUDY = {STUDY!r}\n"
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    html = "\n".join(_outputs(nb, "text/html"))
    markdown = "\n".join(_outputs(nb, "text/markdown"))
    text = "\n".join(_outputs(nb, "text/plain"))
    assert "8 run(s) tagged study='fake-study'" in text  # the decoy of another study is not loaded
    assert "WARNING" not in text
    for arm in ORDER:
        m = logged[arm]
        row = next(ln for ln in markdown.splitlines() if ln.startswith(f"| {arm} |"))
        assert fmt_auc(m["test_auc"], m["test_auc_ci_low"], m["test_auc_ci_high"]) in row
        assert fmt_proportion(m["test_sensitivity"], m["test_sensitivity_ci_low"], m["test_sensitivity_ci_high"],
                              m["test_sensitivity_k"], m["test_sensitivity_n"]) in row
        assert f"{arm}_mods" in row
    order_in_table = [ln.split("|")[1].strip() for ln in markdown.splitlines() if ln.startswith("| ")][1:]
    assert order_in_table == ORDER
    assert "0.123" not in markdown
    assert "m1 vs m5" in html and "tab_mlp vs tab_logreg" in html  # the parent's DeLong table
    # parent's figure2_roc.png, the re-plotted ROC panels and the AUC-by-step plot
    assert len(_outputs(nb, "image/png")) == 3
    if os.environ.get("LIVER_MM_KEEP_NOTEBOOK"):  # to look at the executed notebook
        nbformat.write(nb, os.environ["LIVER_MM_KEEP_NOTEBOOK"])

    # the fake study is what a real one logs: the parent's metrics (MLflow-valid names) match the children's
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.study = '{STUDY}'")
    parent = runs[runs["tags.is_study_parent"] == "true"].iloc[0]
    for arm in ORDER:
        assert parent[f"metrics.test_auc_{arm}"] == pytest.approx(logged[arm]["test_auc"], rel=1e-12)
        assert parent[f"metrics.threshold_{arm}"] == pytest.approx(logged[arm]["threshold"], rel=1e-12)
