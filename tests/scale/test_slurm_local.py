"""What ``scripts/slurm-local.sh up`` leaves listening: every daemon of the one-node cluster on loopback only."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

RUN = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/lib/liver-mm-slurm")) / "run"
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "mysqld")


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


def test_every_cluster_daemon_listens_on_loopback_only(slurm_cluster):
    host = socket.gethostname().split(".")[0]
    resolved = socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
    if not ipaddress.ip_address(resolved).is_loopback:
        pytest.skip(f"hostname {host} resolves to {resolved}: slurm-local.sh warns that SLURM listens on every "
                    "interface (NoInAddrAny binds the hostname's address)")
    listening = _listening()
    seen = {}
    for daemon in DAEMONS:
        pid = int((RUN / f"{daemon}.pid").read_text())
        seen[daemon] = sorted(listening[i] for i in _socket_inodes(pid) if i in listening)
    assert all(seen.values()), seen  # each daemon listens somewhere
    wide = {d: a for d, addrs in seen.items() for a in addrs if not ipaddress.ip_address(a[0]).is_loopback}
    assert not wide, f"listening beyond loopback: {wide}"
