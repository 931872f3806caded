"""`liver-mm study dictionary=lesions.yaml` end to end on a small synthetic lesion cohort (results synthetic): the
study runs the dictionary's steps, and the test AUC rises where the generator put signal (age moderate; shape,
margin, birads strong) and not where it put none (echogenicity, halo; the frames carry no signal)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from liver_mm.synth.lesion_cohort import write_lesion_cohort
from liver_mm.synth.lesions import lesions_dictionary

STEPS = ["image", "age", "descriptors", "null_descriptors"]


@pytest.mark.slow  # six arms on 360 lesions at 32 px, 4 epochs (about 4-5 minutes on 2 CPU cores)
def test_lesion_study_runs_its_steps(tmp_path: Path) -> None:
    manifest = write_lesion_cohort(tmp_path / "cohort", n=360, seed=0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "liver_mm.cli", "study", "data=manifest", f"data.manifest={manifest}",
           f"dictionary={lesions_dictionary().source}", "image_size=32", "trainer.max_epochs=4",
           "loader.batch_size=32", "logger.log_model=false", "image_encoder=mobilenetv2_050",
           "split.fractions=[0.6,0.1,0.3]", "study.name=lesions", f"study.out_dir={out}",
           f"logger.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", f"logger.artifact_root={tmp_path / 'art'}",
           f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]

    t3 = pd.read_csv(out / "table3.csv").set_index("arm")
    assert list(t3.index) == [*STEPS, "tab_mlp", "tab_logreg"]
    assert t3.loc["null_descriptors", "description"] == (
        "image + age, shape, margin, birads, echogenicity, halo")
    assert t3.loc["tab_mlp", "description"].startswith("clinical (null_descriptors features)")
    d = pd.read_csv(out / "delong.csv").set_index("comparison")
    rise = {c: (d.loc[c, "auc_b"] - d.loc[c, "auc_a"], d.loc[c, "p_value"], d.loc[c, "family"])
            for c in ("image vs age", "age vs descriptors", "descriptors vs null_descriptors")}
    print({c: f"AUC {d.loc[c, 'auc_a']:.3f} -> {d.loc[c, 'auc_b']:.3f}, DeLong p {p:.3g}" for c, (_, p, _) in rise.items()})
    assert {f for _, _, f in rise.values()} == {"steps"}  # the Holm family of the steps
    assert rise["image vs age"][0] > 0.05  # moderate signal: the AUC rises
    assert rise["age vs descriptors"][0] > 0.2 and rise["age vs descriptors"][1] < 0.001  # strong signal
    assert rise["descriptors vs null_descriptors"][0] < 0.05 and rise["descriptors vs null_descriptors"][1] > 0.05
