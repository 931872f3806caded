"""Table 2 of a user's dictionary: categorical levels with chi-square or Fisher's exact test (named), an
ordinal variable's median level and distribution, a multi-valued variable's row per value, missing counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import MonteCarloMethod, chi2_contingency, fisher_exact, mannwhitneyu

from liver_mm.dictionary import load_dictionary
from liver_mm.stats.cohort import table2
from tests.features.test_tabular_kinds import DICTIONARY


@pytest.fixture()
def table(tmp_path: Path) -> tuple[pd.DataFrame, object]:
    p = tmp_path / "d.yaml"
    p.write_text(DICTIONARY, encoding="utf-8")
    label = ["benign"] * 6 + ["malignant"] * 6
    df = pd.DataFrame({
        "label": label,
        "age": [40, 45, 50, 55, 60, 65, 62, 66, 70, 74, 78, 80],
        "shape": ["oval", "oval", "oval", "oval", "round", None, "irregular", "irregular", "irregular", "round",
                  "irregular", "oval"],
        "margin": ["circumscribed", "circumscribed", "circumscribed", "indistinct", "circumscribed", "circumscribed",
                   "angular&indistinct", "angular", "indistinct", "angular", None, "circumscribed"],
        "birads": ["2", "3", "3", "3", "4a", "2", "4c", "5", "4b", "5", "5", "4a"],
    })
    return df, load_dictionary(p)


def test_categorical_small_counts_use_fisher(table) -> None:
    df, d = table
    t = table2(df, dictionary=d)
    shape = t[t.variable == "shape"].set_index("level")
    assert list(shape.index) == ["irregular", "oval", "round"]
    counts = np.array([[0, 4, 1], [4, 1, 1]])
    assert shape.loc["irregular", "test"] == "Fisher's exact, Monte Carlo 20000 tables (expected count < 5)"
    exact = fisher_exact(counts, method=MonteCarloMethod(n_resamples=20_000, rng=np.random.default_rng(0))).pvalue
    assert shape.loc["irregular", "p_value"] == exact  # seeded: the same p every run
    assert table2(df, dictionary=d).equals(table2(df, dictionary=d))
    assert (shape.loc["oval", "benign"], shape.loc["oval", "malignant"]) == ("4 (80.0%)", "1 (16.7%)")
    assert shape.loc["oval", "benign_missing"] == 1


def test_multi_one_row_per_value(table) -> None:
    df, d = table
    margin = table2(df, dictionary=d).query("variable == 'margin'").set_index("level")
    assert list(margin.index) == ["circumscribed", "indistinct", "angular"]
    assert (margin.loc["angular", "benign"], margin.loc["angular", "malignant"]) == ("0 (0.0%)", "3 (60.0%)")
    assert margin.loc["angular", "p_value"] == pytest.approx(fisher_exact([[0, 6], [3, 2]]).pvalue, rel=1e-12)
    assert margin.loc["angular", "malignant_missing"] == 1


def test_ordinal_median_level_and_distribution(table) -> None:
    df, d = table
    birads = table2(df, dictionary=d).query("variable == 'birads'")
    first = birads.iloc[0]
    assert (first.level, first.benign, first.malignant) == ("median level", "3", "4c")
    b, m = np.array([0, 1, 1, 1, 2, 0.0]), np.array([4, 5, 3, 5, 5, 2.0])
    assert first.p_value == pytest.approx(mannwhitneyu(b, m, method="asymptotic").pvalue, rel=1e-12)
    assert list(birads.level[1:]) == ["2", "3", "4a", "4b", "4c", "5"]
    assert birads.set_index("level").loc["5", "malignant"] == "3 (50.0%)"


def test_large_counts_keep_chi_square() -> None:
    counts = np.array([[30, 20], [18, 32]])
    df = pd.DataFrame({"label": ["benign"] * 50 + ["malignant"] * 50,
                       "sex": ["F"] * 30 + ["M"] * 20 + ["F"] * 18 + ["M"] * 32})
    sex = table2(df, continuous=()).query("variable == 'sex'").iloc[0]
    assert sex.test == "chi-square (Yates)"
    assert sex.p_value == pytest.approx(chi2_contingency(counts, correction=True).pvalue, rel=1e-12)
