"""liver_mm.catalog: the arm, modality set and fusion names exist once, in conf/, and the code reads them there."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from liver_mm import catalog, stats
from liver_mm.dictionary import default_dictionary
from liver_mm.features import tabular
from liver_mm.io import schema
from liver_mm.models.fusion import FUSION_CLASSES, FUSIONS
from liver_mm.study.checks import known_arms
from liver_mm.study.report import tables
from liver_mm.training import evaluate


def _compose(name: str, overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose(name, overrides=overrides)


def test_lab_groups_are_the_modality_configs():
    assert schema.MODEL_COLUMNS is catalog.modality_features()  # no second table in code
    for name, features in schema.MODEL_COLUMNS.items():
        assert tuple(_compose("train", [f"modalities={name}"]).modalities.features) == features
    assert schema.MODEL_COLUMNS["m3"] == ("age", "sex", "ast", "alt")
    assert schema.MODEL_COLUMNS["tabular_only"] == schema.MODEL_COLUMNS["m5"]


def test_arm_order_is_the_studys_default_arms():
    assert tables.ARM_ORDER == catalog.study_arms() == tuple(_compose("study", []).study.arms)
    assert tables.ARM_ORDER == ("m1", "m2", "m3", "m4", "m5", "tab_mlp", "tab_logreg")
    assert known_arms() == list(catalog.arm_names())  # outside Hydra: the shipped conf/arm/
    assert {"m5_film", "fib4", "tab_gbm"} <= set(catalog.arm_names())


def test_fusion_networks_and_fusion_configs_name_the_same_set():
    assert set(FUSION_CLASSES) == set(FUSIONS) == set(catalog.fusion_names()) == {"concat", "late", "film", "gated"}


def test_sex_codes_and_metric_names_exist_once():
    # sex codes live in the data dictionary alone (the shipped one: F = 0, M = 1); no module keeps its own copy
    assert default_dictionary()["sex"].categories == ("F", "M")
    assert not any(hasattr(m, n) for m in (schema, tabular) for n in ("SEX_CODES", "CLINICAL", "normalise_sex"))
    assert evaluate.METRICS is tables.METRICS is stats.THRESHOLD_METRICS
    assert evaluate.COUNT_SUFFIXES is stats.THRESHOLD_SUFFIXES


def test_a_config_whose_name_is_not_its_file_is_refused(tmp_path: Path, monkeypatch):
    (tmp_path / "fusion").mkdir()
    (tmp_path / "fusion" / "concat.yaml").write_text("name: concat\n")
    (tmp_path / "fusion" / "film.yaml").write_text("name: FiLM\ndescription: x\n")
    monkeypatch.setattr(catalog.resources, "files", lambda package: tmp_path)
    catalog.fusion_names.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"conf/fusion/film.yaml: name: 'FiLM' must equal the file name 'film'"):
            catalog.fusion_names()
    finally:
        monkeypatch.undo()
        catalog.fusion_names.cache_clear()
    assert "film" in catalog.fusion_names()
