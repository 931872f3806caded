"""Permutation importance: unseen feature exactly 0, scikit-learn's numbers for one-column groups, groups
permuted jointly, the memoised network predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import permutation_importance as sk_permutation_importance

from liver_mm.explain.importance import feature_groups, permutation_importance
from liver_mm.explain.network import probabilities, tabular_predictor
from tests.explain.conftest import fusion_net


def _data(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.8, n) > 0).astype(int)
    return X, y


def _model(X: np.ndarray) -> np.ndarray:
    """Reads columns 0 and 1 only (column 2 never)."""
    return 1.0 / (1.0 + np.exp(-(X[:, 0] + 0.5 * X[:, 1])))


class _Wrapped(ClassifierMixin, BaseEstimator):
    """``_model`` as a fitted scikit-learn classifier, for sklearn's own permutation_importance."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = _model(np.asarray(X))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (_model(np.asarray(X)) >= 0.5).astype(int)


def test_a_feature_the_model_never_sees_is_exactly_zero():
    X, y = _data()
    res = permutation_importance(_model, X, y, {"x2": [2], "x0": [0]}, n_repeats=7, seed=3)
    assert list(res.columns) == ["feature", "auc_drop_mean", "auc_drop_sd", "n_repeats"]
    row = res.set_index("feature").loc["x2"]
    assert row["auc_drop_mean"] == 0.0 and row["auc_drop_sd"] == 0.0 and row["n_repeats"] == 7
    assert res.set_index("feature").loc["x0", "auc_drop_mean"] > 0.1


@pytest.mark.parametrize("seed", [0, 5])
def test_one_column_groups_equal_scikit_learn(seed):
    """Same protocol as sklearn.inspection.permutation_importance: identical AUC drops, mean and SD."""
    X, y = _data()
    ours = permutation_importance(_model, X, y, {f"x{j}": [j] for j in range(4)}, n_repeats=6, seed=seed)
    ref = sk_permutation_importance(_Wrapped().fit(X, y), X, y, scoring="roc_auc", n_repeats=6, random_state=seed)
    np.testing.assert_allclose(ours["auc_drop_mean"], ref.importances_mean, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours["auc_drop_sd"], ref.importances_std, rtol=0, atol=1e-15)
    assert ours["auc_drop_mean"].iloc[0] > ours["auc_drop_mean"].iloc[1] > 0  # x0 matters most, then x1


def test_a_group_is_permuted_with_one_permutation():
    """Column 4 is a copy of column 0 that the model ignores: permuting {0, 4} jointly is exactly permuting
    column 0 (scikit-learn's number); two independent permutations would differ."""
    X, y = _data()
    X5 = np.column_stack([X, X[:, 0]])
    grouped = permutation_importance(_model, X5, y, {"x0 + copy": [0, 4]}, n_repeats=6, seed=2)
    ref = sk_permutation_importance(_Wrapped().fit(X, y), X, y, scoring="roc_auc", n_repeats=6, random_state=2)
    assert grouped["auc_drop_mean"].iloc[0] == pytest.approx(ref.importances_mean[0], abs=1e-15)
    assert grouped["auc_drop_sd"].iloc[0] == pytest.approx(ref.importances_std[0], abs=1e-15)

    def reads_both(Z: np.ndarray) -> np.ndarray:  # a model that would notice rows of the group split apart
        return _model(Z) * (Z[:, 0] == Z[:, 4])

    joint = permutation_importance(reads_both, X5, y, {"g": [0, 4]}, n_repeats=6, seed=2)
    assert joint["auc_drop_mean"].iloc[0] == pytest.approx(ref.importances_mean[0], abs=1e-15)


def test_feature_groups_pair_a_lab_with_its_indicator():
    names = ["age", "sex", "ast", "alt", "albumin", "ast_missing", "albumin_missing"]
    assert feature_groups(names) == {"age": [0], "sex": [1], "ast": [2, 5], "alt": [3], "albumin": [4, 6]}
    # a censored-cell indicator joins its lab too (after the missing one)
    with_censored = [*names, "ast_censored"]
    assert feature_groups(with_censored)["ast"] == [2, 5, 7] and len(feature_groups(with_censored)) == 5


def test_bad_input_is_refused():
    X, y = _data()
    with pytest.raises(ValueError, match="'x9'.*not within the 4 columns"):
        permutation_importance(_model, X, y, {"x9": [9]})
    with pytest.raises(ValueError, match="both classes"):
        permutation_importance(_model, X, np.zeros(len(X), int), {"x0": [0]})
    labels = pd.Series(np.where(y == 1, "malignant", "benign"))
    text = permutation_importance(_model, X, labels, {"x0": [0]}, n_repeats=2)
    assert text.equals(permutation_importance(_model, X, y, {"x0": [0]}, n_repeats=2))


@pytest.mark.parametrize("fusion", ["concat", "film"])
def test_network_predictor_runs_the_cnn_once_and_gives_the_same_probabilities(crops, fusion):
    net = fusion_net(n_tabular=3, fusion=fusion, tta_hflip=True)
    X = np.random.default_rng(2).normal(size=(12, 3)).astype(np.float32)
    predict = tabular_predictor(net, crops, batch_size=5)
    shuffled = X[::-1].copy()
    np.testing.assert_array_equal(predict(X), probabilities(net, crops, X, batch_size=5))
    np.testing.assert_array_equal(predict(shuffled), probabilities(net, crops, shuffled, batch_size=5))
    memo = predict.__closure__  # the clone's encoder remembers one output per batch (3 batches, and mirrors)
    encoder = next(c.cell_contents for c in memo if hasattr(c.cell_contents, "image_encoder")).image_encoder
    assert len(encoder.memo) == 2 * 3
    assert type(net.image_encoder).__name__ != "MemoEncoder"  # the caller's network is untouched
