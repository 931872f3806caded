"""Table 1 / Table 2: counts, medians (R type 7), Mann-Whitney and chi-square p equal to R's (golden values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
    expect, _ = mann_whitney_p(cohort.loc[b, "age"].to_numpy(float), cohort.loc[m, "age"].to_numpy(float))
    assert row["p_value"] == expect and "normal" in row["test"]  # mann_whitney_p itself is checked against R below
    alb = t.set_index("variable").loc["albumin"]
    assert alb["benign_missing"] + alb["malignant_missing"] == 2
    sex = t[t["variable"] == "sex"]
    counts = pd.crosstab(cohort["label"], cohort["sex"]).to_numpy()
    assert sex["p_value"].iloc[0] == chi_square_p(counts)[0]
    assert np.isnan(sex["p_value"].iloc[1]) and sex["test"].iloc[0] == "chi-square (Yates)"
    f_b = counts[0, 0]
    assert sex["benign"].iloc[0] == f"{f_b} ({100 * f_b / counts[0].sum():.1f}%)"
    assert ((sex["benign_missing"] + sex["malignant_missing"]) == 1).all()  # the one missing sex, on each level row


def _r_golden(fixtures_dir) -> dict:
    """R 4.2's wilcox.test / chisq.test (defaults) on the ILPD fixture and small samples (cohort_tests_r.R)."""
    import json

    return json.loads((fixtures_dir / "cohort_tests_r.json").read_text())


@pytest.mark.parametrize("col", ["Age", "TB", "DB", "Alkphos", "Sgpt", "Sgot", "TP", "ALB", "A/G"])
def test_mann_whitney_equals_r_on_ilpd(fixtures_dir, col):
    """Real labs with ties and >= 50 per group: R's normal approximation with continuity correction."""
    d = pd.read_csv(fixtures_dir / "ilpd.csv")
    liver = d["Selector"] == 1
    a, b = d.loc[liver, col].dropna().to_numpy(float), d.loc[~liver, col].dropna().to_numpy(float)
    p, test = mann_whitney_p(a, b)
    assert p == pytest.approx(_r_golden(fixtures_dir)[f"wilcox_{col}"], rel=1e-9, abs=1e-300)
    assert "normal" in test


def test_mann_whitney_small_samples_equal_r(fixtures_dir):
    gold = _r_golden(fixtures_dir)
    a, b = np.array([1.1, 2.3, 3.5, 4.2, 5.9]), np.array([2.2, 6.1, 7.3, 8.8])
    p, test = mann_whitney_p(a, b)  # small, no ties: R's exact test
    assert p == pytest.approx(gold["wilcox_small_exact"], rel=1e-12) and "exact" in test
    p_tie, test_tie = mann_whitney_p(np.r_[a, 2.2], b)  # a tie: R falls back to the normal approximation
    assert p_tie == pytest.approx(gold["wilcox_small_tie"], rel=1e-9) and "normal" in test_tie
    assert np.isnan(mann_whitney_p(a, np.array([]))[0])


def test_chi_square_equals_r(fixtures_dir):
    gold = _r_golden(fixtures_dir)
    d = pd.read_csv(fixtures_dir / "ilpd.csv")
    t22 = pd.crosstab(d["Selector"], d["Gender"]).to_numpy()
    p, test = chi_square_p(t22)
    assert p == pytest.approx(gold["chisq_gender_2x2"], rel=1e-9) and test == "chi-square (Yates)"
    p23, test23 = chi_square_p(np.array([[12, 5, 9], [7, 15, 3]]))
    assert p23 == pytest.approx(gold["chisq_2x3"], rel=1e-9) and test23 == "chi-square"
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
