"""A network trial is scored at the final model's epoch rule with the epoch picked on the other half of the dev
rows: a long schedule of noisy epochs no longer wins by having more epochs to pick from, and a real trial's
objective is exactly that score of its own per-epoch dev predictions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features
from liver_mm.tracking.runs import create_run
from liver_mm.tracking.store import connect
from liver_mm.training import tune_score
from liver_mm.training.tune import run_search
from liver_mm.training.tune_score import best_epoch, dev_halves, epoch_rule_score
from tests.training.conftest import compose_train


def test_a_long_noisy_schedule_no_longer_wins_by_selection():
    """Schedule A: 5 epochs that carry the label; B: 40 epochs of noise. The best full-dev epoch (the old
    objective) prefers B; the epoch rule scored on the other half prefers A."""
    rng = np.random.default_rng(24)
    y = np.tile([0, 1], 8)
    halves = dev_halves(pd.DataFrame({"case_id": [f"c{i}" for i in range(y.size)]}), y, seed=0)
    short = [0.6 * y + rng.normal(size=y.size) for _ in range(5)]
    long_noise = [rng.normal(size=y.size) for _ in range(40)]
    every = np.ones(y.size, dtype=bool)

    def old(curves):  # the dev AUC of the best dev epoch
        return roc_auc_score(y, curves[best_epoch(curves, y, every)])

    assert old(long_noise) > old(short)
    assert epoch_rule_score(short, y, halves) > epoch_rule_score(long_noise, y, halves)
    assert (old(short), old(long_noise)) == (0.78125, 0.953125)
    assert (epoch_rule_score(short, y, halves), epoch_rule_score(long_noise, y, halves)) == (0.78125, 0.5625)


def test_the_halves_are_grouped_stratified_and_need_both_classes():
    y = np.array([0, 1] * 6)
    dev = pd.DataFrame({"case_id": [f"c{i}" for i in range(12)], "patient_id": [f"p{i // 2}" for i in range(12)]})
    halves = dev_halves(dev, y, seed=3)
    assert all(len(set(halves[dev["patient_id"] == p])) == 1 for p in dev["patient_id"])  # a patient in one half
    assert [int(y[halves == h].sum()) for h in (0, 1)] == [3, 3]
    with pytest.raises(ValueError, match=r"half \d of this job's 4 dev rows \(1 malignant\) has one class"):
        dev_halves(dev.iloc[:4], np.array([0, 0, 0, 1]), seed=3)


class _Spy(tune_score.DevEpochProbs):
    seen: list[_Spy] = []

    def __init__(self) -> None:
        super().__init__()
        _Spy.seen.append(self)


def test_a_network_trial_is_scored_by_the_epoch_rule_on_the_other_half(tmp_path, monkeypatch):
    """Two real trials of a lab-only network (3 and 6 epochs); each objective recomputed from its own dev
    predictions per epoch; the kept epoch and kept dev AUC are the full dev part's best."""
    n, rng = 160, np.random.default_rng(2)
    labels = np.tile([0, 1], n // 2)
    split = np.array(["train"] * 112 + ["dev"] * 32 + ["test"] * 16)
    df = pd.DataFrame({"case_id": [f"C{i:04d}" for i in range(n)], "patient_id": [f"P{i // 2:04d}" for i in range(n)],
                       "split": split, "label": np.where(labels == 1, "malignant", "benign")})
    tab = (rng.normal(size=(n, 4)) + labels[:, None] * 0.5).astype(np.float32)
    cohort = PreparedCohort(df, Path("mem"), Path("mem"), "mem", "mem", True)
    feats = Features(None, tab, labels, SimpleNamespace(n_features_out=4), None)  # type: ignore[arg-type]
    cfg = compose_train(["modalities=tabular_only", "model=fusion", "tune.trials=2", "loader.batch_size=16",
                         "augment.enabled=false", "tune.space.mlp=null",
                         "tune.space.network={trainer.max_epochs: 'choice(3, 6)', model.optimizer.lr: null, "
                         "model.optimizer.weight_decay: null, model.ema.enabled: null}"], tmp_path)
    cfg.study.arm = "tab_mlp"
    client, exp_id = connect(cfg.logger)
    parent = create_run(client, exp_id, "job", {"test": "true"})
    _Spy.seen = []
    monkeypatch.setattr(tune_score, "DevEpochProbs", _Spy)
    result = run_search(cfg, cohort, feats, client, exp_id, parent, tmp_path / "tune", "tab_mlp")
    dev = split == "dev"
    y = labels[dev]
    halves = dev_halves(df.loc[dev], y, int(cfg.tune.seed))
    assert len(_Spy.seen) == len(result.trials) == 2
    for trial, spy in zip(result.trials, _Spy.seen, strict=True):
        assert len(spy.epochs) == int(trial.settings["trainer.max_epochs"])
        assert trial.objective == epoch_rule_score(spy.epochs, y, halves)
        kept = best_epoch(spy.epochs, y, np.ones(y.size, dtype=bool))
        assert trial.epoch == kept + 1
        assert trial.dev_auc == pytest.approx(roc_auc_score(y, spy.epochs[kept]), abs=1e-12)
        metrics = client.get_run(trial.run_id).data.metrics
        assert metrics["objective"] == trial.objective and metrics["kept_epoch"] == kept + 1
