"""``liver-mm explain`` as a user runs it: on a trained m5 run (slow), on a tabular-only bundle, bad labels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from liver_mm.cli import main
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.io.schema import MODEL_COLUMNS

M5 = list(MODEL_COLUMNS["m5"])  # age, sex, ast, alt, platelets, albumin


@pytest.fixture(scope="module")
def tabular_m5_bundle(tiny_cohort: Path, tmp_path_factory) -> Path:
    """An untrained tabular-only network on the m5 features, saved as a bundle (no image branch)."""
    from liver_mm.models import build_fusion_model
    from liver_mm.serve.bundle import save_bundle

    prep = TabularPreprocessor(M5).fit(pd.read_csv(tiny_cohort))
    net_cfg = {"_target_": "liver_mm.models.build_fusion_model", "image": None,
               "tabular": {"hidden": [8], "dropout": 0.0}, "n_tabular": prep.n_features_out,
               "head_hidden": 4, "dropout": 0.0}
    torch.manual_seed(0)
    net = build_fusion_model(**{k: v for k, v in net_cfg.items() if k != "_target_"}).eval()
    spec = {"net": net_cfg, "modalities": {"name": "tab_mlp", "image": False, "features": M5}, "use_image": False,
            "features": M5, "image_size": 32, "margin": 0.0, "threshold": 0.5, "units": {}, "synthetic": True}
    return save_bundle(tmp_path_factory.mktemp("bundle") / "tab", net, spec, prep.to_dict())


def test_tabular_model_writes_importance_only(tabular_m5_bundle, tiny_cohort, tmp_path, capsys):
    out = tmp_path / "explain"
    assert main(["explain", "--model-uri", str(tabular_m5_bundle), "--manifest", str(tiny_cohort), "--out", str(out),
                 "--repeats", "2"]) == 0
    imp = pd.read_csv(out / "importance.csv")
    assert imp["feature"].tolist() == M5 and (imp["n_repeats"] == 2).all()
    assert (out / "importance.png").is_file() and not (out / "overlays").exists()
    assert "60 case(s); wrote importance.csv, importance.png" in capsys.readouterr().out


def test_bad_label_names_file_line_case_and_column(tabular_m5_bundle, tiny_cohort, tmp_path, capsys):
    folder = tmp_path / "cohort"
    shutil.copytree(tiny_cohort.parent, folder)
    df = pd.read_csv(folder / "manifest.csv", dtype={"case_id": str})
    df.loc[3, "label"] = "maybe"
    df.to_csv(folder / "manifest.csv", index=False)
    code = main(["explain", "--model-uri", str(tabular_m5_bundle), "--manifest", str(folder / "manifest.csv"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"line 5 (case {df.loc[3, 'case_id']}), column label: 'maybe' is not one of benign, malignant" in err


@pytest.mark.slow
def test_explain_the_run_of_the_issue(tmp_path):
    """`liver-mm train data=synthetic data.n=300 modalities=m5 image_size=64 trainer.max_epochs=2`, then
    `liver-mm explain --model-uri runs:/<id>/model` on that run's test cases."""
    from mlflow.tracking import MlflowClient

    exe = str(Path(sys.executable).with_name("liver-mm"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train = [exe, "train", "data=synthetic", "data.n=300", "modalities=m5", "image_size=64", "trainer.max_epochs=2",
             f"logger.tracking_uri={uri}", f"logger.artifact_root={tmp_path / 'mlartifacts'}",
             f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(train, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("liver-mm").experiment_id])
    cohort = next((tmp_path / "cache" / "cohorts").glob("*/manifest.csv"))
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype={"case_id": str})
    test_ids = pred.loc[pred["split"] == "test", "case_id"]
    df = pd.read_csv(cohort, dtype={"case_id": str}).set_index("case_id").loc[test_ids].reset_index()
    df["image_path"] = [str((cohort.parent / p).resolve()) for p in df["image_path"]]
    df.to_csv(tmp_path / "test_cases.csv", index=False)
    out = tmp_path / "explain"
    proc = subprocess.run([exe, "explain", "--model-uri", f"runs:/{run.info.run_id}/model", "--manifest",
                           str(tmp_path / "test_cases.csv"), "--out", str(out), "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    overlays = sorted(p.name for p in (out / "overlays").glob("*.png"))
    cases = pd.read_csv(out / "gradcam_cases.csv", dtype={"case_id": str})
    assert len(overlays) == min(16, len(test_ids)) == len(cases)
    assert set(cases["case_id"]) <= set(test_ids) and set(cases["label"]) <= {"benign", "malignant"}
    assert (out / "gradcam_montage.png").stat().st_size > 10_000
    assert pd.read_csv(out / "importance.csv")["feature"].tolist() == M5
    assert f"{len(test_ids)} case(s); wrote {len(overlays)} overlay(s)" in proc.stdout


def test_explain_reads_exports_like_predict():
    from liver_mm.cli import build_parser
    from liver_mm.cli._args import table_options

    args = build_parser().parse_args(["explain", "--model-uri", "runs:/x/model", "--manifest", "m.csv", "--out", "o",
                                      "--sep", ";", "--decimal", ",", "--censored", "limit", "--map", "sex=1:M,2:F"])
    opts = table_options(args)
    assert (opts.sep, opts.decimal, opts.censored, opts.maps) == (";", ",", "limit", {"sex": {"1": "M", "2": "F"}})


def test_out_never_writes_over_a_users_folder(tabular_m5_bundle, tiny_cohort, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "importance.csv").write_text("my own table\n")
    args = ["explain", "--model-uri", str(tabular_m5_bundle), "--manifest", str(tiny_cohort), "--repeats", "1"]
    assert main([*args, "--out", str(mine)]) == 1
    assert "did not write" in capsys.readouterr().err
    assert (mine / "importance.csv").read_text() == "my own table\n"
    own = tmp_path / "own"
    assert main([*args, "--out", str(own)]) == 0 and main([*args, "--out", str(own)]) == 0  # its own folder: rerun
