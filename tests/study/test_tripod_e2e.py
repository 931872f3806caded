"""End to end on the tiny cohort: a study on a manifest that gives its own split reports it as given and not
stratified (TRIPOD+AI 12a, 13, provenance ``split_source``); ``liver-mm tune`` on a single split followed by a
cross-validated study with the chosen settings records where they came from and warns in the report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from liver_mm.cli import main
from liver_mm.study.tripod.records import SPLIT_GIVEN

pytestmark = pytest.mark.slow
ARMS = ["study.arms=[fib4,tab_logreg]", "study.reference=fib4"]


def _common(root: Path, manifest: Path) -> list[str]:
    return ["data=manifest", f"data.manifest={manifest}", "logger.log_model=false", "explain.enabled=false",
            f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"logger.artifact_root={root / 'mlartifacts'}",
            f"cache_dir={root / 'cache'}"]


def _given_split(tiny_cohort: Path, root: Path) -> Path:
    """The tiny cohort with a split column of its own: patients by rank, 3 of 5 train, 1 dev, 1 test (no
    stratification)."""
    folder = root / "cohort"
    shutil.copytree(tiny_cohort.parent, folder)
    df = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    rank = df["patient_id"].rank(method="dense").astype(int) % 5
    df["split"] = rank.map({0: "test", 1: "dev"}).fillna("train")
    df.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def test_a_manifest_split_is_reported_as_given(tmp_path, tiny_cohort):
    manifest = _given_split(tiny_cohort, tmp_path)
    out = tmp_path / "report"
    assert main(["study", *_common(tmp_path, manifest), *ARMS, "study.name=given", f"study.out_dir={out}",
                 f"hydra.sweep.dir={tmp_path / 'multirun'}"]) == 0
    rows = pd.read_csv(out / "tripod.csv", keep_default_na=False).set_index("item")
    assert "The split is the manifest's own split column, used as given" in rows.at["12a", "text"]
    assert "liver-mm made it" not in rows.at["12a", "text"]
    df = pd.read_csv(manifest, dtype=str)
    share = ", ".join(f"{p} {100 * (df.loc[df['split'] == p, 'label'] == 'malignant').mean():.1f}%"
                      for p in ("train", "dev", "test"))
    assert (f"The split is the manifest's own split column, not stratified by liver-mm: malignant share {share}."
            in rows.at["13", "text"])
    assert f"| split_source | {SPLIT_GIVEN} |" in (out / "report.md").read_text()


def test_settings_from_liver_mm_tune_are_flagged_in_a_cv_study(tmp_path, tiny_cohort, capsys):
    common = [*_common(tmp_path, tiny_cohort), "loader.batch_size=16"]
    assert main(["tune", "arm=tab_mlp", "tune.trials=2", "tune.space.network={trainer.max_epochs: 'choice(1, 2)'}",
                 *common, f"hydra.run.dir={tmp_path / 'tune'}"]) == 0
    printed = capsys.readouterr().out
    source = yaml.safe_load((tmp_path / "tune" / "tuning" / "chosen.yaml").read_text())
    assert f"Tuned on the train and dev rows of split sha256 {source['split_hash'][:12]}" in printed
    chosen = source["overrides"]
    assert any(o.startswith("model.optimizer.lr=") for o in chosen) and all(o in printed for o in chosen)
    out = tmp_path / "cv"
    assert main(["study", *common, *chosen, "study.arms=[tab_mlp]", "study.reference=tab_mlp", "cv.folds=2",
                 "study.name=cv-after-tune", f"study.out_dir={out}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]) == 0
    report = (out / "report.md").read_text()
    assert (f"**Warning: settings tuned outside this study's training data.** tab_mlp: `liver-mm tune` run "
            f"{source['tune_run']} (arm tab_mlp, split sha256 {source['split_hash'][:12]})") in report
    assert "every nodule is a test case of some fold" in report
    rows = pd.read_csv(out / "tripod.csv", keep_default_na=False).set_index("item")
    assert "for tab_mlp that search's train and dev rows are test rows of this study" in rows.at["12c", "text"]
