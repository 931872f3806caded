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
