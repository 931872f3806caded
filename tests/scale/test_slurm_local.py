"""What ``scripts/slurm-local.sh`` leaves running: every daemon of the one-node cluster on loopback only, as the
user the Debian packages run it as; a node name beyond loopback refused; ``down`` stops only what ``up`` started."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.scale.conftest import SLURM_ENV, script

pytestmark = pytest.mark.cluster

D = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/lib/liver-mm-slurm"))
PIDFILES = {"slurmctld": D / "run" / "slurmctld.pid", "slurmd": D / "run" / "slurmd.pid",
            "slurmdbd": D / "run" / "slurmdbd.pid", "mysqld": D / "mysqlrun" / "mysqld.pid"}


def _listening() -> dict[int, tuple[str, int]]:
    """Socket inode -> (local address, port) of every listening TCP socket (IPv4 and IPv6), from /proc/net."""
    out = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        path = Path("/proc/net", name)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A":  # TCP_LISTEN
                continue
            hex_addr, hex_port = f[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc/net holds each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width // 2, 4))
            out[int(f[9])] = (str(ipaddress.ip_address(raw)), int(hex_port, 16))
    return out


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_parse_of_proc_net_finds_a_socket_bound_here():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("127.0.0.1", port) in _listening().values()


def _pid(daemon: str) -> int:
    return int(PIDFILES[daemon].read_text().split()[0])


def _user(pid: int) -> str:
    return subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()


def test_every_cluster_daemon_listens_on_loopback_only(slurm_cluster):
    listening = _listening()
    seen = {}
    for daemon in PIDFILES:
        seen[daemon] = sorted(listening[i] for i in _socket_inodes(_pid(daemon)) if i in listening)
    assert all(seen.values()), seen  # each daemon listens somewhere
    wide = {d: a for d, addrs in seen.items() for a in addrs if not ipaddress.ip_address(a[0]).is_loopback}
    assert not wide, f"listening beyond loopback: {wide}"


def test_daemons_run_as_the_debian_packages_run_them(slurm_cluster):
    munged = int(Path("/run/munge/munged.pid").read_text())
    users = {d: _user(_pid(d)) for d in PIDFILES} | {"munged": _user(munged)}
    assert users == {"slurmctld": "slurm", "slurmdbd": "slurm", "mysqld": "mysql", "munged": "munge",
                     "slurmd": "root"}  # slurmd starts each job as its user


def test_a_node_name_beyond_loopback_is_refused(non_loopback_address, tmp_path):
    conf = Path("/etc/slurm/slurm.conf")
    before = conf.read_bytes() if conf.exists() else None
    res = script("slurm-local.sh", "up", env={"SLURM_LOCAL_HOST": non_loopback_address,
                                              "SLURM_LOCAL_DIR": str(tmp_path / "slurm")}, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith(f"slurm-local: the node name {non_loopback_address} resolves to "
                                 f"{non_loopback_address}, not a loopback address: slurmctld, slurmd and\nslurmdbd "
                                 "would listen on every interface"), res.stderr
    assert f"echo '127.0.1.1 {non_loopback_address}' >> /etc/hosts" in res.stderr
    assert not (tmp_path / "slurm").exists()  # nothing was written or started
    assert (conf.read_bytes() if conf.exists() else None) == before


def test_down_stops_only_what_up_started(slurm_cluster):
    """A munged running before ``up`` (the machine's own) is used and left running by ``down``; the daemons ``up``
    started are stopped. The session's cluster is brought back up afterwards."""
    assert script("slurm-local.sh", "down").returncode == 0
    pidfile = Path("/run/munge/munged.pid")
    assert not _munge_answers(), "a munged the script did not start remains"
    Path("/run/munge").mkdir(exist_ok=True)
    subprocess.run(["chown", "munge:munge", "/run/munge"], check=True)
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=30)
    own = int(pidfile.read_text())
    try:
        up = script("slurm-local.sh", "up", env=SLURM_ENV)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        slurm_pids = {d: _pid(d) for d in PIDFILES}
        assert script("slurm-local.sh", "down").returncode == 0
        time.sleep(0.5)
        assert _alive(own), "down stopped the munged that was running before up"
        assert {d: _alive(p) for d, p in slurm_pids.items()} == dict.fromkeys(PIDFILES, False)
    finally:
        os.kill(own, 15)
        for _ in range(100):
            if not _alive(own) and not _munge_answers():
                break
            time.sleep(0.1)
        again = script("slurm-local.sh", "up", env=SLURM_ENV)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _munge_answers() -> bool:
    return subprocess.run("munge -n | unmunge", shell=True, capture_output=True, timeout=30).returncode == 0
