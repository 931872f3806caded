"""`liver-mm study` end to end on a tiny cohort: killed after two arms, resumed, compared, reported,
browsed through the MLflow UI's REST API and the comparison notebook."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from liver_mm.cli import main

pytestmark = pytest.mark.slow  # one study of 7 arms, killed and resumed (minutes): make test-slow

ARMS = ["m1", "m2", "m3", "m4", "m5", "tab_mlp", "tab_logreg"]


def _overrides(root: Path, cohort: Path) -> list[str]:
    return [
        "data=manifest", f"data.manifest={cohort}", "image_size=32", "trainer.max_epochs=1",
        "loader.batch_size=16", "logger.log_model=false", "image_encoder=mobilenetv2_050",
        "study.name=tiny", f"study.out_dir={root / 'experiments' / 'tiny'}",
        f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"logger.artifact_root={root / 'mlartifacts'}",
        f"cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'multirun'}",
    ]




@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_cohort):
    """Run the study, interrupt it during the third arm (as Ctrl-C would), then rerun the same command."""
    import liver_mm.training.fit as fit

    root = tmp_path_factory.mktemp("study")
    overrides = _overrides(root, tiny_cohort)
    original = fit.fit_lightning
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed in the middle of the third child
        return original(*args, **kwargs)

    fit.fit_lightning = interrupted
    try:
        assert main(["study", *overrides]) == 130  # stopped as by Ctrl-C: one line, exit status 130
    finally:
        fit.fit_lightning = original
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    before = client.search_runs([exp.experiment_id], "tags.is_study_parent = 'false'")
    assert sorted((r.data.tags["arm"], r.info.status) for r in before) == [
        ("m1", "FINISHED"), ("m2", "FINISHED"), ("m3", "KILLED")]

    # resumed, but one arm fails: the others finish, the report names the missing arm, exit status 1
    def failing(cfg, *args, **kwargs):
        if cfg.study.arm == "tab_mlp":
            raise ValueError("simulated failure of one arm")
        return original(cfg, *args, **kwargs)

    fit.fit_lightning = failing
    try:
        with pytest.raises(SystemExit) as exc:
            main(["study", *overrides])
    finally:
        fit.fit_lightning = original
    assert exc.value.code == 1
    partial = (root / "experiments" / "tiny" / "report.md").read_text()
    assert "missing_arms" in partial and "tab_mlp" in partial
    assert client.search_runs([exp.experiment_id], "tags.is_study_parent = 'true'")[0].info.status == "FAILED"

    assert main(["study", *overrides]) == 0  # the same command completes the study
    return root, client, exp.experiment_id


def test_resume_ends_with_exactly_seven_children(study):
    _root, client, exp_id = study
    parents = client.search_runs([exp_id], "tags.is_study_parent = 'true'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(r.data.tags["arm"] for r in children) == sorted(ARMS)
    assert all(r.info.status == "FINISHED" for r in children)
    everything = client.search_runs([exp_id])
    assert len(everything) == 8  # the killed attempt was removed: no duplicate runs


def test_report_tables_and_delong_match_the_cli(study, tmp_path, capsys):
    root, client, exp_id = study
    out = root / "experiments" / "tiny"
    for name in ["report.md", "table3.csv", "table3.md", "delong.csv", "delong.json", "figure2_roc.png",
                 "table1.csv", "table2.csv", "icc.csv", "command.txt"]:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report and "not clinical evidence" in report
    # calibration, decision curves, each image arm's Grad-CAM montage and each lab arm's importance (issue 13)
    for name in ["calibration.csv", "calibration.png", "decision_curve.csv", "decision_curve.png", "importance.csv",
                 *(f"gradcam_{a}.png" for a in ARMS if a.startswith("m")),
                 *(f"importance_{a}.png" for a in ARMS if a != "m1")]:
        assert (out / name).is_file(), name
        assert f"]({name})" in report or name.endswith(".csv"), name
    assert "## Calibration and clinical usefulness" in report
    # the TRIPOD+AI section: every item once, the cohort's counts and each arm's run from this study
    assert report.count("## TRIPOD+AI checklist") == 1
    tripod = pd.read_csv(out / "tripod.csv", keep_default_na=False).set_index("item")
    assert len(tripod) == 52 and tripod.index.is_unique
    counts = pd.read_csv(out / "counts.csv").set_index("split")
    for part in ("train", "dev", "test"):
        n, m = counts.at[part, "total"], counts.at[part, "malignant"]
        assert f"{part} {n} ({m} malignant)" in tripod.at["21", "text"]
    assert tripod.at["5a", "text"].startswith("A SYNTHETIC cohort generated by liver-mm (data.kind manifest")
    runs = {r.data.tags["arm"]: r.info.run_id for r in client.search_runs([exp_id], "tags.is_study_parent = 'false'")}
    assert all(f"MLflow run {runs[a]}" in tripod.at["22", "text"] for a in ARMS)
    assert sorted(set(pd.read_csv(out / "importance.csv")["arm"])) == sorted(a for a in ARMS if a != "m1")
    table3 = pd.read_csv(out / "table3.csv")
    assert list(table3["arm"]) == ARMS
    # the DeLong JSON equals `liver-mm delong` on the children's test predictions
    children = client.search_runs([exp_id], "tags.is_study_parent = 'false'")
    preds = {}
    for run in children:
        path = client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path / run.data.tags["arm"]))
        df = pd.read_csv(path)
        preds[run.data.tags["arm"]] = df[df["split"] == "test"].set_index("case_id")
    wide = pd.DataFrame({"label": preds["m1"]["label"], **{a: preds[a]["prob"] for a in ARMS}}).sort_index()
    wide.index.name = "case_id"
    wide.reset_index().to_csv(tmp_path / "test.csv", index=False)
    capsys.readouterr()
    assert main(["delong", str(tmp_path / "test.csv"), "--label", "label", "--scores", ",".join(ARMS),
                 "--reference", "m1", "--family", "seed=m1,m2,m3,m4,m5", "--family", f"controls={','.join(ARMS)}",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "delong.json").read_text())
    parent = client.search_runs([exp_id], "tags.is_study_parent = 'true'")[0]
    assert "delong_p_m1_vs_m5" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report.md", "figure2_roc.png"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # starts the MLflow UI server (about 24 s)
def test_mlflow_ui_serves_the_study(study, tmp_path):
    root, _client, exp_id = study
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    # `make ui`'s command, on a free loopback port
    proc = subprocess.Popen(
        [str(mlflow_bin), "ui", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--default-artifact-root", str(root / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def search(filter_string: str) -> list[dict]:
        body = json.dumps({"experiment_ids": [exp_id], "filter": filter_string}).encode()
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp).get("runs", [])

    try:
        deadline = time.time() + 240  # a loaded machine starts it in minutes
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError("the MLflow UI did not start") from None
                time.sleep(0.5)
        parents = search("tags.is_study_parent = 'true'")
        assert len(parents) == 1
        parent_id = parents[0]["info"]["run_id"]
        children = search(f"tags.`mlflow.parentRunId` = '{parent_id}'")
        assert len(children) == 7
        _ui_link_shows_table3(root, exp_id, parent_id, base, tmp_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ui_link_shows_table3(root: Path, exp_id: str, parent_id: str, base: str, tmp_path: Path) -> None:
    """`make ui`'s printed link, opened in headless Chromium: the UI in model-training mode shows every arm's
    test AUC (Table 3) of the study."""
    from liver_mm.tracking.ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING, UI_URL
    from tests.browser import chromium

    printed = subprocess.run([sys.executable, "-m", "liver_mm.tracking.ui"], capture_output=True, text=True,
                             env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"},
                             check=True).stdout
    links = [w for w in printed.split() if w.startswith(UI_URL)]
    assert len(links) == 1 and f"/runs/{parent_id}/" in links[0], printed
    assert MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_experiment(exp_id).tags[EXPERIMENT_KIND_TAG] == \
        MODEL_TRAINING
    t3 = pd.read_csv(root / "experiments" / "tiny" / "table3.csv")
    with chromium(tmp_path / "profile") as driver:
        driver.get(links[0].replace(UI_URL, base))
        deadline = time.time() + 120
        while not driver.find_elements("css selector", "iframe") and time.time() < deadline:
            time.sleep(1)
        mode = driver.find_element("xpath", "//*[normalize-space(text())='Model training']")
        assert mode.is_displayed()
        driver.save_screenshot(str(tmp_path / "ui.png"))
        driver.switch_to.frame(driver.find_element("css selector", "iframe"))
        rows = {tr.find_elements("css selector", "td")[0].text: [td.text for td in tr.find_elements("css selector", "td")]
                for tr in driver.find_elements("css selector", "table tbody tr")}
    for arm, auc in zip(t3["arm"], t3["auc"], strict=True):
        assert any(cell.startswith(f"{auc:.3f} (") for cell in rows[arm]), (arm, rows.get(arm))


@pytest.mark.slow  # headless Chromium on the study's report.html
def test_report_html_and_case_gallery(study, tmp_path):
    """report.html of the real study: every figure and gallery picture loaded; each arm's gallery holds its
    surest errors, recomputed from predictions.csv at the frozen threshold."""
    from tests.browser import all_images_loaded, chromium

    root, *_ = study
    out = root / "experiments" / "tiny"
    gallery = pd.read_csv(out / "gallery.csv")
    pred = pd.read_csv(out / "predictions.csv")
    thresholds = pd.read_csv(out / "table3.csv").set_index("arm")["threshold"]
    for arm in ARMS:
        test = pred[(pred["arm"] == arm) & (pred["split"] == "test")]
        fn = test[(test["label"] == "malignant") & (test["prob"] < thresholds[arm])].sort_values("prob", kind="stable")
        fp = test[(test["label"] == "benign") & (test["prob"] >= thresholds[arm])].sort_values(
            "prob", ascending=False, kind="stable")
        mine = gallery[gallery["arm"] == arm]
        assert mine.loc[mine["kind"] == "false negative", "case_id"].tolist() == fn["case_id"].head(4).tolist(), arm
        assert mine.loc[mine["kind"] == "false positive", "case_id"].tolist() == fp["case_id"].head(4).tolist(), arm
    assert gallery["image"].notna().sum() == (gallery["arm"].str.startswith("m")).sum()  # the image arms' pictures
    with chromium(tmp_path / "profile") as driver:
        driver.get((out / "report.html").as_uri())
        widths = all_images_loaded(driver)
        driver.save_screenshot(str(tmp_path / "report.png"))
    assert len(widths) == (out / "report.md").read_text().count("![") and min(widths) > 0


def test_notebook_runs_on_the_real_study(study):
    import nbformat
    from nbclient import NotebookClient

    root, client, exp_id = study
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "compare_runs.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = f"TRACKING_URI = 'sqlite:///{root / 'mlflow.db'}'\nSTUDY = 'tiny'\n"
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3  # the parent's figure2_roc.png, the ROC re-plotted from predictions.csv, AUC by step
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    parent = client.search_runs([exp_id], "tags.is_study_parent = 'true'")[0].info.run_id
    assert f"parent run {parent} " in text and "1 parent run(s) in all" in text
    assert "8 run(s) tagged study='tiny'" in text
    assert "WARNING" not in text  # every arm's AUC from predictions.csv equals its logged test_auc
    tables = [o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
              if "text/plain" in o.get("data", {})]
    assert any(all(arm in t for arm in ARMS) and "auc" in t.lower() for t in tables)
