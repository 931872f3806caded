"""The package works as a wheel: built from a copy of the checkout, installed into a bare folder, and run from a
folder without conf/ (the configs ship inside the package as ``liver_mm.conf``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.run_checks import assert_run_reproduced, the_split

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = ["data=synthetic", "data.n=60", "image_size=32", "trainer.max_epochs=1", "loader.batch_size=8"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, target): the wheel of a copy of the checkout (the checkout gets no build/ folder), installed
    with ``pip install --target`` (no dependencies: the test's environment supplies them)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("liver_mm", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    _ok(_run([*pip, "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(tmp / "dist"),
              str(src)], cwd=tmp))
    (wheel,) = (tmp / "dist").glob("liver_mm-*.whl")
    target = tmp / "target"
    _ok(_run([*pip, "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)], cwd=tmp))
    return wheel, target


def _env(target: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return {**env, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}


def test_wheel_holds_every_module_and_config(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "liver_mm").rglob("*.py")}
    configs = {"liver_mm/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    missing = sorted((modules | configs | {"liver_mm/conf/__init__.py"}) - names)
    assert not missing, f"not in the wheel (add the package to pyproject.toml [tool.setuptools]): {missing}"
    assert "liver_mm/conf/modalities/m3.yaml" in names and "liver_mm/conf/hydra/launcher/joblib_local.yaml" in names


@pytest.mark.slow  # about 40 s: three CLI processes and a one-epoch training
def test_wheel_runs_without_the_checkout(installed, tmp_path: Path):
    _, target = installed
    env = _env(target)
    where = _ok(_run([sys.executable, "-c", "import liver_mm, liver_mm.conf; print(liver_mm.__file__); "
                      "print(liver_mm.conf.__file__)"], cwd=tmp_path, env=env)).split()
    assert [Path(p).is_relative_to(target) for p in where] == [True, True], where
    assert not (tmp_path / "conf").exists()

    job = _ok(_run([str(target / "bin" / "liver-mm"), "train", "--cfg", "job", "modalities=m3"], cwd=tmp_path,
                   env=env))
    assert "description: image + age, sex, AST, ALT" in job and "_target_: pytorch_lightning.Trainer" in job
    hyd = _ok(_run([sys.executable, "-m", "liver_mm.cli", "study", "--cfg", "hydra", "hydra/launcher=joblib_local"],
                   cwd=tmp_path, env=env))
    assert "liver_mm.study.sweep.StudyCallback" in hyd and "JoblibLauncher" in hyd

    db = tmp_path / "mlflow.db"
    _ok(_run([sys.executable, "-m", "liver_mm.cli", "train", *TINY_TRAIN, f"logger.tracking_uri=sqlite:///{db}",
              f"logger.artifact_root={tmp_path / 'art'}"], cwd=tmp_path, env=env))
    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("liver-mm").experiment_id])
    assert run.info.status == "FINISHED"
    assert (tmp_path / ".cache" / "liver_mm").is_dir()  # caches under the working folder, not the package
    split = the_split(tmp_path / ".cache" / "liver_mm")
    assert_run_reproduced(client, run.info.run_id, split, tmp_path / "logged")
    assert len(pd.read_csv(split)) == 60  # data.n
