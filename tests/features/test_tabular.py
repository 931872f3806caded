"""Clinical preprocessing: coding, log transform, imputation, train-only fitting, JSON round trip."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from liver_mm.features.tabular import TabularPreprocessor


@pytest.fixture()
def train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"t{i}" for i in range(6)],
            "age": [50.0, 60.0, 70.0, 55.0, 65.0, 75.0],
            "sex": pd.array(["F", "M", "m", " F ", "M", None], dtype="string"),
            "ast": [20.0, 40.0, 80.0, 30.0, np.nan, 160.0],
            "alt": [15.0, 25.0, 35.0, 45.0, 55.0, 65.0],
            "platelets": [20.0, 15.0, 10.0, 25.0, 18.0, 12.0],
            "albumin": [4.0, 3.5, 3.0, 4.2, 3.8, 3.3],
            "extra_note": ["a", "b", "c", "d", "e", "f"],
        }
    )


FEATURES = ["age", "sex", "ast", "alt", "platelets", "albumin"]


def test_output_layout_and_names(train):
    pre = TabularPreprocessor(FEATURES).fit(train)
    x = pre.transform(train)
    assert x.dtype == np.float32 and x.shape == (6, 8)
    assert pre.feature_names_out == FEATURES + ["sex_missing", "ast_missing"]
    assert pre.n_features_out == 8
    # indicators mark exactly the missing cells
    np.testing.assert_array_equal(x[:, 6], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(x[:, 7], [0, 0, 0, 0, 1, 0])


def test_sex_coded_zero_one_and_imputed_with_train_median(train):
    x = TabularPreprocessor(["sex"]).fit_transform(train)
    # F, M, m, F, M -> median 1 ; not standardised
    np.testing.assert_array_equal(x[:, 0], [0, 1, 1, 0, 1, 1])


def test_continuous_standardised_with_train_mean_std(train):
    x = TabularPreprocessor(["age", "albumin"]).fit_transform(train)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-6)
    age = train["age"].to_numpy()
    np.testing.assert_allclose(x[:, 0], (age - age.mean()) / age.std(), rtol=1e-6)


def test_enzymes_log_transformed_before_standardising(train):
    x = TabularPreprocessor(["alt"]).fit_transform(train)
    la = np.log1p(train["alt"].to_numpy())
    np.testing.assert_allclose(x[:, 0], (la - la.mean()) / la.std(), rtol=1e-5)
    # median imputation happens on the log scale, before the mean/std are taken
    pre = TabularPreprocessor(["ast"]).fit(train)
    obs = np.log1p(np.array([20.0, 40.0, 80.0, 30.0, 160.0]))
    filled = np.append(obs, np.median(obs))
    st = pre.to_dict()["stats"]["ast"]
    assert st["median"] == pytest.approx(np.log1p(40.0))
    assert st["mean"] == pytest.approx(filled.mean()) and st["std"] == pytest.approx(filled.std())
    x = pre.transform(train)
    assert x[4, 0] == pytest.approx((np.log1p(40.0) - filled.mean()) / filled.std(), rel=1e-6)


def test_fit_uses_train_rows_only(train):
    dev = train.assign(age=train["age"] + 30.0, alt=train["alt"] * 10)
    pre = TabularPreprocessor(["age", "alt"]).fit(train)
    before = pre.to_dict()
    x_dev = pre.transform(dev)
    assert pre.to_dict() == before  # transform does not refit
    age = train["age"].to_numpy()
    np.testing.assert_allclose(x_dev[:, 0], (age + 30 - age.mean()) / age.std(), rtol=1e-6)
    assert x_dev[:, 0].mean() > 2.0  # dev shift visible, not re-centred
    pooled = TabularPreprocessor(["age", "alt"]).fit(pd.concat([train, dev]))
    assert pooled.to_dict() != before


def test_missing_at_predict_time_without_train_missing_warns_and_imputes(train, caplog):
    pre = TabularPreprocessor(["age", "platelets"]).fit(train)
    test = train.head(3).copy()
    test.loc[1, "platelets"] = np.nan
    with caplog.at_level(logging.WARNING, logger="liver_mm.features.tabular"):
        x = pre.transform(test)
    assert "platelets" in caplog.text and "none in training" in caplog.text
    assert x.shape == (3, 2) and pre.feature_names_out == ["age", "platelets"]
    p = train["platelets"].to_numpy()
    assert x[1, 1] == pytest.approx((np.median(p) - p.mean()) / p.std(), rel=1e-6)


def test_json_round_trip_is_exact(train):
    pre = TabularPreprocessor(FEATURES).fit(train)
    text = json.dumps(pre.to_dict())
    back = TabularPreprocessor.from_dict(json.loads(text))
    assert back.feature_names_out == pre.feature_names_out
    dev = train.assign(age=train["age"] / 3.0, ast=train["ast"] + 0.123)
    np.testing.assert_array_equal(back.transform(dev), pre.transform(dev))
    assert back.to_dict() == pre.to_dict()


def test_from_dict_rejects_inconsistent_state(train):
    d = TabularPreprocessor(["age"]).fit(train).to_dict()
    with pytest.raises(ValueError, match="format"):
        TabularPreprocessor.from_dict({**d, "format_version": 99})
    with pytest.raises(ValueError, match="platelets"):
        TabularPreprocessor.from_dict({**d, "features": ["age", "platelets"]})


def test_sex_synonyms_of_the_dictionary_are_codes(train):
    """female / male are the shipped dictionary's synonyms of F / M: coded as them."""
    pre = TabularPreprocessor(["sex"]).fit(train)
    test = train.copy()
    test.loc[2, "sex"], test.loc[3, "sex"] = "female", " Male "
    x = pre.transform(test)
    assert (x[2, 0], x[3, 0]) == (0.0, 1.0)


@pytest.mark.parametrize("bad", ["X", "fem", "1"])
def test_bad_sex_value_names_column_row_value(train, bad):
    pre = TabularPreprocessor(["sex"]).fit(train)
    test = train.copy()
    test.loc[2, "sex"] = bad
    with pytest.raises(ValueError, match=rf"'sex'.*case_id=t2.*{bad}"):
        pre.transform(test)
    with pytest.raises(ValueError, match="'sex'"):
        TabularPreprocessor(["sex"]).fit(test)


def test_non_numeric_and_negative_values_are_errors(train):
    test = train.astype({"alt": "object"})
    test.loc[3, "alt"] = "<5"
    with pytest.raises(ValueError, match=r"'alt'.*case_id=t3.*<5"):
        TabularPreprocessor(["alt"]).fit(test)
    neg = train.copy()
    neg.loc[0, "ast"] = -3.0
    with pytest.raises(ValueError, match=r"'ast'.*negative"):
        TabularPreprocessor(["ast"]).fit(neg)


def test_missing_column_named(train):
    with pytest.raises(ValueError, match="'ggt'"):
        TabularPreprocessor(["age", "ggt"]).fit(train)
    pre = TabularPreprocessor(["age", "albumin"]).fit(train)
    with pytest.raises(ValueError, match="'albumin'"):
        pre.transform(train.drop(columns="albumin"))


def test_constant_column_std_one_and_all_missing_error(train):
    x = TabularPreprocessor(["k"]).fit_transform(train.assign(k=5.0))
    np.testing.assert_array_equal(x, np.zeros((6, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="'k'.*no non-missing"):
        TabularPreprocessor(["k"]).fit(train.assign(k=np.nan))


def test_empty_feature_list_gives_n_by_zero(train):
    pre = TabularPreprocessor([]).fit(train)
    x = pre.transform(train)
    assert x.shape == (6, 0) and x.dtype == np.float32
    assert pre.n_features_out == 0
    back = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert back.transform(train).shape == (6, 0)


def test_unfitted_and_duplicate_features_rejected(train):
    with pytest.raises(RuntimeError, match="not fitted"):
        TabularPreprocessor(["age"]).transform(train)
    with pytest.raises(ValueError, match="duplicate"):
        TabularPreprocessor(["age", "age"])
