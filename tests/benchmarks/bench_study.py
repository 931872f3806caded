"""Whole-study line of ``make bench``: the latest demo study's training time per arm and per image, read from
its MLflow runs (``mlflow.db``, read-only SQL; nothing is trained here).

    python tests/benchmarks/bench_study.py [--db mlflow.db] [--study stepwise-synthetic]

Training time of an arm = the span of its per-epoch ``dev_auc`` timestamps x E/(E-1) (E epochs): the epochs
with augmentation and the dev pass, without crop caching, predictions and model logging. Images per epoch ≈
data.n x the training fraction, whole batches only. Run ``make demo`` first.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def latest_study_arms(db: Path, study: str) -> list[dict]:
    """Arms (name, wall s, training s, epochs, images/epoch) of the newest FINISHED parent run of ``study``."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    parent = con.execute(
        "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'study' and t.value = ? "
        "where r.name like 'study:%' and r.status = 'FINISHED' order by r.start_time desc limit 1", (study,)).fetchone()
    if parent is None:
        return []
    rows = con.execute(
        "select r.run_uuid, r.name, r.start_time, r.end_time from runs r join tags t on t.run_uuid = r.run_uuid "
        "and t.key = 'mlflow.parentRunId' and t.value = ? where r.status = 'FINISHED' order by r.start_time",
        (parent[0],)).fetchall()
    arms = []
    for run_id, name, start, end in rows:
        span = con.execute("select min(timestamp), max(timestamp), count(*) from metrics "
                           "where run_uuid = ? and key = 'dev_auc'", (run_id,)).fetchone()
        params = dict(con.execute("select key, value from params where run_uuid = ? and key in "
                                  "('data.n', 'split.fractions', 'loader.batch_size', 'image_size')", (run_id,)))
        epochs = int(span[2] or 0)
        arm = {"arm": name, "wall_s": (end - start) / 1000, "epochs": epochs, "image_size": params.get("image_size")}
        if epochs >= 2 and "data.n" in params:
            arm["train_s"] = (span[1] - span[0]) / 1000 * epochs / (epochs - 1)
            n_train = int(int(params["data.n"]) * json.loads(params["split.fractions"])[0])
            bs = int(params["loader.batch_size"])
            arm["images_per_epoch"] = n_train // bs * bs if n_train > bs else n_train
        arms.append(arm)
    return arms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, default=Path("mlflow.db"))
    p.add_argument("--study", default="stepwise-synthetic")
    a = p.parse_args(argv)
    arms = latest_study_arms(a.db, a.study) if a.db.exists() else []
    if not arms:
        print(f"\nwhole study: no finished '{a.study}' study in {a.db} (run `make demo` first)")
        return 0
    print(f"\nwhole study '{a.study}' (latest finished run in {a.db}): training time per arm and per image")
    total = 0.0
    for arm in arms:
        if "train_s" not in arm:
            print(f"  {arm['arm']:<11} wall {arm['wall_s']:6.1f} s (no epochs: not a network)")
            continue
        per_img = 1000 * arm["train_s"] / (arm["images_per_epoch"] * arm["epochs"])
        total += arm["train_s"]
        print(f"  {arm['arm']:<11} training {arm['train_s']:6.1f} s ({arm['epochs']} epochs x "
              f"{arm['images_per_epoch']} images at {arm['image_size']} px: {per_img:5.2f} ms/image); "
              f"run wall {arm['wall_s']:6.1f} s")
    print(f"  all arms: training {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
