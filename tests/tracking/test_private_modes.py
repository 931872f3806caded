"""Patient-linked outputs (predictions with case ids and labels, configs, models, the embedded MLflow store) are
the owner's only: new folders 0700, files 0600, whatever the umask the user started with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from liver_mm.fileio import check_writable_dir, private_umask
from liver_mm.tracking.store import experiment_id, open_client

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))


def _open_to_others(root: Path) -> list[str]:
    """``mode path`` of every file or folder below ``root`` with any group or other bit."""
    return [f"{stat.S_IMODE(p.lstat().st_mode):o} {p.relative_to(root)}" for p in sorted(root.rglob("*"))
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077]


@pytest.fixture
def open_umask():
    """A permissive umask (022, the usual default) for the test, restored afterwards."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_embedded_store_and_artifact_root_are_private_whatever_the_umask(tmp_path, open_umask):
    client = open_client(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    experiment_id(client, "liver-mm", str(tmp_path / "mlartifacts"))
    check_writable_dir(tmp_path / "out" / "studies")
    modes = {p: stat.S_IMODE((tmp_path / p).stat().st_mode)
             for p in ("store", "store/mlflow.db", "store/mlflow.db.lock", "mlartifacts", "out/studies")}
    assert modes == {"store": 0o700, "store/mlflow.db": 0o600, "store/mlflow.db.lock": 0o600,
                     "mlartifacts": 0o700, "out/studies": 0o700}


def test_private_umask_default_and_override(monkeypatch, open_umask):
    monkeypatch.delenv("LIVER_MM_UMASK", raising=False)
    assert private_umask() == 0o077 and os.umask(0o022) == 0o077
    monkeypatch.setenv("LIVER_MM_UMASK", "027")
    assert private_umask() == 0o027 and os.umask(0o022) == 0o027
    monkeypatch.setenv("LIVER_MM_UMASK", "rw")
    with pytest.raises(ValueError, match=r"^LIVER_MM_UMASK='rw' is not an octal umask such as 077 or 027$"):
        private_umask()


@pytest.mark.slow
def test_what_a_study_writes_is_the_owners_only(tmp_path, tiny_cohort):
    """A one-arm study with every default location (./mlflow.db, ./mlartifacts, outputs/, multirun/, .cache/),
    started from a shell whose umask is 022: nothing it writes has a group or other bit."""
    cmd = [LIVER_MM, "study", "data=manifest", f"data.manifest={tiny_cohort}", "study.arms=[tab_logreg]",
           "study.reference=tab_logreg", "study.name=modes"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("LIVER_MM_UMASK", None)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, umask=0o022)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    written = {p.name for p in tmp_path.iterdir()}
    assert {"mlflow.db", "mlartifacts", "outputs"} <= written, written
    assert list((tmp_path / "outputs" / "studies" / "modes").rglob("*predictions*.csv"))
    assert _open_to_others(tmp_path) == []
