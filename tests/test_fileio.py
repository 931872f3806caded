"""liver_mm.fileio: atomic replacement keeps the old file on error, writability checks name the folder."""

from __future__ import annotations

import os
import stat

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


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(NotWritableError, match=r"ro: cannot create or write this folder"):
            check_writable_dir(ro)
    finally:
        ro.chmod(0o755)
