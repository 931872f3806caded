"""The synthetic lesion cohort: a dictionary that is not the liver one, valid against its table, with signal
exactly where the generator put it (held-out univariable AUC of each descriptor, fitted on the other half)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from liver_mm.cohort.validate_labs import validate_labs
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.synth.lesions import SIGNAL, lesions_dictionary, synth_lesions


def test_lesion_table_is_valid_against_its_dictionary() -> None:
    d = lesions_dictionary()
    df = synth_lesions(300, seed=1)
    assert d.features("descriptors") == ("age", "shape", "margin", "birads")
    assert [f for f in validate_labs(df, dictionary=d) if f.severity == "error"] == []
    assert (df["age"] == "not available").sum() == 31  # the missing token, ~10% (seed 1)
    assert synth_lesions(300, seed=1).equals(df) and not synth_lesions(300, seed=2).equals(df)


def test_signal_where_the_generator_put_it() -> None:
    d = lesions_dictionary()
    df = synth_lesions(2000, seed=0)
    y = (df["label"] == "malignant").to_numpy(int)
    train, test = np.arange(len(df)) % 2 == 0, np.arange(len(df)) % 2 == 1
    auc = {}
    for var in SIGNAL:
        pre = TabularPreprocessor([var], d).fit(df[train])
        model = LogisticRegression().fit(pre.transform(df[train]), y[train])
        auc[var] = roc_auc_score(y[test], model.predict_proba(pre.transform(df[test]))[:, 1])
    assert {v for v, a in auc.items() if a > 0.75} == {v for v, s in SIGNAL.items() if s == "strong"}, auc
    assert 0.6 < auc["age"] < 0.75, auc
    assert all(abs(auc[v] - 0.5) < 0.05 for v, s in SIGNAL.items() if s == "none"), auc
