"""The cross-validated demo study through joblib (2 parallel jobs, sqlite) vs through the local SLURM cluster
logging to the MLflow server: wall time each, and what SLURM + server add per fold job. Not a timed test.

    scripts/slurm-local.sh up && scripts/mlflow-server.sh up
    MLFLOW_TRACKING_URI=http://127.0.0.1:5077 python tests/benchmarks/bench_slurm.py [--tiny] [--folds 5]

Default: ``experiment=demo cv.folds=5`` (7 arms x 5 folds = 35 jobs: long on a CPU machine); ``--tiny``: the
tests' tiny settings (synthetic n=120, 32 px, 1 epoch, arms tab_logreg and m1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))
TINY = ["data=synthetic", "data.n=120", "image_size=32", "trainer.max_epochs=1", "image_encoder=mobilenetv2_050",
        "study.arms=[tab_logreg,m1]", "study.reference=tab_logreg"]


def run(root: Path, base: list[str], extra: list[str], env: dict) -> float:
    """Wall seconds of one study in ``root`` (a fresh cache and report)."""
    cmd = [LIVER_MM, "study", *base, f"study.out_dir={root / 'report'}", f"cache_dir={root / 'cache'}",
           f"hydra.sweep.dir={root / 'multirun'}", *extra]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"study failed ({' '.join(extra)}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--tiny", action="store_true")
    a = p.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith("http"):
        sys.exit("set MLFLOW_TRACKING_URI=http://127.0.0.1:PORT (scripts/mlflow-server.sh up)")
    base = [*(TINY if a.tiny else ["experiment=demo"]), f"cv.folds={a.folds}"]
    name = f"study.name=bench-slurm-{int(time.time())}"  # a new study on the server (never a resumed one)
    n_arms = 2 if a.tiny else 7
    jobs = n_arms * a.folds
    with tempfile.TemporaryDirectory() as tmp:
        jl = Path(tmp, "joblib")
        jl.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        t_joblib = run(jl, [*base, name], ["hydra/launcher=joblib_local", "hydra.launcher.n_jobs=2",
                                  f"logger.tracking_uri=sqlite:///{jl / 'mlflow.db'}",
                                  f"logger.artifact_root={jl / 'art'}"], env)
        sl = Path(tmp, "slurm")
        sl.mkdir()
        t_slurm = run(sl, [*base, name], ["hydra/launcher=slurm_local"],
                      dict(os.environ))
    slots = os.cpu_count() or 1
    print(f"\ncv study, {jobs} fold jobs ({'tiny' if a.tiny else 'demo'}, {a.folds} folds): joblib (2 jobs) "
          f"{t_joblib:.1f} s, local SLURM ({slots} one-core slots) + MLflow server {t_slurm:.1f} s; "
          f"SLURM + server add {(t_slurm - t_joblib) / jobs:.1f} s wall per fold job "
          f"({(t_slurm - t_joblib) * min(2, slots) / jobs:.1f} s per job in each of the parallel slots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
