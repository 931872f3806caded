"""A study on a cohort of the user's own variables (the synthetic lesion cohort and its dictionary; results
synthetic), end to end: the report names the score arms the dictionary cannot run, and ``liver-mm evaluate``
refuses an external cohort holding categories the model never saw in training, before any prediction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.synth.lesion_cohort import write_lesion_cohort
from liver_mm.synth.lesions import lesions_dictionary

pytestmark = pytest.mark.slow  # one scikit-learn arm on 80 lesions (about a minute on 2 CPU cores)


@pytest.fixture(scope="module")
def lesion_study(tmp_path_factory) -> tuple[Path, Path]:
    """(the study folder, its tmp folder): one tab_logreg arm (and fib4, skipped) on 80 synthetic lesions."""
    tmp_path = tmp_path_factory.mktemp("lesion_study")
    dictionary = lesions_dictionary().source
    home = write_lesion_cohort(tmp_path / "home", n=80, seed=0)
    df = pd.read_csv(home, dtype=str, keep_default_na=False)
    df["shape"] = df["shape"].replace("round", "oval")  # the study's cohort holds no round lesion, no BI-RADS 5
    df["birads"] = df["birads"].replace("5", "4c")
    df.to_csv(home, index=False)
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "liver_mm.cli", "study", "data=manifest", f"data.manifest={home}",
           f"dictionary={dictionary}", "study.arms=[tab_logreg,fib4]", "study.reference=tab_logreg",
           "study.name=lesions", f"study.out_dir={out}", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
           f"logger.artifact_root={tmp_path / 'art'}", f"cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out, tmp_path


def test_a_lesion_study_names_skipped_scores_and_evaluate_refuses_unseen_categories(lesion_study, tmp_path: Path,
                                                                                    capsys) -> None:
    out, _ = lesion_study
    dictionary = lesions_dictionary().source
    assert list(pd.read_csv(out / "table3.csv")["arm"]) == ["tab_logreg"]
    report = (out / "report.md").read_text()
    assert (f"Not run: fib4 (inputs ast, alt, platelets not declared by the data dictionary {dictionary}); "
            f"apri (inputs ast, platelets not declared by the data dictionary {dictionary}).") in report

    external = write_lesion_cohort(tmp_path / "external", n=60, seed=1)
    ext = pd.read_csv(external, dtype=str, keep_default_na=False)
    ext["case_id"], ext["patient_id"] = "X" + ext["case_id"], "X" + ext["patient_id"]
    ext["age"] = ext["age"].replace("not available", "50")  # evaluate reads the cohort's labs as predict does
    ext.to_csv(external, index=False)
    lines = {c: [i + 2 for i in ext.index[ext[c] == v]] for c, v in (("shape", "round"), ("birads", "5"))}
    assert lines["shape"] and lines["birads"]
    assert main(["evaluate", "--study", str(out), "--manifest", str(external), "--out", str(tmp_path / "ev")]) == 1
    err = capsys.readouterr().err
    where = ", ".join(map(str, lines["shape"][:8]))
    assert (f"{external}, line {lines['shape'][0]} (case {ext.at[lines['shape'][0] - 2, 'case_id']}, column shape): "
            f"shape = 'round' (lines {where}") in err
    assert ("a category the model of arm(s) tab_logreg never saw in training (it knows oval, irregular)") in err
    assert "birads = '5' (lines " in err and "(it knows 2, 3, 4a, 4b, 4c)" in err
    assert not (tmp_path / "ev").exists()


def test_evaluate_reads_the_external_table_with_the_study_dictionary(lesion_study, tmp_path: Path, capsys) -> None:
    """The external lesion table is read as the study read its own: ``not available`` is the dictionary's missing
    token (an age the model learned to take missing: its training rows had some), ``Oval`` is the category oval,
    ``BI-RADS`` the alias of birads; nothing comes from the installed default (liver) dictionary. A variable the
    model never had missing in training is still refused empty, naming the arm."""
    out, _ = lesion_study
    external = write_lesion_cohort(tmp_path / "external", n=60, seed=1)
    ext = pd.read_csv(external, dtype=str, keep_default_na=False)
    ext["case_id"], ext["patient_id"] = "X" + ext["case_id"], "X" + ext["patient_id"]
    ext["shape"] = ext["shape"].replace({"round": "Oval", "oval": "Oval"})  # no unseen category; another case
    ext["birads"] = ext["birads"].replace("5", "4c")
    ext = ext.rename(columns={"birads": "BI-RADS"})
    na = [i + 2 for i in ext.index[ext["age"] == "not available"]]
    assert na and (ext["shape"] == "Oval").sum() > 10
    ext.assign(halo=ext["halo"].mask(ext.index == 3, "not available")).to_csv(external, index=False)
    assert main(["evaluate", "--study", str(out), "--manifest", str(external), "--out", str(tmp_path / "no"),
                 "--allow-missing"]) == 1  # even asked for, an input the model never had missing is refused
    err = capsys.readouterr().err
    assert (f"ERROR [missing_value] {external}, line 5 (case {ext.at[3, 'case_id']}, column halo): halo is empty: "
            "arm(s) tab_logreg never had halo missing in training") in err
    assert f"{external}: 60 rows, 1 error(s)" in err  # not the ages, not shape, not BI-RADS
    ext.to_csv(external, index=False)
    assert main(["evaluate", "--study", str(out), "--manifest", str(external), "--out", str(tmp_path / "ask")]) == 1
    err = capsys.readouterr().err  # the ages are imputed only when the user asks for it
    assert f"{external}: 60 rows, {len(na)} error(s)" in err and "pass --allow-missing to impute it" in err
    ev = tmp_path / "ev"
    assert main(["evaluate", "--study", str(out), "--manifest", str(external), "--out", str(ev),
                 "--allow-missing"]) == 0, \
        capsys.readouterr().err[-3000:]
    pred = pd.read_csv(ev / "predictions.csv")
    assert list(pred["case_id"]) == list(ext["case_id"]) and pred["tab_logreg"].notna().all()
    assert ("Missing model inputs, imputed by each model as for its training rows (where they were missing too): "
            f"age {len(na)} case(s).") in (ev / "report.md").read_text()
