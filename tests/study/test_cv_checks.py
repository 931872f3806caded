"""Issue 21 item 4: a study's options are checked before any training; a one-arm CV study finishes; a failed
comparison marks the parent run FAILED instead of leaving it RUNNING."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from liver_mm.cli import main
from liver_mm.study.checks import check_arms, check_cv, check_study_config, known_arms
from liver_mm.study.cv.run import uses_cv

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


def _cfg(folds=None, repeats=1, arms=("m1", "m5"), reference="m1"):
    return OmegaConf.create({"cv": {"folds": folds, "repeats": repeats},
                             "study": {"arms": list(arms), "reference": reference}})


@pytest.mark.parametrize("folds", [1, 0, -3, 2.5, 3.0, True, "5"])
def test_bad_cv_folds_are_refused_naming_the_option(folds):
    with pytest.raises(ValueError) as exc:
        check_cv(_cfg(folds))
    assert str(exc.value).startswith(f"cv.folds={folds!r}: must be null (the single train/dev/test split) or a "
                                     "whole number of folds >= 2")
    with pytest.raises(ValueError, match="cv.folds="):  # the jobs' own test of cv.folds checks too
        uses_cv(_cfg(folds))


@pytest.mark.parametrize("repeats", [0, -1, 1.5, None])
def test_bad_cv_repeats_are_refused(repeats):
    with pytest.raises(ValueError, match=rf"^cv.repeats={repeats!r}: must be a whole number >= 1"):
        check_cv(_cfg(5, repeats))


def test_good_cv_options():
    assert check_cv(_cfg(None)) is None and uses_cv(_cfg(None)) is False
    assert check_cv(_cfg(2, 3)) == 2 and uses_cv(_cfg(5)) is True


def test_arms_and_reference_checks():
    known = ["m1", "m5", "tab_logreg"]
    check_arms(["m1", "m5"], "m1", known)
    with pytest.raises(ValueError, match=r"^study.reference=m1: not one of study.arms \['m5', 'tab_logreg'\]"):
        check_arms(["m5", "tab_logreg"], "m1", known)
    with pytest.raises(ValueError, match=r"^study.arms: no arm config for \['m7'\] \(known arms: m1, m5, tab_logreg\)"):
        check_arms(["m1", "m7"], "m1", known)
    with pytest.raises(ValueError, match=r"^study.arms lists \['m5'\] more than once"):
        check_arms(["m1", "m5", "m5"], "m1", known)
    assert {"m1", "m5", "tab_logreg", "fib4"} <= set(known_arms())
    with pytest.raises(ValueError, match="study.arms must be a non-empty list"):
        check_study_config(_cfg(arms=()))


def _study_args(tmp_path: Path, cohort: Path, *extra: str) -> list[str]:
    return ["study", "data=manifest", f"data.manifest={cohort}", "study.arms=[tab_logreg]",
            "study.reference=tab_logreg", f"study.out_dir={tmp_path / 'report'}",
            f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}",
            f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}", *extra]


def _runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.mark.parametrize(("override", "message"), [
    ("cv.folds=1", "cv.folds=1: must be null"),
    ("cv.folds=0", "cv.folds=0: must be null"),
    ("cv.folds=-3", "cv.folds=-3: must be null"),
    ("cv.folds=2.5", "cv.folds=2.5: must be null"),
    ("study.reference=m1", "study.reference=m1: not one of study.arms ['tab_logreg']"),
    ("study.arms=[tab_logreg,m9]", "study.arms: no arm config for ['m9']"),
])
def test_the_study_refuses_before_any_training(tmp_path, tiny_cohort, capfd, override, message):
    with pytest.raises(SystemExit) as exc:
        main(_study_args(tmp_path, tiny_cohort, override))
    assert exc.value.code == 1
    assert message in "".join(capfd.readouterr())
    assert _runs(tmp_path) == []  # not even a parent run
    assert not (tmp_path / "cache").exists()  # nor the cohort prepared


@pytest.mark.slow
def test_a_failed_comparison_marks_the_parent_failed(tmp_path, tiny_cohort, monkeypatch, capfd):
    def broken(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("liver_mm.study.finish.write_report", broken)
    with pytest.raises(SystemExit) as exc:
        main(_study_args(tmp_path, tiny_cohort))
    assert exc.value.code == 1
    assert "study failed while comparing the arms: No space left on device" in "".join(capfd.readouterr())
    parent = [r for r in _runs(tmp_path) if r.data.tags.get("is_study_parent") == "true"]
    assert [r.info.status for r in parent] == ["FAILED"]


@pytest.mark.slow
def test_a_one_arm_cv_study_finishes(tmp_path, tiny_cohort):
    """One arm has nothing to compare: per-arm tables, an empty comparison table, parent FINISHED (was:
    "study failed while comparing the arms: 'p_t'", exit 1, parent RUNNING)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([LIVER_MM, *_study_args(tmp_path, tiny_cohort, "cv.folds=2")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "report"
    comp = pd.read_csv(out / "cv_comparisons.csv")
    assert comp.empty and list(comp.columns[:3]) == ["a", "b", "family"]
    summary = pd.read_csv(out / "cv_summary.csv")
    assert list(summary["arm"]) == ["tab_logreg"] and summary.at[0, "n_folds"] == 2
    assert "One arm: nothing to compare." in (out / "report.md").read_text()
    parent = [r for r in _runs(tmp_path) if r.data.tags.get("is_study_parent") == "true"]
    assert [r.info.status for r in parent] == ["FINISHED"]
