"""Self-supervised pretraining: throughput (images/s) per method, and SimCLR vs BYOL vs DINO by linear probe.

    python tests/benchmarks/bench_pretrain.py [--image-size 64] [--n 128] [--device cpu]
    python tests/benchmarks/bench_pretrain.py --compare [--cohort-n 240] [--epochs 5]

Throughput: two augmented views per image, forward + backward + step of ``liver_mm.pretrain.ssl`` on random
crops (pixel content does not change the speed), ``images / s`` = images seen per second (each as two views).
Compare: the synthetic cohort (``liver_mm.synth``), its train split's crops pretrain each method for ``--epochs``,
then a logistic regression on the frozen encoder's pooled features of the train rows predicts the test rows;
test AUC with its DeLong 95 % CI beside the random-init encoder's. Small and synthetic: a ranking at this size
says little about a real cohort (there, compare the methods with experiment=pretrain_ablation).
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


def compare(cohort_n: int, size: int, epochs: int, batch: int, encoder: str) -> None:
    from omegaconf import OmegaConf
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    print(f"linear probe [synthetic, small]: {int(train.sum())} train / {int(test.sum())} test crops at {size} px, "
          f"{encoder}, {epochs} pretraining epoch(s), batch {batch}")
    scratch = None
    for method in ("scratch", *METHODS):
        start = time.perf_counter()
        state = None
        if method != "scratch":
            settings = PretrainSettings(encoder=encoder, image_size=size, method=method, epochs=epochs,
                                        batch_size=batch)
            state = pretrain_encoder(crops[train], settings, progress=False).state_dict
        feats = _features(state, crops, encoder)
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        prob = probe.fit(feats[train], y[train]).predict_proba(feats[test])[:, 1]
        res = auc_ci(y[test], prob)
        line = f"  {method:8s} test AUC {res.auc:.3f} ({res.ci_low:.3f}-{res.ci_high:.3f})"
        if scratch is None:
            scratch = prob
        else:
            d = delong_test(y[test], prob, scratch)
            line += f"  vs scratch {d.diff:+.3f} ({d.diff_ci_low:+.3f} to {d.diff_ci_high:+.3f}), DeLong p {d.p_value:.3f}"
        print(f"{line}  [{time.perf_counter() - start:.0f} s]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoder", default="mobilenetv2_100")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--cohort-n", type=int, default=240)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if args.compare:
        compare(args.cohort_n, args.image_size, args.epochs, args.batch_size, args.encoder)
        return
    print(f"pretraining throughput ({args.device}, {torch.get_num_threads()} thread(s), {args.encoder}, "
          f"{args.image_size} px, batch {args.batch_size}, two views each):")
    for method in METHODS:
        rate = throughput(method, args.n, args.image_size, args.batch_size, args.device, args.encoder)
        print(f"  {method:6s} {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
