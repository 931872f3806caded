"""Process-level speed settings applied once at start-up: malloc tuning, the intra-op thread count and a quick
interpreter exit."""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import gc
import importlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# mallopt parameter ids (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: processes sharing this machine's cores, for runs started side by side outside a Hydra launcher
JOBS_ENV = "LIVER_MM_CONCURRENT_JOBS"
CGROUP = Path("/sys/fs/cgroup")


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


_QUICK_EXIT: list[bool] = []


def quick_exit() -> bool:
    """When this process exits (an ``atexit`` handler), freeze the garbage collector's objects (``gc.freeze``):
    the interpreter's final collections then skip the ~640,000 objects that torch, Lightning, MLflow and pandas
    leave, instead of traversing them several times. Registered once per process; True when this call registered
    it.

    Measured on this project's 2-core machine under load (a process importing what a study's fold job imports):
    its exit took 2.8 CPU-s (7 s wall), 0.4 CPU-s (1 s wall) with the freeze; each SLURM job is one such process.
    Every exit handler still runs and objects are still freed by reference counting; only garbage held in
    reference cycles is left to the operating system, which frees the process's memory at once.
    """
    if _QUICK_EXIT:
        return False
    _QUICK_EXIT.append(True)
    atexit.register(gc.freeze)
    return True


def import_frozen(*modules: str) -> bool:
    """Import ``modules`` with the garbage collector paused, then freeze every object alive (``gc.freeze``): the
    import makes no full collections over a heap that grows to ~640,000 objects (torch, Lightning, MLflow,
    pandas), and the collections of the run that follows skip those objects, which live as long as the process.
    The garbage made before is collected first (a cheap pass over a small heap), so it is freed, not frozen; where
    every module is imported already (a later job of the same process), nothing is done. True when it imported.

    Measured on this project's 2-core machine under load: importing what a study's fold job imports took 14 CPU-s,
    10.5 without the collector's passes (9 full collections, 707 objects freed). Called at the start of each Hydra
    job (its own process under SLURM).
    """
    todo = [name for name in modules if name not in sys.modules]
    if not todo:
        return False
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for name in todo:
            importlib.import_module(name)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return True


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """CPUs this container may use by its CFS quota (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``);
    None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def affinity() -> set[int]:
    """The CPU ids this process may run on (all CPUs where affinity is not supported)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def slurm_cpus(env: Mapping[str, str] | None = None) -> int | None:
    """CPUs SLURM allotted to each task of this job: ``SLURM_CPUS_PER_TASK``, else this node's
    ``SLURM_CPUS_ON_NODE`` shared by ``SLURM_NTASKS_PER_NODE`` tasks (default 1); None outside a SLURM job.

    A cluster that does not bind tasks to CPUs (``TaskPlugin=task/none``) leaves a job's affinity at the whole
    node: without this count a job given one CPU would run one intra-op thread per core of the node.
    """
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        return None
    try:
        if env.get("SLURM_CPUS_PER_TASK"):
            return max(1, int(env["SLURM_CPUS_PER_TASK"]))
        if env.get("SLURM_CPUS_ON_NODE"):
            tasks = int(env.get("SLURM_NTASKS_PER_NODE") or 1)
            return max(1, int(env["SLURM_CPUS_ON_NODE"]) // max(1, tasks))
    except ValueError:
        log.warning("SLURM CPU counts not understood (SLURM_CPUS_PER_TASK=%r, SLURM_CPUS_ON_NODE=%r, "
                    "SLURM_NTASKS_PER_NODE=%r): threads follow the CPU affinity", env.get("SLURM_CPUS_PER_TASK"),
                    env.get("SLURM_CPUS_ON_NODE"), env.get("SLURM_NTASKS_PER_NODE"))
    return None


def available_cores(cpus: set[int] | None = None, quota: float | None = None, allotted: int | None = None) -> int:
    """Cores this process can actually use: its CPU affinity, capped by the cgroup quota (rounded up) and by the
    CPUs its SLURM job was allotted, >= 1.

    Defaults read the running process (``os.sched_getaffinity``, :func:`cgroup_cpu_limit`, :func:`slurm_cpus`);
    not ``os.cpu_count()``, which counts the host's CPUs inside a container or a ``taskset``.
    """
    n = len(affinity() if cpus is None else cpus)
    quota = cgroup_cpu_limit() if quota is None else quota
    if quota is not None and quota > 0:
        n = min(n, math.ceil(quota - 1e-9))
    allotted = slurm_cpus() if allotted is None else allotted
    if allotted:
        n = min(n, allotted)
    return max(1, n)


def _cpu_times(cpus: set[int], stat: Path) -> tuple[float, float]:
    """(idle, total) jiffies summed over ``cpus`` from /proc/stat's per-CPU lines."""
    idle = total = 0.0
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [float(v) for v in fields[:8]]
        idle += values[3] + values[4]  # idle + iowait
        total += sum(values)
    return idle, total


def busy_cores(cpus: set[int] | None = None, window_s: float = 0.25, stat: Path = Path("/proc/stat"),
               sleep: Callable[[float], None] = time.sleep) -> float:
    """CPUs of ``cpus`` (default: this process's affinity) kept busy by others over ``window_s`` seconds,
    from /proc/stat; 0.0 where /proc/stat is unreadable. This process sleeps meanwhile, so it is not counted."""
    cpus = affinity() if cpus is None else cpus
    try:
        idle0, total0 = _cpu_times(cpus, stat)
        sleep(window_s)
        idle1, total1 = _cpu_times(cpus, stat)
    except (OSError, ValueError):
        return 0.0
    if total1 <= total0:
        return 0.0
    return len(cpus) * (1.0 - (idle1 - idle0) / (total1 - total0))


def env_jobs() -> int | None:
    """``LIVER_MM_CONCURRENT_JOBS`` as an int >= 1, or None when unset; a clear error when not a number."""
    raw = os.environ.get(JOBS_ENV)
    if raw is None or raw.strip() == "":
        return None
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"{JOBS_ENV}={raw!r}: expected the number of processes sharing the cores") from None


def threads_per_process(n_jobs: int | None = None, cores: int | None = None, busy: float | None = 0.0) -> int:
    """Intra-op threads for one of ``n_jobs`` processes sharing ``cores`` cores: ``max(1, cores // n_jobs)``,
    and with ``busy`` > 0 at most ``round(cores - busy)`` (cores other work keeps busy).

    n_jobs: concurrent processes (default ``LIVER_MM_CONCURRENT_JOBS``, else 1); cores: default
    :func:`available_cores`; busy: default 0 (the count depends on the machine only, so results repeat
    bit for bit); None samples :func:`busy_cores` once (``trainer.num_threads=free``). A parallel region
    waits for its slowest thread, and a thread sharing its core with a busy process loses whole time slices;
    :func:`bounded_openmp_spin` keeps the waiting threads from spinning long meanwhile.
    """
    jobs = max(1, n_jobs or env_jobs() or 1)
    cores = available_cores() if cores is None else max(1, cores)
    share = max(1, cores // jobs)
    if share == 1:
        return 1
    busy = busy_cores() if busy is None else busy
    threads = max(1, min(share, round(cores - busy)))
    if threads < share:
        log.info("%.1f of %d cores busy with other work: %d intra-op threads instead of %d", busy, cores,
                 threads, share)
    return threads


#: libgomp's spin-wait before a waiting thread sleeps (its default is 300,000 spins; ACTIVE: 30 billion)
OPENMP_SPIN = "1000"


def bounded_openmp_spin() -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`OPENMP_SPIN` (unless the user set it or ``OMP_WAIT_POLICY``): OpenMP
    threads waiting at a barrier spin briefly, then sleep. True when it takes effect (torch not loaded yet).

    A parallel region waits for its slowest thread; beside a busy neighbour the thread sharing its core
    loses whole time slices while its sibling spins. Measured on this project's 2-core machine
    (MobileNetV2 + MLP, 96 px, batch 32, 2 threads, one spinning process pinned to a core;
    tests/benchmarks/bench_threads.py): libgomp's default 281/289 img/s idle, 75/77 beside the neighbour
    (0.27 of idle); 1,000 spins 259/252 idle (-10%), 111/110 beside it (0.43, +45%); ``OMP_WAIT_POLICY=PASSIVE``
    185 idle (-35%), 130 beside it. Waiting changes no arithmetic: results are bit-identical.
    Call before anything imports torch (the CLI entry point).
    """
    import sys

    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)
    return "torch" not in sys.modules
