"""Cores a process can use (affinity, cgroup quota), cores others keep busy, threads per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from liver_mm import runtime


def test_cgroup_v2_quota_and_unlimited(tmp_path: Path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert runtime.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert runtime.cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_and_unlimited(tmp_path: Path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert runtime.cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert runtime.cgroup_cpu_limit(tmp_path) is None
    assert runtime.cgroup_cpu_limit(tmp_path / "missing") is None


def test_available_cores_is_the_affinity_capped_by_the_quota():
    assert runtime.available_cores(cpus={0, 1, 2, 3, 4, 5, 6, 7}, quota=2.5) == 3  # a partial core counts
    assert runtime.available_cores(cpus={2, 5}, quota=16.0) == 2  # taskset narrower than the quota
    assert runtime.available_cores(cpus={0, 1, 2, 3}, quota=0.5) == 1


def test_slurm_cpus_reads_the_job_allocation(caplog):
    assert runtime.slurm_cpus({}) is None  # not a SLURM job
    assert runtime.slurm_cpus({"SLURM_CPUS_PER_TASK": "4"}) is None  # a leftover variable without a job
    assert runtime.slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "1", "SLURM_CPUS_ON_NODE": "2"}) == 1
    assert runtime.slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "8", "SLURM_NTASKS_PER_NODE": "4"}) == 2
    assert runtime.slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "3"}) == 3
    assert runtime.slurm_cpus({"SLURM_JOB_ID": "7"}) is None
    assert runtime.slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "two"}) is None
    assert "SLURM_CPUS_PER_TASK='two'" in caplog.text


def test_a_one_cpu_slurm_job_on_an_unbound_two_core_node_runs_one_thread(monkeypatch):
    """TaskPlugin=task/none leaves the job's affinity at the node's 2 cores; the job was given 1 CPU."""
    monkeypatch.setattr(runtime, "affinity", lambda: {0, 1})
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: None)
    monkeypatch.delenv(runtime.JOBS_ENV, raising=False)
    for var in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(var, raising=False)
    assert runtime.threads_per_process(1) == 2
    monkeypatch.setenv("SLURM_JOB_ID", "87")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert runtime.available_cores() == 1
    assert runtime.threads_per_process(1) == 1
    assert runtime.available_cores(cpus={0, 1, 2, 3}, quota=None, allotted=3) == 3


def _stat(per_cpu: dict[int, tuple[int, int]]) -> str:
    """/proc/stat text; per CPU (busy user jiffies, idle jiffies)."""
    lines = ["cpu  1 2 3 4 5 6 7 8 0 0"]
    lines += [f"cpu{c} {busy} 0 0 {idle} 0 0 0 0 0 0" for c, (busy, idle) in per_cpu.items()]
    return "\n".join([*lines, "intr 1 2 3", "ctxt 5"]) + "\n"


def test_busy_cores_counts_only_this_process_cpus(tmp_path: Path):
    stat = tmp_path / "stat"
    stat.write_text(_stat({0: (100, 100), 1: (100, 100), 2: (0, 0)}))
    # over the window: cpu0 fully busy (+100 busy), cpu1 idle (+100 idle), cpu2 (not ours) fully busy
    after = _stat({0: (200, 100), 1: (100, 200), 2: (100, 0)})
    busy = runtime.busy_cores({0, 1}, window_s=0.0, stat=stat, sleep=lambda s: stat.write_text(after))
    assert busy == pytest.approx(1.0)


def test_busy_cores_without_proc_stat_is_zero(tmp_path: Path):
    assert runtime.busy_cores({0}, window_s=0.0, stat=tmp_path / "absent", sleep=lambda s: None) == 0.0


@pytest.mark.parametrize(("jobs", "cores", "busy", "expected"), [
    (1, 8, 0.0, 8),    # alone: every available core
    (2, 8, 0.0, 4),    # two side by side: half each
    (3, 8, 0.0, 2),
    (4, 2, 0.0, 1),    # more jobs than cores: one thread, never zero
    (1, 2, 1.0, 1),    # a neighbour keeps one of two cores busy: do not wait on a descheduled thread
    (1, 2, 0.3, 2),    # a light neighbour does not cost a thread
    (1, 8, 3.0, 5),
    (2, 8, 6.0, 2),
])
def test_threads_per_process(jobs, cores, busy, expected):
    assert runtime.threads_per_process(jobs, cores=cores, busy=busy) == expected


def test_threads_per_process_reads_the_env_job_count(monkeypatch):
    monkeypatch.setenv(runtime.JOBS_ENV, "4")
    assert runtime.threads_per_process(cores=8, busy=0.0) == 2
    monkeypatch.setenv(runtime.JOBS_ENV, "two")
    with pytest.raises(ValueError, match="LIVER_MM_CONCURRENT_JOBS='two'"):
        runtime.threads_per_process(cores=8, busy=0.0)


def test_default_threads_do_not_depend_on_the_load(monkeypatch):
    def sampled():
        raise AssertionError("busy_cores sampled without being asked")

    monkeypatch.setattr(runtime, "busy_cores", sampled)
    assert runtime.threads_per_process(1, cores=4) == 4
    monkeypatch.setattr(runtime, "busy_cores", lambda: 3.0)
    assert runtime.threads_per_process(1, cores=4, busy=None) == 1


def test_bounded_openmp_spin_keeps_a_user_setting(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    runtime.bounded_openmp_spin()
    assert "GOMP_SPINCOUNT" not in runtime.os.environ  # a declared wait policy is the user's choice
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    runtime.bounded_openmp_spin()
    assert runtime.os.environ["GOMP_SPINCOUNT"] == "5"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    runtime.bounded_openmp_spin()
    assert runtime.os.environ["GOMP_SPINCOUNT"] == "1000"


def test_the_cli_bounds_the_spin_before_torch_loads(tmp_path):
    import subprocess
    import sys

    code = ("import os, liver_mm.cli, liver_mm.runtime as r; "
            "print(r.bounded_openmp_spin(), os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in runtime.os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "1000"]  # liver_mm.cli imports no torch before main() sets it


# a real Python process: an exit handler registered first runs last and reports whether the objects were frozen
_REPORT_AT_EXIT = ("import atexit, gc, sys\n"
                   "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0, flush=True))\n")


def _python(code: str, tmp_path: Path) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", _REPORT_AT_EXIT + code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_quick_exit_freezes_the_objects_when_the_process_exits_registered_once(tmp_path: Path):
    out = _python("from liver_mm.runtime import quick_exit\nprint(quick_exit(), quick_exit())\n"
                  "import gc; print('frozen before exit:', gc.get_freeze_count() > 0)\n", tmp_path)
    assert out.splitlines() == ["True False", "frozen before exit: False", "frozen at exit: True"]


def test_import_frozen_imports_without_full_collections_then_freezes(tmp_path: Path):
    """No full collection during the import, the objects frozen after it, the garbage made before it freed (not
    frozen: a later job of one process would otherwise keep the previous run's cycles), a second call a no-op."""
    out = _python("from liver_mm.runtime import import_frozen\n"
                  "import weakref\nclass Cycle: pass\n"
                  "c = Cycle(); c.me = c; gone = weakref.ref(c); del c\n"
                  "full = gc.get_stats()[2]['collections']\n"
                  "print(import_frozen('liver_mm.training.run'), gone() is None)\n"
                  "print(gc.get_stats()[2]['collections'] - full, gc.get_freeze_count() > 100_000, gc.isenabled(),\n"
                  "      'torch' in sys.modules)\n"
                  "frozen = gc.get_freeze_count()\n"
                  "print(import_frozen('liver_mm.training.run'), gc.get_freeze_count() == frozen)\n", tmp_path)
    assert out.splitlines() == ["True True", "1 True True True", "False True", "frozen at exit: True"]


def test_a_hydra_job_process_and_the_cli_exit_quickly(tmp_path: Path):
    """The task of every Hydra command (what a SLURM job or a joblib worker runs) starts with the training and
    tracking modules imported and frozen (:func:`import_frozen`) and registers :func:`quick_exit`; the
    ``liver-mm`` entry point registers :func:`quick_exit` too."""
    task = "lambda cfg: print('job ran', 'liver_mm.tracking.registry' in sys.modules, gc.get_freeze_count() > 100_000)"
    job = _python("from liver_mm.cli.hydra_cmds import run_hydra_app\n"
                  f"run_hydra_app('train', {task}, ['hydra.run.dir={tmp_path / 'run'}'])\n", tmp_path)
    assert job.splitlines() == ["job ran True True", "frozen at exit: True"]
    cli = _python("from liver_mm.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n",
                  tmp_path)
    assert cli.splitlines()[-1] == "frozen at exit: True"
