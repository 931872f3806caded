"""explain_run: which files for which network, the cases drawn, the overlay file names."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from liver_mm.explain import explain_run, select_cases
from liver_mm.explain.network import probabilities
from liver_mm.explain.overlays import case_title, safe_names
from tests.explain.conftest import fusion_net

GROUPS = {"age": [0], "sex": [1], "ast": [2, 3]}  # ast with its missing-indicator


def test_select_cases_most_confident_correct_and_wrong():
    prob = np.array([0.9, 0.6, 0.2, 0.45, 0.95, 0.1, 0.7])
    y = np.array([1, 0, 0, 1, 0, 1, 1])
    # called (thr 0.5): 1 1 0 0 1 0 1 -> correct: 0, 2, 6; wrong: 1, 3, 4, 5
    sel = select_cases(prob, y, threshold=0.5, n_cases=4)
    assert sel["index"].tolist() == [4, 5, 0, 2] and sel["group"].tolist() == ["wrong", "wrong", "correct", "correct"]
    assert sel["confidence"].tolist() == [0.95, 0.9, 0.9, 0.8]
    no_wrong = select_cases(prob, np.array([1, 1, 0, 0, 1, 0, 1]), threshold=0.5, n_cases=4)  # all correct
    assert no_wrong["index"].tolist() == [4, 0, 5, 2] and set(no_wrong["group"]) == {"correct"}  # ties: stable
    unlabelled = select_cases(prob, None, threshold=0.5, n_cases=3)  # malignant calls 4, 0, 6, 1; benign 5, 2, 3
    assert unlabelled["index"].tolist() == [4, 5, 2]
    assert unlabelled["group"].tolist() == ["called malignant", "called benign", "called benign"]


def test_safe_names_never_collide():
    assert safe_names(["a/b", "a_b", "A_B", "..x", "ok-1"]) == ["a_b", "a_b-2", "A_B-3", "x", "ok-1"]
    assert case_title("c1", 0.834, "malignant", 0.5) == "c1: p=0.83 -> malignant (label malignant)"
    assert case_title("c2", 0.2, None, 0.3) == "c2: p=0.20 -> benign"


def _inputs(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(4)
    tab = rng.normal(size=(12, 4)).astype(np.float32)
    tab[:, 3] = (rng.uniform(size=12) < 0.2).astype(np.float32)
    return tab, np.array([0, 1] * 6), [f"case/{i}" for i in range(12)]


def test_fused_model_gets_everything(crops, tmp_path):
    net = fusion_net(n_tabular=4)
    tab, y, ids = _inputs(crops)
    thr = float(np.median(probabilities(net, crops, tab)))
    written = explain_run(net, crops, tab, GROUPS, y, ids, tmp_path, threshold=thr, n_cases=6, n_repeats=3,
                          title="m5 [synthetic]: ")
    assert set(written) == {"overlays", "gradcam_montage.png", "gradcam_cases.csv", "importance.csv",
                            "importance.png"}
    cases = pd.read_csv(tmp_path / "gradcam_cases.csv")
    assert len(cases) == 6 and sorted(p.name for p in (tmp_path / "overlays").iterdir()) == sorted(
        f"{c.replace('/', '_')}.png" for c in cases["case_id"])
    wrong = cases[cases["group"] == "wrong"]
    assert (wrong["called"] != wrong["label"]).all() and (cases.loc[cases["group"] == "correct", "called"]
                                                          == cases.loc[cases["group"] == "correct", "label"]).all()
    imp = pd.read_csv(tmp_path / "importance.csv")
    assert imp["feature"].tolist() == ["age", "sex", "ast"] and (imp["n_repeats"] == 3).all()
    for name in ("gradcam_montage.png", "importance.png", cases["overlay"].iloc[0]):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size[0] > 300


def test_image_only_and_tabular_only_models(crops, tmp_path):
    tab, y, ids = _inputs(crops)
    m1 = explain_run(fusion_net(n_tabular=0), crops, None, {}, y, ids, tmp_path / "m1", n_cases=2)
    assert set(m1) == {"overlays", "gradcam_montage.png", "gradcam_cases.csv"}
    tab_only = explain_run(fusion_net(n_tabular=4, image=False), None, tab, GROUPS, y, ids, tmp_path / "tab",
                           n_repeats=2)
    assert set(tab_only) == {"importance.csv", "importance.png"}
    unlabelled = explain_run(fusion_net(n_tabular=4), crops, tab, GROUPS, None, ids, tmp_path / "nolab", n_cases=2)
    assert "importance.csv" not in unlabelled and pd.read_csv(unlabelled["gradcam_cases.csv"])["label"].isna().all()
