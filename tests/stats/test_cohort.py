"""Table 1 / Table 2: counts, medians (R type 7), Mann-Whitney and chi-square p as scipy gives them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, mannwhitneyu

from liver_mm.stats import chi_square_p, mann_whitney_p, markdown_table, table1, table2


@pytest.fixture
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 120
    label = rng.choice(["benign", "malignant"], n)
    mal = label == "malignant"
    df = pd.DataFrame({
        "label": label,
        "age": np.round(rng.normal(55, 12, n) + 8 * mal),  # integer ages: ties
        "sex": rng.choice(["F", "M"], n, p=[0.45, 0.55]),
        "ast": rng.lognormal(3.3, 0.4, n) * (1 + 0.3 * mal),
        "albumin": rng.normal(4.1, 0.4, n) - 0.3 * mal,
        "subtype": np.where(mal, rng.choice(["HCC", "metastasis"], n), rng.choice(["FNH", "hemangioma"], n)),
        "diagnostic_basis": rng.choice(["histology", "imaging follow-up"], n),
    })
    df.loc[[2, 5], "albumin"] = np.nan
    df.loc[7, "sex"] = None
    return df


def test_table2_values_and_tests(cohort):
    t = table2(cohort)
    assert list(t.columns) == ["variable", "level", "benign", "malignant", "benign_missing",
                               "malignant_missing", "test", "p_value"]
    b, m = cohort["label"] == "benign", cohort["label"] == "malignant"
    assert t.iloc[0][["variable", "benign", "malignant"]].tolist() == ["n", str(b.sum()), str(m.sum())]
    # absent default columns (platelets, alt, wbc, ...) are skipped
    assert t["variable"].tolist() == ["n", "age", "ast", "albumin", "sex", "sex"]
    row = t.set_index("variable").loc["age"]
    q1, med, q3 = np.quantile(cohort.loc[b, "age"], [0.25, 0.5, 0.75])  # numpy 'linear' = R type 7
    assert row["benign"] == f"{med:.1f} ({q1:.1f}–{q3:.1f})"
    # age has ties and > 50 per class: normal approximation with continuity correction, as R
    expect = mannwhitneyu(cohort.loc[b, "age"], cohort.loc[m, "age"], method="asymptotic", use_continuity=True)
    assert row["p_value"] == expect.pvalue and "normal" in row["test"]
    alb = t.set_index("variable").loc["albumin"]
    assert alb["benign_missing"] + alb["malignant_missing"] == 2
    sex = t[t["variable"] == "sex"]
    counts = pd.crosstab(cohort["label"], cohort["sex"]).to_numpy()
    assert sex["p_value"].iloc[0] == chi2_contingency(counts, correction=True).pvalue
    assert np.isnan(sex["p_value"].iloc[1]) and sex["test"].iloc[0] == "chi-square (Yates)"
    f_b = counts[0, 0]
    assert sex["benign"].iloc[0] == f"{f_b} ({100 * f_b / counts[0].sum():.1f}%)"
    assert ((sex["benign_missing"] + sex["malignant_missing"]) == 1).all()  # the one missing sex, on each level row


def test_mann_whitney_method_like_r():
    a = np.array([1.1, 2.3, 3.5, 4.2, 5.9])
    b = np.array([2.2, 6.1, 7.3, 8.8])
    p, test = mann_whitney_p(a, b)  # small, no ties: exact
    assert p == mannwhitneyu(a, b, method="exact").pvalue and "exact" in test
    p_tie, test_tie = mann_whitney_p(np.r_[a, 2.2], b)  # a tie: normal approximation
    assert p_tie == mannwhitneyu(np.r_[a, 2.2], b, method="asymptotic", use_continuity=True).pvalue
    assert "normal" in test_tie
    big = np.arange(60.0)
    p_big, test_big = mann_whitney_p(big, big + 0.5)  # >= 50 per group: normal approximation
    assert p_big == mannwhitneyu(big, big + 0.5, method="asymptotic", use_continuity=True).pvalue
    assert np.isnan(mann_whitney_p(a, np.array([]))[0])


def test_chi_square_yates_only_for_2x2():
    t22 = np.array([[12, 5], [7, 15]])
    assert chi_square_p(t22) == (chi2_contingency(t22, correction=True).pvalue, "chi-square (Yates)")
    t23 = np.array([[12, 5, 9], [7, 15, 3]])
    assert chi_square_p(t23) == (chi2_contingency(t23).pvalue, "chi-square")
    assert np.isnan(chi_square_p(np.array([[4], [6]]))[0])  # one level only: no test


def test_table1_counts_and_totals(cohort):
    t = table1(cohort)
    assert list(t.columns) == ["label", "subtype", "histology", "imaging follow-up", "total"]
    assert t["label"].tolist()[-1] == "all" and t["total"].iloc[-1] == len(cohort)
    for cls in ("benign", "malignant"):
        part = t[t["label"] == cls]
        body, total = part[part["subtype"] != "total"], part[part["subtype"] == "total"].iloc[0]
        assert total["total"] == (cohort["label"] == cls).sum()
        assert (body[["histology", "imaging follow-up"]].sum() == total[["histology", "imaging follow-up"]]).all()
    hcc = t[(t["label"] == "malignant") & (t["subtype"] == "HCC")].iloc[0]
    sel = (cohort["label"] == "malignant") & (cohort["subtype"] == "HCC")
    assert hcc["histology"] == (sel & (cohort["diagnostic_basis"] == "histology")).sum()


def test_table1_without_subtype_is_an_error(cohort):
    with pytest.raises(ValueError, match="subtype"):
        table1(cohort.drop(columns="subtype"))


def test_label_errors_are_clear(cohort):
    bad = cohort.copy()
    bad.loc[3, "label"] = "unsure"
    with pytest.raises(ValueError, match="row 3.*unsure"):
        table2(bad)
    with pytest.raises(ValueError, match="label column 'diagnosis'"):
        table2(cohort, label_col="diagnosis")


def test_markdown_table(cohort):
    md = markdown_table(table2(cohort))
    lines = md.strip().splitlines()
    assert lines[0].startswith("| variable | level | benign | malignant")
    assert lines[1].startswith("|---|")
    assert len(lines) == 2 + 6
    assert all(line.count("|") == lines[0].count("|") for line in lines)
