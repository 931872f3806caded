"""Self-supervised pretraining: throughput (images/s) per method, and SimCLR vs BYOL vs DINO by linear probe.

    python tests/benchmarks/bench_pretrain.py [--image-size 64] [--n 128] [--device cpu]
    python tests/benchmarks/bench_pretrain.py --compare [--cohort-n 600] [--image-size 64] [--epochs 6]
    python tests/benchmarks/bench_pretrain.py --ablation [--cohort-n 300] [--image-size 32] [--epochs 6]
        [--finetune-epochs 5]

Throughput: two augmented views per image, forward + backward + step of ``liver_mm.pretrain.ssl`` on random
crops (pixel content does not change the speed), ``images / s`` = images seen per second (each as two views).
Compare: the synthetic cohort (``liver_mm.synth``), its train split's crops pretrain each method for ``--epochs``,
then a logistic regression on the frozen encoder's pooled features of the train rows predicts the test rows;
test AUC with its DeLong 95 % CI beside the random-init encoder's (and a k-nearest-neighbour probe's AUC), with
the pretraining's wall seconds. Synthetic: a ranking on this cohort says little about a real one (there, compare
the methods with experiment=pretrain_ablation).
Ablation: ``liver-mm study experiment=pretrain_ablation`` at the given size in a temporary folder (5 folds, one
thread), then its report's pooled out-of-fold AUC difference pretrained - scratch with the DeLong 95 % CI, the
DeLong p and the corrected resampled t-test's p over folds, per arm pair, and the study's wall seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from liver_mm.runtime import bounded_openmp_spin

bounded_openmp_spin()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from liver_mm.pretrain.ssl import METHODS, PretrainSettings, pretrain_encoder  # noqa: E402


def throughput(method: str, n: int, size: int, batch: int, device: str, encoder: str) -> float:
    crops = np.random.default_rng(0).integers(0, 256, (n, size, size), dtype=np.uint8)
    settings = PretrainSettings(encoder=encoder, image_size=size, method=method, epochs=1, batch_size=batch)
    pretrain_encoder(crops[: 2 * batch], settings, device=device, progress=False)  # warm-up
    start = time.perf_counter()
    pretrain_encoder(crops, settings, device=device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (n // batch) * batch / (time.perf_counter() - start)


def _features(state: dict | None, crops: np.ndarray, encoder: str) -> np.ndarray:
    from liver_mm.models.encoders import create_image_encoder

    torch.manual_seed(0)
    model = create_image_encoder(encoder)
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    x = torch.from_numpy(crops).unsqueeze(1).float().div(255)
    x = (x - 0.449) / 0.226
    with torch.no_grad():
        return torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)]).numpy()


def _probe_aucs(feats: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """Frozen features -> (the linear probe's test probabilities, the 15-nearest-neighbour probe's test AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    prob = probe.fit(feats[train], y[train]).predict_proba(feats[test])[:, 1]
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(15, metric="cosine"))
    knn_auc = roc_auc_score(y[test], knn.fit(feats[train], y[train]).predict_proba(feats[test])[:, 1])
    return prob, float(knn_auc)


def compare(cohort_n: int, size: int, epochs: int, batch: int, encoder: str) -> None:
    from omegaconf import OmegaConf

    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.features.crops import build_crop_cache
    from liver_mm.stats.delong import auc_ci, delong_test

    tmp = Path(tempfile.mkdtemp(prefix="bench-pretrain-"))
    data = OmegaConf.create({"kind": "synthetic", "synthetic": True, "n": cohort_n, "seed": 0, "image_signal": None,
                             "interaction": 0.0, "units": {}})
    cohort = prepare_cohort(data, {"fractions": [0.6, 0.1, 0.3], "seed": 0}, tmp)
    crops = build_crop_cache(cohort.df, size, 0.0, tmp / "crops").crops
    split = cohort.df["split"].to_numpy()
    y = (cohort.df["label"].astype(str).str.lower() == "malignant").to_numpy().astype(int)
    train, test = split == "train", split == "test"
    print(f"synthetic: method comparison, {int(train.sum())} train / {int(test.sum())} test crops at {size} px, "
          f"{encoder}, {epochs} pretraining epoch(s) on the train crops, batch {batch}, "
          f"{torch.get_num_threads()} thread(s); probes on the frozen features: logistic regression (AUC, DeLong "
          f"95 % CI, difference vs the random-init encoder) and 15-NN (AUC)", flush=True)
    scratch = None
    for method in ("random-init", *METHODS):
        start = time.perf_counter()
        state = None
        if method != "random-init":
            settings = PretrainSettings(encoder=encoder, image_size=size, method=method, epochs=epochs,
                                        batch_size=batch)
            state = pretrain_encoder(crops[train], settings, progress=False).state_dict
        wall = time.perf_counter() - start
        prob, knn_auc = _probe_aucs(_features(state, crops, encoder), y, train, test)
        res = auc_ci(y[test], prob)
        line = f"synthetic: {method:11s} linear AUC {res.auc:.3f} ({res.ci_low:.3f}-{res.ci_high:.3f})"
        if scratch is None:
            scratch = prob
            line += " " * 40
        else:
            d = delong_test(y[test], prob, scratch)
            line += f"  vs random {d.diff:+.3f} ({d.diff_ci_low:+.3f} to {d.diff_ci_high:+.3f}) p {d.p_value:.3f}"
        print(f"{line}  kNN AUC {knn_auc:.3f}  pretraining {wall:5.0f} s", flush=True)


ABLATION_PAIRS = (("m1", "m1_ssl"), ("m5", "m5_ssl"))


def arm_seconds(tracking_uri: str) -> dict[str, float]:
    """Each arm's fold jobs' wall seconds summed over folds. The launcher runs the jobs one after the other and a job
    pretrains before its MLflow run opens, so a job's time is its run's end minus the previous job's run's end (the
    first job: its run's own duration); the fold's first pretrained arm pays the pretraining, the next one loads it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = sorted((r for e in client.search_experiments()
                   for r in client.search_runs([e.experiment_id], "tags.study_level = 'fold'")),
                  key=lambda r: r.info.start_time)
    out: dict[str, float] = {}
    previous_end = None
    for run in runs:
        began = run.info.start_time if previous_end is None else previous_end
        out[run.data.tags["arm"]] = out.get(run.data.tags["arm"], 0.0) + (run.info.end_time - began) / 1000
        previous_end = run.info.end_time
    return out


def ablation(cohort_n: int, size: int, epochs: int, finetune_epochs: int, batch: int, encoder: str) -> None:
    """Run experiment=pretrain_ablation in a temporary folder; print each pair's pooled difference (synthetic)."""
    import subprocess
    import sys

    import pandas as pd

    tmp = Path(tempfile.mkdtemp(prefix="bench-pretrain-ablation-"))
    cmd = [sys.executable, "-m", "liver_mm.cli", "study", "experiment=pretrain_ablation", f"data.n={cohort_n}",
           f"image_size={size}", f"trainer.max_epochs={finetune_epochs}", f"pretrain.epochs={epochs}",
           f"pretrain.batch_size={batch}", f"image_encoder={encoder}", "trainer.num_threads=1",
           "explain.enabled=false", "logger.log_model=false", f"logger.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
           f"logger.artifact_root={tmp / 'art'}", f"cache_dir={tmp / 'cache'}", f"study.out_dir={tmp / 'out'}",
           f"hydra.sweep.dir={tmp / 'sweep'}"]
    print("synthetic: pretrain_ablation study, 5 folds: " + " ".join(cmd[3:7] + cmd[7:10]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the study failed ({tmp}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    comp = pd.read_csv(next((tmp / "out").rglob("cv_comparisons.csv"))).set_index(["a", "b"])
    summary = pd.read_csv(next((tmp / "out").rglob("cv_summary.csv"))).set_index("arm")
    for arm in summary.index:
        s = summary.loc[arm]
        print(f"synthetic: {arm:7s} pooled out-of-fold AUC {s['pooled_auc']:.3f} "
              f"({s['pooled_auc_ci_low']:.3f}-{s['pooled_auc_ci_high']:.3f}), fold AUC mean {s['auc_mean']:.3f} "
              f"(SD {s['auc_sd']:.3f})")
    for scratch, ssl in ABLATION_PAIRS:
        r = comp.loc[(scratch, ssl)]  # a - b = scratch - pretrained: flipped to pretrained - scratch
        print(f"synthetic: pooled AUC {ssl} - {scratch} = {-r['pooled_diff']:+.3f} "
              f"[{-r['pooled_diff_ci_high']:+.3f}, {-r['pooled_diff_ci_low']:+.3f}], DeLong p {r['p_delong']:.3f}; "
              f"mean fold difference {-r['mean_auc_diff']:+.3f}, corrected t p {r['p_t']:.3f}")
    secs = arm_seconds(f"sqlite:///{tmp / 'mlflow.db'}")
    print("synthetic: fold jobs' wall seconds, 5 folds summed: "
          + ", ".join(f"{arm} {secs[arm]:.0f} s" for arm in summary.index if arm in secs))
    print(f"synthetic: study wall {wall:.0f} s ({tmp})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=None, help="crop side (default 64; ablation 32)")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder", default="mobilenetv2_100")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--cohort-n", type=int, default=None, help="synthetic cases (compare 600, ablation 300)")
    parser.add_argument("--epochs", type=int, default=6, help="pretraining epochs (compare, ablation)")
    parser.add_argument("--finetune-epochs", type=int, default=5, help="ablation: trainer.max_epochs")
    args = parser.parse_args()
    size = args.image_size or 64
    if args.ablation:
        ablation(args.cohort_n or 300, args.image_size or 32, args.epochs, args.finetune_epochs, args.batch_size,
                 args.encoder)
        return
    if args.compare:
        compare(args.cohort_n or 600, size, args.epochs, args.batch_size, args.encoder)
        return
    print(f"pretraining throughput ({args.device}, {torch.get_num_threads()} thread(s), {args.encoder}, "
          f"{size} px, batch {args.batch_size}, two views each):")
    for method in METHODS:
        rate = throughput(method, args.n, size, args.batch_size, args.device, args.encoder)
        print(f"  {method:6s} {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
