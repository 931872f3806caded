"""Training-recipe ablation: recipe variants x grouped folds on a real cohort, image-only model (m1).

    python experiments/ddti-recipe/ablation.py --manifest MANIFEST.csv --out DIR \
        [--variants es5,full,full_ema,full_tta,full_ls,full_ema_tta] [--folds 5] [--epochs 40] \
        [--image-size 128] [--trainer cpu|gpu] [--jobs N]

Each (variant, fold) trains exactly as `liver-mm train` does (the same composed config, crop cache, lab
preprocessing, LightningModule, checkpoint selection on dev AUC and Youden threshold), on the folds that
`liver-mm study cv.folds=K` uses (grouped by patient and identical image, stratified, a dev part inside
each training part), without MLflow. Writes results.csv (one row per run) and summary.md (median and range
of test AUC, epochs trained, best epoch, wall time per run) into DIR. Progress is printed per run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

import pandas as pd

VARIANTS: dict[str, list[str]] = {
    # the recipe before this ablation: cosine sized for max_epochs, early stopping after 5 flat epochs
    "es5": ["early_stopping.enabled=true", "early_stopping.patience=5"],
    # the whole schedule, best dev-AUC epoch kept
    "full": ["early_stopping.enabled=false"],
    "full_ema": ["early_stopping.enabled=false", "model.ema.enabled=true"],
    "full_tta": ["early_stopping.enabled=false", "model.net.tta_hflip=true"],
    "full_ls": ["early_stopping.enabled=false", "model.label_smoothing=0.1"],
    "full_ema_tta": ["early_stopping.enabled=false", "model.ema.enabled=true", "model.net.tta_hflip=true"],
    # the end of the schedule instead of the dev-selected epoch
    "full_last": ["early_stopping.enabled=false", "checkpoint.select=last"],
    "full_ema_last": ["early_stopping.enabled=false", "checkpoint.select=last", "model.ema.enabled=true"],
    "full_ema_tta_last": ["early_stopping.enabled=false", "checkpoint.select=last", "model.ema.enabled=true",
                          "model.net.tta_hflip=true"],
    # optimisation and input settings around the default
    "full_lr3e-4": ["early_stopping.enabled=false", "model.optimizer.lr=3e-4"],
    "full_lr3e-3": ["early_stopping.enabled=false", "model.optimizer.lr=3e-3"],
    "full_wd0.05": ["early_stopping.enabled=false", "model.optimizer.weight_decay=0.05"],
    "full_margin0.2": ["early_stopping.enabled=false", "crop.margin=0.2"],
    "full_bs16": ["early_stopping.enabled=false", "loader.batch_size=16"],
}


def compose(overrides: list[str]):
    import liver_mm.conf  # noqa: F401 - the configs' resolvers
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


class EpochRecorder:
    """Lightning callback: dev AUC per epoch."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _Rec(pl.Callback):
            def __init__(self) -> None:
                self.dev_auc: list[float] = []

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if not trainer.sanity_checking and "dev_auc" in trainer.callback_metrics:
                    self.dev_auc.append(float(trainer.callback_metrics["dev_auc"]))

        return _Rec()


def run_one(job: dict) -> dict:
    """Train and test one (variant, fold); returns its row of results.csv."""
    import pytorch_lightning as pl
    import torch

    from liver_mm.cohort.folds import prepare_folds
    from liver_mm.runtime import tune_malloc
    from liver_mm.study.cv import fold_cohort
    from liver_mm.training import fit
    from liver_mm.cohort.prepare import prepare_cohort
    from liver_mm.training.evaluate import run_metrics
    from liver_mm.features.inputs import build_features

    tune_malloc()
    torch.set_num_threads(job["threads"])
    cfg = compose(job["overrides"])
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    folds = prepare_folds(cohort.source_manifest, Path(cfg.cache_dir) / "ablation-folds" / "folds.csv",
                          folds=job["folds"], repeats=1, seed=int(cfg.seed))
    fc = fold_cohort(cohort, folds.assignment, folds.folds_hash, 0, job["fold"])
    feats = build_features(cfg, fc)
    rec = EpochRecorder()
    start = time.perf_counter()
    fitted = fit.fit_lightning(cfg, fc, feats, callbacks=[rec])
    wall = time.perf_counter() - start
    pred = fc.df.loc[fc.df["split"].isin(fit.EVAL_SPLITS), ["case_id", "split", "label"]].copy()
    pred["prob"] = fitted.probs
    m = run_metrics(pred.reset_index(drop=True), allow_degenerate=True)
    best = int(max(range(len(rec.dev_auc)), key=rec.dev_auc.__getitem__)) + 1 if rec.dev_auc else 0
    row = {"variant": job["variant"], "fold": job["fold"], "test_auc": m["test_auc"],
           "selection_dev_auc": m["selection_dev_auc"], "epochs_trained": len(rec.dev_auc), "best_epoch": best,
           "wall_s": round(wall, 1), "n_test": int(m["test_n_test"])}
    print(f"[{time.strftime('%H:%M:%S')}] {job['variant']:>13} fold {job['fold']}: test AUC {row['test_auc']:.3f}, "
          f"{row['epochs_trained']} epochs (best {best}), {wall:.0f} s", flush=True)
    return row


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("variant", sort=False)
    return pd.DataFrame({
        "test AUC median": g["test_auc"].median().round(3),
        "range": g["test_auc"].agg(lambda s: f"{s.min():.3f}–{s.max():.3f}"),
        "mean": g["test_auc"].mean().round(3),
        "epochs trained (median)": g["epochs_trained"].median(),
        "best epoch (median)": g["best_epoch"].median(),
        "wall s per run (median)": g["wall_s"].median(),
    }).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", default=None, help="comma-separated fold indices (default: all)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--trainer", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache-dir", default=".cache/liver_mm")
    ap.add_argument("--extra", default="", help="more Hydra overrides, space-separated")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = ["data=manifest", f"data.manifest={args.manifest.resolve()}", "modalities=m1",
            f"image_size={args.image_size}", f"trainer={args.trainer}", f"trainer.max_epochs={args.epochs}",
            f"cache_dir={args.cache_dir}", "++trainer.enable_progress_bar=false", *args.extra.split()]
    folds = [int(f) for f in args.only_folds.split(",")] if args.only_folds else list(range(args.folds))
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    jobs = [{"variant": v, "fold": f, "folds": args.folds, "threads": threads,
             "overrides": [*base, *VARIANTS[v]]} for v in args.variants.split(",") for f in folds]
    # one warm-up: validates the cohort, writes the crop cache and the folds before the workers start
    from liver_mm.features.crops import build_crop_cache
    from liver_mm.cohort.folds import prepare_folds
    from liver_mm.cohort.prepare import prepare_cohort

    cfg = compose(jobs[0]["overrides"])
    cohort = prepare_cohort(cfg.data, cfg.split, cfg.cache_dir)
    prepare_folds(cohort.source_manifest, Path(cfg.cache_dir) / "ablation-folds" / "folds.csv", folds=args.folds,
                  repeats=1, seed=int(cfg.seed))
    build_crop_cache(cohort.df, int(cfg.image_size), float(cfg.crop.margin), Path(cfg.cache_dir) / "crops")
    start = time.perf_counter()
    rows: list[dict] = []

    def keep(row: dict) -> None:  # results.csv grows run by run: a cut-off run keeps what finished
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out / "results.csv", index=False)

    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for row in pool.imap_unordered(run_one, jobs, chunksize=1):
                keep(row)
    else:
        for job in jobs:
            keep(run_one(job))
    df = pd.DataFrame(rows).sort_values(["variant", "fold"], key=lambda c: c.map(list(VARIANTS).index)
                                        if c.name == "variant" else c)
    summary = summarise(df)
    from liver_mm.stats import markdown_table

    text = (f"{len(folds)} of {args.folds} grouped folds, {args.image_size} px, {args.epochs} epochs, trainer={args.trainer}, "
            f"{args.jobs} parallel job(s); total wall {time.perf_counter() - start:.0f} s\n\n" + markdown_table(summary))
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
