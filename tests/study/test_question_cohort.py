"""The report's question names no organ: a study of a user's own cohort (a breast-lesion table with its own
dictionary) is not asked about "liver nodules" (single split and cross-validated reports)."""

from __future__ import annotations

import pandas as pd

from liver_mm.study.cv.report import cv_answer_lines
from liver_mm.study.report.answer import answer_lines

ORDER = ["image", "plus_age"]


def test_single_split_question_names_no_organ() -> None:
    t3 = pd.DataFrame({"arm": ORDER, "description": ["image", "image + age"], "n_malignant": 45, "n_benign": 45,
                       "auc": [0.6, 0.7], "auc_ci_low": [0.5, 0.6], "auc_ci_high": [0.7, 0.8]})
    lines = answer_lines(t3, [], ORDER, alpha=0.05)
    assert lines[2] == ("**Question.** Does adding clinical data to the B-mode ultrasound image tell malignant from "
                        "benign nodules better? Models compared: image (image) → plus_age (image + age).")


def test_cv_question_names_no_organ() -> None:
    summary = pd.DataFrame({"arm": ORDER, "pooled_auc": [0.6, 0.7], "pooled_auc_ci_low": [0.5, 0.6],
                            "pooled_auc_ci_high": [0.7, 0.8]})
    lines = cv_answer_lines(summary, pd.DataFrame(), ORDER, k=5, r=1)
    assert lines[2] == ("**Question.** Does adding clinical data to the B-mode ultrasound image tell malignant from "
                        "benign nodules better, across 5-fold cross-validation repeated 1 time(s)? Models: "
                        "image → plus_age.")


def test_cv_answer_lists_the_steps_not_the_controls() -> None:
    """The answer's "each stepwise pair" are the adjacent pairs of the steps' Holm family: the last step vs a
    control and control vs control are comparisons (in the Comparisons section), not steps."""
    order = ["image", "plus_age", "tab_mlp", "tab_logreg"]
    summary = pd.DataFrame({"arm": order, "pooled_auc": [0.6, 0.7, 0.8, 0.9], "pooled_auc_ci_low": 0.5,
                            "pooled_auc_ci_high": 1.0})
    comp = pd.DataFrame({"a": ["image", "image", "image", "plus_age", "tab_mlp"],
                         "b": ["plus_age", "tab_mlp", "tab_logreg", "tab_mlp", "tab_logreg"],
                         "family": ["steps", "controls", "controls", "controls", "controls"],
                         "mean_auc_diff": [-0.1, -0.2, -0.3, -0.1, -0.1], "p_t_holm": 0.5, "p_delong_holm": 0.5})
    bullets = [ln for ln in cv_answer_lines(summary, comp, order, k=5, r=1) if ln.startswith("- ")]
    assert bullets == ["- image vs plus_age (mean ΔAUC -0.100): no difference shown (neither test, after Holm).",
                       "- Highest pooled out-of-fold AUC (repeat 0): tab_logreg, 0.900 (0.500–1.000)."]
