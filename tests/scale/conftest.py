"""A real one-node SLURM cluster and a real MLflow tracking server on PostgreSQL, started by the project's scripts.

They need root (apt-get, daemons). In CI (``CI=true``) a cluster or server that cannot be installed or started
FAILS the tests; on a developer machine without root they are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def script(name: str, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_cluster():
    """``scripts/slurm-local.sh up`` (installs once); stopped at the end unless it was up before."""
    was_up = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True,
                                                                  timeout=30).returncode == 0
    if not was_up and os.geteuid() != 0:
        unavailable("a local SLURM cluster needs root (apt-get install slurm-wlm munge; daemons)")
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        unavailable("hydra-submitit-launcher is not installed: pip install -e '.[slurm]'")
    if not was_up:
        res = script("slurm-local.sh", "up")
        if res.returncode != 0:
            unavailable(f"scripts/slurm-local.sh up failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    yield
    if not was_up:
        script("slurm-local.sh", "down")


class Server:
    """The MLflow server of :func:`mlflow_server`: its URI and up/down."""

    def __init__(self, folder: Path, port: int, pg_port: int):
        self.env = {"MLFLOW_SERVER_DIR": str(folder), "MLFLOW_PORT": str(port), "MLFLOW_PG_PORT": str(pg_port),
                    "MLFLOW_WORKERS": "1", "PYTHON": sys.executable}
        self.uri = f"http://127.0.0.1:{port}"

    def up(self) -> None:
        res = script("mlflow-server.sh", "up", env=self.env)
        if res.returncode != 0:
            unavailable(f"scripts/mlflow-server.sh up failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")

    def down(self) -> None:
        res = script("mlflow-server.sh", "down", env=self.env)
        assert res.returncode == 0, res.stderr


@pytest.fixture(scope="session")
def mlflow_server():
    """A fresh tracking server (own PostgreSQL cluster, own artifact folder, free ports) for this session."""
    if os.geteuid() != 0 and not shutil.which("pg_ctl"):
        unavailable("the MLflow server test needs PostgreSQL (apt-get install postgresql: root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install -e '.[server]'")
    folder = Path(tempfile.mkdtemp(prefix="liver-mm-mlflow-"))
    folder.chmod(0o755)  # the postgres user reads its data folder below it
    server = Server(folder, free_port(), free_port())
    server.up()
    yield server
    server.down()
    shutil.rmtree(folder, ignore_errors=True)
