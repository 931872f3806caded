"""A study writes only a folder it owns: never the user's folder that study.out_dir happens to name."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from liver_mm.cli import main
from liver_mm.study.parent import MARKER


def _args(tmp_path, cohort, out) -> list[str]:
    return ["study", "data=manifest", f"data.manifest={cohort}", "study.arms=[tab_logreg]", "study.reference=tab_logreg",
            f"study.out_dir={out}", f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"logger.artifact_root={tmp_path / 'art'}", f"cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}"]


def test_a_foreign_folder_is_refused_before_training_and_left_intact(tmp_path, tiny_cohort, capfd):
    out = tmp_path / "my-cohort"
    out.mkdir()
    (out / "manifest.csv").write_text("the user's own file\n")
    with pytest.raises(SystemExit) as exc:
        main(_args(tmp_path, tiny_cohort, out))
    assert exc.value.code == 1
    text = "".join(capfd.readouterr())
    assert MARKER in text and str(out) in text
    assert [p.name for p in out.iterdir()] == ["manifest.csv"]
    assert (out / "manifest.csv").read_text() == "the user's own file\n"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("liver-mm")
    assert exp is None or not client.search_runs([exp.experiment_id], "tags.is_study_parent = 'false'")


@pytest.mark.slow  # two real studies
def test_the_study_refreshes_its_own_folder(tmp_path, tiny_cohort):
    out = tmp_path / "report"
    assert main(_args(tmp_path, tiny_cohort, out)) == 0
    assert (out / MARKER).is_file() and (out / "report.md").is_file()
    (out / "stale.txt").write_text("left by an earlier report")
    assert main(_args(tmp_path, tiny_cohort, out)) == 0  # resumed: the folder is ours, replaced whole
    assert not (out / "stale.txt").exists() and (out / "report.md").is_file()
