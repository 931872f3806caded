"""Which server-side files a scoring request may name: only those under a configured image root.

By default a served model reads images only inline (``image_b64``). When it is started with
:data:`IMAGE_ROOT_ENV` set to a folder, a request's ``image_path`` is accepted when it resolves
(``..`` and symlinks followed) to a file inside that folder; relative paths are taken from the root.
A path outside the root gets the same answer whether or not the file exists, so a request cannot
probe the server's disk.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_ROOT_ENV = "LIVER_MM_SERVE_IMAGE_ROOT"


class ImagePathRefused(ValueError):
    """An ``image_path`` the server does not read (no image root, or outside it)."""


def image_root_from_env() -> Path | None:
    """The resolved folder named by ``$LIVER_MM_SERVE_IMAGE_ROOT``, None when unset or empty;
    raises ``NotADirectoryError`` naming it when it is not an existing folder."""
    value = os.environ.get(IMAGE_ROOT_ENV, "").strip()
    if not value:
        return None
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{IMAGE_ROOT_ENV}={value}: not an existing folder (it should hold the "
                                 "images that requests may name in image_path)")
    return root


def resolve_request_path(path: str, root: Path | None) -> Path:
    """The real path of a request's ``image_path`` under ``root`` (resolved); raises
    :class:`ImagePathRefused` without touching the file when there is no root or it lies outside."""
    if root is None:
        raise ImagePathRefused("image_path is not accepted by this server: send the image inline as "
                               f"image_b64 (or start the server with {IMAGE_ROOT_ENV}=<image folder>)")
    root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(root / path))  # an absolute path replaces root
    if not real.is_relative_to(root):
        raise ImagePathRefused("image_path must name a file under the server's image folder "
                               f"({IMAGE_ROOT_ENV}); send other images inline as image_b64")
    return real


def relative_name(real: Path, root: Path) -> str:
    """How an answer names a file under ``root``: its path relative to the (resolved) root, never the
    server's absolute path."""
    try:
        return Path(real).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return Path(real).name
