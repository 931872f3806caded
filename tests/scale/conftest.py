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


# the tests' own node name: `localhost` resolves to 127.0.0.1 on every machine, so the cluster stays on loopback
# (and the loopback test runs) whatever this machine's hostname resolves to
SLURM_ENV = {"SLURM_LOCAL_HOST": "localhost"}


@pytest.fixture(scope="session")
def slurm_cluster():
    """``scripts/slurm-local.sh up`` (installs once; node name ``localhost``); stopped at the end unless it was up
    before."""
    was_up = shutil.which("sinfo") is not None and subprocess.run(["sinfo", "-h"], capture_output=True,
                                                                  timeout=30).returncode == 0
    if not was_up and os.geteuid() != 0:
        unavailable("a local SLURM cluster needs root (apt-get install slurm-wlm munge; daemons)")
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        unavailable("hydra-submitit-launcher is not installed: pip install -e '.[slurm]'")
    if not was_up:
        res = script("slurm-local.sh", "up", env=SLURM_ENV)
        if res.returncode != 0:
            unavailable(f"scripts/slurm-local.sh up failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    yield
    if not was_up:
        script("slurm-local.sh", "down")


class Server:
    """The MLflow server of :func:`mlflow_server`: its URI and up/down."""

    def __init__(self, folder: Path, port: int, pg_port: int, host: str = "127.0.0.1", auth: str = ""):
        self.folder, self.port, self.pg_port = folder, port, pg_port
        self.env = {"MLFLOW_SERVER_DIR": str(folder), "MLFLOW_PORT": str(port), "MLFLOW_PG_PORT": str(pg_port),
                    "MLFLOW_WORKERS": "1", "PYTHON": sys.executable, "MLFLOW_HOST": host, "MLFLOW_AUTH": auth}
        self.uri = f"http://{host}:{port}"

    def up(self) -> subprocess.CompletedProcess:
        res = script("mlflow-server.sh", "up", env=self.env)
        if res.returncode != 0:
            unavailable(f"scripts/mlflow-server.sh up failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
        return res

    def down(self) -> None:
        res = script("mlflow-server.sh", "down", env=self.env)
        assert res.returncode == 0, res.stderr


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def probe_user() -> str:
    """A local user with no secret and no group of the services (created once, system account, no login)."""
    name = "liver-mm-probe"
    if os.geteuid() != 0:
        unavailable("creating a second local user needs root")
    if _run("id", "-u", name).returncode != 0:
        res = _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
        if res.returncode != 0:
            unavailable(f"useradd {name} failed: {res.stderr}")
    return name


@pytest.fixture(scope="session")
def non_loopback_address():
    """An IPv4 address of this machine beyond loopback: a global address of an interface it has, else one on a
    dummy interface made for the session (removed afterwards). Traffic to it stays on this machine."""
    out = _run("ip", "-4", "-o", "addr", "show", "scope", "global").stdout.split()
    found = [w.split("/")[0] for i, w in enumerate(out) if i and out[i - 1] == "inet"]
    if found:
        yield found[0]
        return
    made = [_run("ip", "link", "add", "lmmtest0", "type", "dummy"), _run("ip", "addr", "add", "10.213.77.1/32",
                                                                         "dev", "lmmtest0"),
            _run("ip", "link", "set", "lmmtest0", "up")]
    if any(r.returncode for r in made):
        _run("ip", "link", "del", "lmmtest0")
        unavailable("no address beyond loopback, and no dummy interface could be made: "
                    + "; ".join(r.stderr.strip() for r in made))
    yield "10.213.77.1"
    _run("ip", "link", "del", "lmmtest0")


@pytest.fixture(scope="session")
def mlflow_server():
    """A fresh tracking server (own PostgreSQL cluster, own artifact folder, free ports) for this session."""
    if os.geteuid() != 0 and not shutil.which("pg_ctl"):
        unavailable("the MLflow server test needs PostgreSQL (apt-get install postgresql: root)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install -e '.[server]'")
    folder = Path(tempfile.mkdtemp(prefix="liver-mm-mlflow-"))  # the script makes it 0711
    server = Server(folder, free_port(), free_port())
    server.up()
    yield server
    server.down()
    shutil.rmtree(folder, ignore_errors=True)
