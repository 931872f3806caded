"""Tuning throughput: trials per hour of ``liver-mm tune`` on this machine for the demo preset (``experiment=demo``,
arm m5: 1,080 synthetic nodules at 96 px, the default search space). Not a timed test.

    python tests/benchmarks/bench_tune.py [--trials 3] [--arm m5] [--tiny]

The sampler is seeded (``tune.seed`` = ``seed`` = 0), so every machine draws the same first settings (epochs
among them: a trial's cost follows its ``trainer.max_epochs``, drawn from 10-40; the line names them). Trials per
hour = trials / (first trial's start to last trial's end), Hydra's per-trial composition and the trial runs'
MLflow writes included; cohort preparation and crops before the first trial are not. ``--tiny``: the tests' tiny
settings (synthetic n=120, 32 px, 1-2 epochs), to check the script. The demo cohort and crops are reused from
``--cache-dir`` (the project's default cache, filled by ``make demo``); the runs go to a temporary MLflow store.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIVER_MM = str(Path(sys.executable).with_name("liver-mm"))
TINY = ["data=synthetic", "data.n=120", "image_size=32", "image_encoder=mobilenetv2_050", "loader.batch_size=16",
        "tune.space.network={trainer.max_epochs: 'choice(1, 2)'}"]


def trial_runs(db: Path) -> list:
    """The finished trial runs of the one tuning run in ``db``, in trial order."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("liver-mm").experiment_id
    runs = client.search_runs([exp], "tags.study_level = 'tuning_trial'")
    return sorted((r for r in runs if r.info.status == "FINISHED"), key=lambda r: int(r.data.tags["tune_trial"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=3, help="trials to time (default 3)")
    p.add_argument("--arm", default="m5")
    p.add_argument("--tiny", action="store_true", help="the tests' tiny settings (checks the script)")
    p.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "liver_mm")
    a = p.parse_args(argv)
    preset = TINY if a.tiny else ["experiment=demo"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cmd = [LIVER_MM, "tune", f"arm={a.arm}", *preset, f"tune.trials={a.trials}", f"cache_dir={a.cache_dir}",
               f"hydra.run.dir={root / 'run'}", f"logger.tracking_uri=sqlite:///{root / 'mlflow.db'}",
               f"logger.artifact_root={root / 'art'}"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(f"liver-mm tune failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
        runs = trial_runs(root / "mlflow.db")
    if len(runs) != a.trials:
        sys.exit(f"expected {a.trials} finished trials, found {len(runs)}")
    span = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    epochs = [int(r.data.params["trainer.max_epochs"]) for r in runs]
    name = "tiny settings" if a.tiny else "demo preset"
    print(f"\ntuning, {name} ({a.arm}; {a.trials} trials of {', '.join(map(str, epochs))} epochs): "
          f"{3600 * a.trials / span:.1f} trials per hour ({span / a.trials:.1f} s per trial, "
          f"{span / sum(epochs):.2f} s per epoch); the command {wall:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
