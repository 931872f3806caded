"""Process-level speed settings applied once at start-up (CPU training)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameter ids (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc() -> bool:
    """Keep large tensors' memory in the heap instead of mmap/munmap per allocation.

    glibc's defaults return and re-request freed activation buffers every step, which
    halves CPU training speed at 224 px. Same effect as ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_TOP_PAD_``. Returns False where not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = True
    ok &= bool(mallopt(_M_MMAP_THRESHOLD, 2**31 - 1))  # mallopt takes an int: the nearest to the 4 GiB env value
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    ok &= bool(mallopt(_M_TOP_PAD, 1024 * 1024 * 1024))
    return ok
