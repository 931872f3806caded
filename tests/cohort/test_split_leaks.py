"""One leak rule for a user-given split (liver_mm.cohort.grouping.split_leaks): `liver-mm split` refuses what
`liver-mm validate` (and so training) reports as an error, with the same words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.cohort.validate import ManifestValidationError


@pytest.fixture()
def given_split(tiny_cohort, tmp_path) -> tuple[Path, pd.DataFrame]:
    """A copy of the tiny cohort with a split column that keeps every patient in one part."""
    root = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, root)
    df = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    df["split"] = pd.Series(["train", "train", "dev", "test"])[pd.factorize(df["patient_id"])[0] % 4].to_numpy()
    df.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv", df


def _leak_patient(path: Path, df: pd.DataFrame) -> str:
    """Put the second nodule of the two-nodule patient into another part; the expected leak text."""
    pid = df["patient_id"].value_counts().index[0]
    a, b = df.index[df["patient_id"] == pid]
    other = "test" if df.at[a, "split"] != "test" else "train"
    df.loc[b, "split"] = other
    df.to_csv(path, index=False)
    return f"patient {pid} is in several splits ({df.at[a, 'split']}: line {a + 2}; {other}: line {b + 2})"


def test_split_refuses_a_patient_in_two_parts(given_split, tmp_path, capsys):
    path, df = given_split
    assert main(["split", str(path), "--out", str(tmp_path / "ok.csv")]) == 0  # no leak: kept as given
    leak = _leak_patient(path, df)
    capsys.readouterr()
    assert main(["split", str(path), "--out", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert f"{path}, column split: the given split leaks: {leak}: split by patient" in err
    assert not (tmp_path / "out.csv").exists()


def test_split_refuses_an_identical_image_in_two_parts(given_split, tmp_path, capsys):
    path, df = given_split
    a = 0
    b = next(i for i in df.index if df.at[i, "split"] != df.at[a, "split"] and df.at[i, "label"] == df.at[a, "label"])
    shutil.copyfile(path.parent / df.at[a, "image_path"], path.parent / df.at[b, "image_path"])
    assert main(["split", str(path), "--out", str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    parts = sorted([(a, df.at[a, "split"]), (b, df.at[b, "split"])])
    where = "; ".join(f"{s}: line {i + 2}" for i, s in parts)
    assert f"the same image (pixel-identical) is in several splits ({where}): keep identical images" in err


def test_training_refuses_the_same_leak_with_the_same_words(given_split, tmp_path):
    from liver_mm.cohort.prepare import prepare_cohort
    from tests.training.conftest import compose_train

    path, df = given_split
    leak = _leak_patient(path, df)
    cfg = compose_train(["data=manifest", f"data.manifest={path}"], tmp_path)
    with pytest.raises(ManifestValidationError) as exc:
        prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    assert "split_leak_patient" in exc.value.report.codes("error")
    assert f"{leak}: split by patient" in str(exc.value)
