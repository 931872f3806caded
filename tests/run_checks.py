"""Checks of a finished training run that only the right numbers pass: its logged test AUC recomputed
from its logged predictions, and its test cases against the split it was trained on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score


def assert_run_reproduced(client: MlflowClient, run_id: str, split_csv: Path, tmp: Path) -> pd.DataFrame:
    """The run's ``test_auc`` equals scikit-learn's AUC of its logged ``predictions.csv`` test rows (to
    1e-12), and ``test_n_test`` and the test case ids are those of the split manifest's test part.
    Returns the logged predictions."""
    metrics = client.get_run(run_id).data.metrics
    tmp.mkdir(parents=True, exist_ok=True)
    pred = pd.read_csv(client.download_artifacts(run_id, "predictions.csv", str(tmp)), dtype={"case_id": str})
    test = pred[pred["split"] == "test"]
    assert set(test["label"]) == {"benign", "malignant"}
    auc = roc_auc_score((test["label"] == "malignant").to_numpy(dtype=int), test["prob"].to_numpy(dtype=float))
    assert abs(metrics["test_auc"] - auc) <= 1e-12, (metrics["test_auc"], auc)
    split = pd.read_csv(split_csv, dtype={"case_id": str})
    expected = split.loc[split["split"].str.strip().str.lower() == "test", "case_id"]
    assert metrics["test_n_test"] == len(expected) == len(test)
    assert sorted(test["case_id"]) == sorted(expected)
    assert metrics["test_n_malignant"] == (test["label"] == "malignant").sum()
    return pred


def the_split(cache_dir: Path) -> Path:
    """The one split manifest a run wrote under its cache folder."""
    (path,) = Path(cache_dir).glob("splits/*/manifest.csv")
    return path
