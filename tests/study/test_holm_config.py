"""``study.holm_families``: a list of {name, arms} in conf/study.yaml that an experiment (or the command line)
replaces whole; the committed records' DeLong tables and report commands follow from the configs as they are."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from liver_mm.cli import main
from liver_mm.study.checks import check_study_config, holm_families
from liver_mm.study.compare import compare_study, write_delong_csv
from liver_mm.study.report.markdown import _results_section

RECORDS = Path(__file__).resolve().parents[2] / "experiments"
SEED = ["m1", "m2", "m3", "m4", "m5"]


def _study(overrides: list[str]):
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return compose("study", overrides=overrides, return_hydra_config=True)


def _comparison(record: str, cfg):
    long = pd.read_csv(RECORDS / record / "predictions.csv")
    preds = {str(a): g.drop(columns="arm").reset_index(drop=True) for a, g in long.groupby("arm", sort=False)}
    return compare_study(preds, [str(a) for a in cfg.study.arms], reference=str(cfg.study.reference),
                         families=holm_families(cfg))


def test_the_stepwise_families_are_the_seeds_and_the_controls():
    assert holm_families(_study(["experiment=demo"])) == {"seed": SEED,
                                                          "controls": [*SEED, "tab_mlp", "tab_logreg"]}
    assert holm_families(_study(["study.holm_families=[{name: x, arms: [m1, m2]}]"])) == {"x": ["m1", "m2"]}


def test_the_demo_records_delong_table_follows_from_the_config(tmp_path: Path):
    """The demo's committed delong.csv (with its family column) from the record's predictions and the families
    ``experiment=demo`` composes to: the same rows, columns and text, every number to 1e-12 relative (the last
    printed digit moves with the numpy/BLAS build, so bytes are not compared). (The fusion record predates later
    last-digit changes of the statistics, so only its families are compared, below.)"""
    comp = _comparison("stepwise-synthetic", _study(["experiment=demo"]))
    record = pd.read_csv(RECORDS / "stepwise-synthetic" / "delong.csv")
    made = pd.read_csv(write_delong_csv(comp, tmp_path / "delong.csv"))
    assert made.columns.tolist() == record.columns.tolist()
    numbers = made.select_dtypes("number").columns.tolist()
    pd.testing.assert_frame_equal(made.drop(columns=numbers), record.drop(columns=numbers))
    pd.testing.assert_frame_equal(made[numbers], record[numbers], rtol=1e-12, atol=0)


def test_the_fusion_reports_delong_command_runs(capsys):
    """The report's "Reproduce with" command of the fusion study runs (it printed ``--family seed=`` for the emptied
    inherited families, which ``liver-mm delong`` refuses) and gives the report's families."""
    record = RECORDS / "fusion-synthetic"
    comp = _comparison("fusion-synthetic", _study(["experiment=fusion"]))
    text = "\n".join(_results_section(comp))
    command = re.search(r"Reproduce with `(liver-mm delong [^`]+)`", text).group(1)
    assert "seed" not in command and "controls" not in command
    args = [str(record / a) if a == "test_predictions.csv" else a for a in shlex.split(command)[1:]]
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    families = [c["family"] for c in json.loads(capsys.readouterr().out)["comparisons"]]
    assert families == comp.delong_table["family"].tolist()
    assert families.count("fusion") == 5 and families.count("scores") == 7  # the record's "fusion 5, scores 7"


@pytest.mark.parametrize(("families", "message"), [
    ({"seed": ["m1", "m2"]}, r"study.holm_families must be a list of \{name: NAME, arms"),
    ([{"name": "seed"}], r"study.holm_families\[0\]: expected \{name: NAME, arms: \[a, b, ...\]\}"),
    ([{"name": "seed", "arms": []}], r"study.holm_families\[0\]: expected"),
    ([{"name": "a", "arms": ["m1", "m2"]}, {"name": "a", "arms": ["m1", "m3"]}],
     r"study.holm_families\[1\]: family 'a' is listed twice"),
])
def test_malformed_families_are_refused_before_training(families, message):
    cfg = OmegaConf.create({"study": {"arms": ["m1", "m2", "m3"], "reference": "m1", "holm_families": families}})
    with pytest.raises(ValueError, match=message):
        check_study_config(cfg)
