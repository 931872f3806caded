"""liver_mm.fileio: atomic replacement keeps the old file on error, writability checks name the folder."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from liver_mm.fileio import (
    NotWritableError,
    atomic_path,
    atomic_to_csv,
    atomic_write_bytes,
    atomic_write_text,
    check_writable_dir,
    same_file,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert target.read_text() == "two\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_error_inside_atomic_path_keeps_the_old_file(tmp_path):
    target = tmp_path / "preds.csv"
    target.write_text("old content\n")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("half a fi")
        raise RuntimeError("disk full")
    assert target.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.csv"]


def test_atomic_to_csv_round_trip(tmp_path):
    df = pd.DataFrame({"case_id": ["a", "b"], "prob": [0.25, 0.5]})
    atomic_to_csv(df, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text() == "case_id,prob\na,0.25\nb,0.5\n"


def test_new_file_mode_follows_umask_and_existing_mode_is_kept(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # not mkstemp's 0600
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    atomic_write_text(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_same_file_through_other_spellings(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "m.csv"
    f.write_text("x")
    (tmp_path / "link.csv").symlink_to(f)
    os.link(f, tmp_path / "hard.csv")
    assert same_file(f, tmp_path / "sub" / ".." / "m.csv")
    assert same_file(f, tmp_path / "link.csv")
    assert same_file(f, tmp_path / "hard.csv")
    assert not same_file(f, tmp_path / "other.csv")


def test_check_writable_dir_creates_the_folder(tmp_path):
    check_writable_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []


def test_folder_under_a_regular_file_is_not_writable(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotWritableError, match=r"file\.txt/sub: cannot create or write this folder"):
        check_writable_dir(tmp_path / "file.txt" / "sub")
    assert isinstance(NotWritableError("x"), OSError)


NOBODY = 65534


def _in_child_as_nobody(func, *args) -> str:
    """Run ``func(*args)`` in a forked child (as uid/gid 65534 when we are root, who writes anywhere);
    the child's exception text, or '' when it raised nothing."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and leave without running pytest's exit code
        code = 0
        try:
            os.close(read_fd)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            func(*args)
            msg = ""
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            msg = f"{type(exc).__name__}: {exc}"
        try:
            os.write(write_fd, msg.encode())
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        out = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return out


def test_read_only_folder_is_not_writable():
    """Also as root (CI): the check runs in a child process that drops to an unprivileged user."""
    base = Path(tempfile.mkdtemp(prefix="liver-mm-ro-"))  # not under pytest's tmp_path, which only root may enter
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert _in_child_as_nobody(os.listdir, ro) == ""  # the child can reach and read the folder ...
        err = _in_child_as_nobody(check_writable_dir, ro)  # ... but not write into it
        assert err == f"NotWritableError: {ro}: cannot create or write this folder (Permission denied)"
    finally:
        shutil.rmtree(base)
