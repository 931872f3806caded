"""Writing files without losing what is there: atomic replacement and writability checks (stdlib + pandas).

What a command writes (predictions with case ids and labels, configs, models, the embedded MLflow store) is
readable by its owner only: :func:`private_umask` (the ``liver-mm`` entry point applies it) makes every new file
0600 and every new folder 0700; ``LIVER_MM_UMASK`` (octal, e.g. ``027`` to share with one's group) replaces ``077``.

A file written through :func:`atomic_path` (or the ``atomic_*`` helpers) appears complete or not at
all: the content goes to a temporary file in the same folder, which then replaces the target in one
``os.replace``; on an error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """Set the process umask to ``$LIVER_MM_UMASK`` (octal) or ``077`` (new files 0600, folders 0700), inherited
    by every worker and SLURM job the process starts; returns it. A value that is not octal is an error naming it."""
    text = os.environ.get("LIVER_MM_UMASK", "").strip()
    try:
        mask = int(text, 8) if text else PRIVATE_UMASK
    except ValueError:
        raise ValueError(f"LIVER_MM_UMASK={text!r} is not an octal umask such as 077 or 027") from None
    if not 0 <= mask <= 0o777:
        raise ValueError(f"LIVER_MM_UMASK={text!r} is not an octal umask such as 077 or 027")
    os.umask(mask)
    return mask


class NotWritableError(OSError):
    """A folder that cannot be created or written."""


def check_writable_dir(path: str | Path) -> None:
    """Create ``path`` if needed (0700) and prove it writable; raise :class:`NotWritableError` naming it."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise NotWritableError(f"{path}: cannot create or write this folder ({exc.strerror or exc})") from None


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file: equal once resolved (``..``, symlinks) or, when both
    exist, the same inode (hard links, bind mounts)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _new_temp(path: Path) -> Path:
    """An empty new file beside ``path``: mode from the umask (as a plain ``open`` would give), or the
    mode of ``path`` when it exists."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            if path.exists():
                os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
        finally:
            os.close(fd)
        return tmp


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` at once (after an
    fsync), on error it is removed and ``path`` is untouched."""
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_private(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(fh)`` into ``path`` atomically, the file mode 0600 whatever the umask (a cache of patient-derived
    pixels or weights: readable by its owner only, even where ``LIVER_MM_UMASK`` shares other outputs)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_to_csv(df: pd.DataFrame, path: str | Path, **to_csv: Any) -> None:
    """``df.to_csv(path, index=False, **to_csv)``, atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **{"index": False, **to_csv})


__all__ = ["PRIVATE_UMASK", "NotWritableError", "atomic_path", "atomic_to_csv", "atomic_write_bytes", "atomic_write_text",
           "check_writable_dir", "private_umask", "same_file"]
