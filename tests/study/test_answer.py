"""The report's opening answer: one sentence per stepwise pair that adds inputs, computed from the tables."""

from __future__ import annotations

import pandas as pd

from liver_mm.study.report.answer import added_inputs, answer_lines

ORDER = ["m1", "m2", "m3", "tab"]
TABLE3 = pd.DataFrame({
    "arm": ORDER,
    "description": ["image", "image + age, sex", "image + age, sex, AST, ALT", "clinical (m3 features), MLP, no image"],
    "n_malignant": 54, "n_benign": 54,
    "auc": [0.7548, 0.7791, 0.9342, 0.90], "auc_ci_low": [0.66, 0.69, 0.8903, 0.8], "auc_ci_high": [0.85, 0.87, 0.978, 0.95],
})
COMPARISONS = [
    {"a": "m1", "b": "m2", "auc_a": 0.7548, "auc_b": 0.7791, "p_holm": 0.7235},
    {"a": "m1", "b": "m3", "auc_a": 0.7548, "auc_b": 0.9342, "p_holm": 0.0002},  # not adjacent: no sentence
    {"a": "m2", "b": "m3", "auc_a": 0.7791, "auc_b": 0.9342, "p_holm": 0.00016},
    {"a": "m3", "b": "tab", "auc_a": 0.9342, "auc_b": 0.90, "p_holm": 0.04},  # tab does not add to m3
]


def test_added_inputs():
    assert added_inputs("image + age, sex", "image + age, sex, AST, ALT") == ["AST", "ALT"]
    assert added_inputs("image + age, sex", "image + age, sex") is None
    assert added_inputs("image + age, sex", "clinical (m5 features), MLP, no image") is None


def test_answer_names_each_step_with_its_aucs_and_holm_p():
    lines = answer_lines(TABLE3, COMPARISONS, ORDER, alpha=0.05)
    assert lines[0] == "## Question and answer"
    bullets = [ln for ln in lines if ln.startswith("- ")]
    assert bullets == [
        "- Adding age, sex (m1 → m2) raised the test AUC from 0.75 to 0.78, DeLong p = 0.724 (Holm): "
        "no difference shown.",
        "- Adding AST, ALT (m2 → m3) raised the test AUC from 0.78 to 0.93, DeLong p < 0.001 (Holm).",
        "- Highest test AUC: m3 (image + age, sex, AST, ALT), 0.934 (0.890–0.978).",
    ]
    assert "(test split: 54 malignant / 54 benign nodules; AUC with DeLong 95% CI in Table 3):" in "\n".join(lines)
