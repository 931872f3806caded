"""What ``scripts/mlflow-server.sh`` opens, read as a security reviewer would: PostgreSQL refuses every local user
but the server's own, the server runs unprivileged with private folders, no secret reaches a command line or a log,
and a bind beyond loopback needs MLflow's basic-auth app (401 without credentials)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.scale.conftest import Server, free_port, script
from tests.scale.test_slurm_local import _listening

pytestmark = pytest.mark.cluster
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _psql(user: str, *args: str) -> subprocess.CompletedProcess:
    psql = shutil.which("psql") or "/usr/bin/psql"
    return subprocess.run(["runuser", "-u", user, "--", psql, "-X", "-w", "-d", "mlflow", "-tAc", "select 1", *args],
                          capture_output=True, text=True, timeout=60)


def _proc_status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_postgres_refuses_a_local_user_without_the_servers_identity(mlflow_server, probe_user):
    """Trust authentication on 127.0.0.1 made every local user a superuser (COPY ... TO PROGRAM). Now: no TCP
    listener at all, and on the socket peer authentication refuses anyone who is not the role's OS user."""
    sock = mlflow_server.folder / "pgsock"
    port = str(mlflow_server.pg_port)
    tcp = _psql(probe_user, "-h", "127.0.0.1", "-p", port, "-U", "postgres")
    assert tcp.returncode != 0 and "Connection refused" in tcp.stderr, tcp.stdout + tcp.stderr
    assert mlflow_server.pg_port not in {p for _a, p in _listening().values()}
    for role in ("postgres", "mlflow"):
        res = _psql(probe_user, "-h", str(sock), "-p", port, "-U", role)
        assert res.returncode != 0 and f'Peer authentication failed for user "{role}"' in res.stderr, res.stderr
    # the server's own user gets in, as a role that is no superuser: no COPY ... TO PROGRAM
    own = _psql("mlflow", "-h", str(sock), "-p", port, "-U", "mlflow")
    assert own.stdout.strip() == "1", own.stderr
    copy = subprocess.run(["runuser", "-u", "mlflow", "--", "psql", "-X", "-w", "-h", str(sock), "-p", port, "-U",
                           "mlflow", "-d", "mlflow", "-c", "copy (select 1) to program 'true'"],
                          capture_output=True, text=True, timeout=60)
    assert copy.returncode != 0 and "must be superuser or have privileges of the pg_execute_server_program role" in \
        copy.stderr, copy.stderr


def test_server_runs_unprivileged_and_what_it_stores_is_its_own(mlflow_server, tmp_path):
    pid = int((mlflow_server.folder / "mlflow.pid").read_text())
    status = _proc_status(pid)
    uid = int(status["Uid"].split()[0])
    assert uid != 0 and subprocess.run(["id", "-un", str(uid)], capture_output=True, text=True).stdout.strip() == \
        "mlflow"
    assert status["Umask"] == "0077"
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("modes") or client.get_experiment(client.create_experiment("modes"))
    run = client.create_run(exp.experiment_id)
    src = tmp_path / "predictions.csv"
    src.write_text("case_id,label,prob\nc1,1,0.9\n")
    src.chmod(0o644)
    client.log_artifact(run.info.run_id, str(src))
    client.set_terminated(run.info.run_id)
    stored = list((mlflow_server.folder / "artifacts").rglob("predictions.csv"))
    assert len(stored) == 1
    open_to_others = [f"{stat.S_IMODE(p.stat().st_mode):o} {p}" for p in [stored[0], *stored[0].parents]
                      if mlflow_server.folder in p.parents and stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert open_to_others == []
    for name in ("artifacts", "log", "auth", "home", "pg"):
        assert stat.S_IMODE((mlflow_server.folder / name).stat().st_mode) == 0o700, name


def test_a_bind_beyond_loopback_without_authentication_is_refused(non_loopback_address, tmp_path):
    server = Server(tmp_path / "open", free_port(), free_port(), host=non_loopback_address)
    res = script("mlflow-server.sh", "up", env=server.env, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"mlflow-server: MLFLOW_HOST={non_loopback_address} is beyond loopback: every "
                                  "machine that reaches it could read and delete every run. Set MLFLOW_AUTH=basic "
                                  "(MLflow's basic-auth app, accounts with passwords) or bind 127.0.0.1")
    assert not (tmp_path / "open").exists()  # nothing was started


@pytest.fixture(scope="module")
def auth_server(non_loopback_address):
    """A second server with MLflow's basic-auth app, bound to an address beyond loopback: (server, output of its
    first start, output of a second start)."""
    folder = Path(tempfile.mkdtemp(prefix="liver-mm-mlflow-auth-"))
    server = Server(folder, free_port(), free_port(), host=non_loopback_address, auth="basic")
    first = server.up()
    second = server.up()  # already running: says so without the password
    yield server, first.stdout + first.stderr, second.stdout + second.stderr
    server.down()
    shutil.rmtree(folder, ignore_errors=True)


def test_rest_api_beyond_loopback_answers_401_without_credentials(auth_server):
    server, first, second = auth_server
    password = next(line.split("=", 1)[1].strip() for line in
                    (server.folder / "auth" / "basic_auth.ini").read_text().splitlines()
                    if line.startswith("admin_password"))
    assert _get(server.uri + SEARCH) == 401
    assert _get(server.uri + SEARCH, ("admin", "not-" + password)) == 401
    assert _get(server.uri + SEARCH, ("admin", password)) == 200
    # the admin password: printed at the first start only, in a 0600 file of the server's user, on no command line
    # and in no log
    assert f"password {password} (shown this once" in first and password not in second
    ini = server.folder / "auth" / "basic_auth.ini"
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600 and ini.owner() == "mlflow"
    cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    assert not [c for c in cmdlines if password.encode() in c]
    logs = [p for p in server.folder.rglob("*.log")]
    assert logs and not [p for p in logs if password in p.read_text(errors="replace")]


def test_a_second_user_gets_an_account(auth_server):
    server, *_ = auth_server
    res = script("mlflow-server.sh", "add-user", "bob", env=server.env, timeout=120)
    assert res.returncode == 0, res.stderr
    line = res.stdout + res.stderr
    password = line.split("account bob: password ", 1)[1].split(" ", 1)[0]
    assert _get(server.uri + SEARCH, ("bob", password)) == 200
    assert _get(server.uri + SEARCH, ("bob", password + "x")) == 401
