"""`liver-mm evaluate` refuses a cohort that is not external: the study's own cases re-saved, reordered, widened,
cut down or renamed are found by case id, patient id or image pixels (the study's cohort prepared again from the
reference arm's config, as the study prepared it)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from liver_mm.study.external.checks import validate_external
from liver_mm.study.external.overlap import (
    OverlapError,
    check_overlap,
    overlap_notice,
    overlap_with_study,
    study_cohort,
)
from liver_mm.study.external.source import ArmRun, StudySource
from liver_mm.synth.cohort import generate_cohort

N = 40


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Path, StudySource, pd.DataFrame]:
    """A synthetic home cohort, a study source whose reference arm trained on it, and the study's split frame."""
    root = tmp_path_factory.mktemp("overlap")
    manifest = generate_cohort(root / "home", n=N, seed=0, frame_size=(64, 64), progress=False)
    cfg = OmegaConf.create({"data": {"kind": "manifest", "manifest": str(manifest)},
                            "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0}, "cache_dir": str(root / "cache"),
                            "modalities": {"features": ["age", "albumin"], "image": False},
                            "model": {"kind": "sklearn"}})
    arm = ArmRun("tab_logreg", "r" * 32, "sklearn", cfg, 0.5, math.nan, "", frozenset(), frozenset())
    source = StudySource("home", "p" * 32, "1", {"tab_logreg": arm}, "tab_logreg", None, True, None, None)
    return manifest, source, study_cohort(source).df


def _overlap(path: Path, source: StudySource):
    return overlap_with_study(validate_external(path, source), path, source)


def _variant(home, name: str, edit) -> Path:
    """The study's manifest read and re-saved by pandas beside it (its images resolve, its cohort.json applies),
    after ``edit``."""
    manifest, _source, _df = home
    df = edit(pd.read_csv(manifest))
    path = manifest.parent / f"{name}.csv"
    df.to_csv(path, index=False)
    return path


def _expected_first(study: pd.DataFrame, case: str) -> str:
    split = study.set_index("case_id").at[case, "split"]
    patient = study.set_index("case_id").at[case, "patient_id"]
    return f"(case {case}: case id {case}, patient {patient}, image = study case {case}'s, study {split})"


@pytest.mark.parametrize("name, edit", [
    ("resaved", lambda d: d),  # 181 -> 181.0 in alp (a column with an empty cell): other bytes, same cases
    ("shuffled", lambda d: d.sample(frac=1.0, random_state=3)[list(reversed(d.columns))]),
    ("extra_column", lambda d: d.assign(site="home")),
])
def test_the_studys_manifest_rewritten_is_refused_naming_every_kind_of_overlap(home, name, edit):
    manifest, source, study = home
    path = _variant(home, name, edit)
    assert path.read_bytes() != manifest.read_bytes()
    ov = _overlap(path, source)
    assert ov.n == N and set(ov.rows["what"].str.count(", ")) == {2}  # each by case id, patient and image
    counts = study["split"].value_counts()
    assert ov.by_split() == f"train {counts['train']}, dev {counts['dev']}, test {counts['test']}"
    with pytest.raises(OverlapError) as exc:
        check_overlap(ov, path, allow=False)
    first = pd.read_csv(path)["case_id"].iloc[0]
    text = str(exc.value)
    assert text.startswith(f"{path}: not an external cohort: {N} of the {N} external case(s) are in the study's "
                           f"own cohort ({N} by case id, {N} by patient, {N} by image; study part: train ")
    assert f"line 2 {_expected_first(study, first)}" in text and f"and {N - 5} more" in text
    assert "--allow-overlap" in text


def test_the_studys_training_rows_alone_are_refused(home):
    _manifest, source, study = home
    train = set(study.loc[study["split"] == "train", "case_id"])
    path = _variant(home, "train_only", lambda d: d[d["case_id"].isin(train)])
    ov = _overlap(path, source)
    assert ov.n == ov.n_external == len(train) and ov.by_split() == f"train {len(train)}"
    with pytest.raises(OverlapError, match=rf"{len(train)} of the {len(train)} external case\(s\)"):
        check_overlap(ov, path, allow=False)


def test_the_same_images_under_other_case_and_patient_ids_are_found_by_their_pixels(home, tmp_path):
    manifest, source, study = home
    df = pd.read_csv(manifest)
    df["case_id"], df["patient_id"] = "X" + df["case_id"], "Q" + df["patient_id"]
    df["image_path"] = [str(manifest.parent / p) for p in df["image_path"]]
    for i in range(0, N, 2):  # half the frames copied under new names (another format would hash the same)
        new = tmp_path / f"frame{i}.png"
        shutil.copyfile(df.at[i, "image_path"], new)
        df.at[i, "image_path"] = str(new)
    path = tmp_path / "renamed.csv"  # another folder: not marked synthetic
    df.to_csv(path, index=False)
    ov = _overlap(path, source)
    assert ov.n == N and set(ov.rows["what"]) == {f"image = study case {c}'s" for c in study["case_id"]}
    assert list(ov.rows["what"]) == [f"image = study case {c[1:]}'s" for c in df["case_id"]]
    with pytest.raises(OverlapError, match=r"\(case XC0001: image = study case C0001's, study "):
        check_overlap(ov, path, allow=False)


def test_allow_overlap_passes_and_the_report_heads_with_the_count(home):
    _manifest, source, study = home
    keep = study["case_id"].iloc[:7].tolist()
    path = _variant(home, "partial", lambda d: d[d["case_id"].isin(keep)])
    ov = _overlap(path, source)
    check_overlap(ov, path, allow=True)  # no error
    lines = overlap_notice(ov)
    assert lines[0] == "# NOT EXTERNAL: 7 of 7 cases overlap the study's cohort"
    assert "Evaluated anyway (--allow-overlap)" in lines[2]


def test_another_seeds_synthetic_cohort_is_external_and_the_report_says_what_was_compared(home, tmp_path):
    _manifest, source, _study = home
    other = generate_cohort(tmp_path / "site_b", n=30, seed=1, frame_size=(64, 64), progress=False, site="b")
    ov = _overlap(other, source)
    assert ov.n == 0  # C0001..C0030, P...: the same counters as the home cohort, other simulated patients
    assert ov.compared == ["image pixels of 30 image(s)"]
    assert overlap_notice(ov)[0] == (
        f"Overlap with the study's cohort: none of the 30 external case(s) is in the study's cohort of {N} (image "
        "pixels of 30 image(s) compared); ids not compared: both cohorts were generated by liver-mm, from seeds 1 "
        "and 0 (other simulated patients, same counter ids).")
    # a real (unmarked) cohort reusing a study patient's id is caught by that id alone
    df = pd.read_csv(other)
    df["image_path"] = [str(other.parent / p) for p in df["image_path"]]
    df["case_id"] = "B" + df["case_id"]
    df["patient_id"] = np.where(df.index == 4, "P0003", "B" + df["patient_id"])
    path = tmp_path / "real.csv"
    df.to_csv(path, index=False)
    ov = _overlap(path, source)
    assert ov.n == 1 and ov.rows["what"].tolist() == ["patient P0003"] and ov.rows["line"].tolist() == [6]


def test_ids_are_compared_as_text_with_a_float_resave_read_back():
    from liver_mm.study.external.overlap import norm_ids

    got = norm_ids(pd.Series([" 149.0", "149", "0149", "14.5", "A1", "", None], dtype=object))
    assert got.tolist()[:5] == ["149", "149", "0149", "14.5", "A1"] and got.iloc[5:].isna().all()
