"""The one label parser (liver_mm.cohort.labels) and its callers' messages."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from liver_mm.cohort.grouping import labels_and_groups
from liver_mm.cohort.labels import LabelError, parse_labels
from liver_mm.cohort.prepare import check_both_classes


def test_manifest_vocabulary_any_case_and_spacing():
    y = parse_labels(pd.Series([" Benign", "MALIGNANT ", "benign"], name="label"), "m.csv")
    assert y.tolist() == [0, 1, 0] and y.dtype == np.int64


def test_codes_only_when_asked():
    values = pd.Series([0, 1, "1.0", True, "malignant"], name="y")
    assert parse_labels(values, "s.csv", codes=True).tolist() == [0, 1, 1, 1, 1]
    with pytest.raises(LabelError, match=r"^s\.csv, line 2, column y: 0 is not one of benign, malignant \(4 such"):
        parse_labels(values, "s.csv")


def test_error_names_file_line_case_column_and_value():
    values = pd.Series(["benign", "maybe", "x"], index=[10, 11, 12])
    lines = pd.Series([3, 5, 9], index=values.index)
    ids = pd.Series(["a", "b", "c"], index=values.index)
    with pytest.raises(LabelError) as exc:
        parse_labels(values, "m.csv", column="label", lines=lines, case_ids=ids)
    assert str(exc.value) == "m.csv, line 5 (case b), column label: 'maybe' is not one of benign, malignant (2 such row(s))"


def test_empty_label_is_an_error_unless_allowed(caplog):
    values = pd.Series(["benign", None, " ", "malignant"], name="label")
    with pytest.raises(LabelError, match=r"m\.csv, line 3, column label: the label is empty \(2 such row\(s\): "
                                         r"line\(s\) 3, 4\)"):
        parse_labels(values, "m.csv")
    with caplog.at_level(logging.WARNING, logger="liver_mm.cohort.labels"):
        assert parse_labels(values, "m.csv", if_missing="no montage") is None
    assert "m.csv, column label: 2 of 4 rows have no label (line(s) 3, 4): no montage" in caplog.text


def test_split_caller_names_the_line():
    df = pd.DataFrame({"case_id": ["a", "b", "c"], "patient_id": ["p", "q", "r"],
                       "label": ["benign", "malignant", "maligant"]})
    with pytest.raises(ValueError, match=r"^m\.csv, line 4 \(case c\), column label: 'maligant' is not one of "
                                         r"benign, malignant \(1 such row\(s\)\)$"):
        labels_and_groups(df, "m.csv", image_keys=[None] * 3)


def test_training_class_check_refuses_an_unknown_label():
    """It used to count an unknown label as neither class (a silent guess) and go on."""
    df = pd.DataFrame({"case_id": list("abcdefg"), "split": ["train", "train", "dev", "dev", "test", "test", "test"],
                       "label": ["benign", "malignant", "benign", "malignant", "benign", "malignant", "benin"]})
    with pytest.raises(ValueError, match=r"^split\.csv, line 8 \(case g\), column label: 'benin' is not one of"):
        check_both_classes(df, "split.csv")
    df.loc[6, "label"] = "Malignant"
    check_both_classes(df, "split.csv")
    df.loc[5, "label"] = "benign"
    df.loc[6, "label"] = "benign"
    with pytest.raises(ValueError, match="the test part has 3 benign and 0 malignant case"):
        check_both_classes(df, "split.csv")
