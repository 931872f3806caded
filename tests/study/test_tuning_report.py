"""The report names the settings each arm's search chose, per fold when cross-validated, from the job runs'
``tune.chosen.*`` params; a study without tuning writes no tuning file and no section."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from liver_mm.study.tuning_report import tuning_section, tuning_table


def _run(chosen: dict[str, str], best: float, trials: int = 4) -> SimpleNamespace:
    params = {"tune.trials": str(trials), "tune.sampler": "tpe", "tune.seed": "0", "model.optimizer.lr": "0.001",
              **{f"tune.chosen.{k}": v for k, v in chosen.items()}}
    return SimpleNamespace(data=SimpleNamespace(params=params, metrics={"tune_trials": float(trials),
                                                                        "tune_best_objective": best - 0.1,
                                                                        "tune_best_dev_auc": best}))


def _untuned() -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(params={"tune.trials": "0"}, metrics={"test_auc": 0.8}))


def test_chosen_settings_appear_per_fold_in_the_written_table(tmp_path):
    runs = {("tab_logreg", "0", "1"): _run({"model.estimator.C": "0.5547119471592125"}, 0.81),
            ("m5", "0", "1"): _run({"model.optimizer.lr": "0.0006466422717414558", "model.ema.enabled": "True",
                                    "model.net.tabular.hidden": "[32,16]", "trainer.max_epochs": "17"}, 0.9),
            ("m5", "0", "0"): _run({"model.optimizer.lr": "0.0021", "model.ema.enabled": "False",
                                    "model.net.tabular.hidden": "[64,32]", "trainer.max_epochs": "31"}, 0.88),
            ("fib4", "0", "0"): _untuned()}
    table = tuning_table(runs, ["m5", "fib4", "tab_logreg"])
    lines = tuning_section(table, tmp_path)
    written = pd.read_csv(tmp_path / "tuning.csv", dtype=str)
    assert written[["arm", "repeat", "fold"]].values.tolist() == [["m5", "0", "0"], ["m5", "0", "1"],
                                                                   ["tab_logreg", "0", "1"]]
    assert written["model.optimizer.lr"].tolist()[:2] == ["0.0021", "0.0006466422717414558"]
    assert written["model.net.tabular.hidden"].tolist()[:2] == ["[64,32]", "[32,16]"]
    assert written["model.estimator.C"].tolist()[2] == "0.5547119471592125"
    assert written["best_dev_auc"].tolist() == ["0.88", "0.9", "0.81"] and set(written["trials"]) == {"4"}
    assert written["best_objective"].astype(float).round(2).tolist() == [0.78, 0.8, 0.71]
    md = (tmp_path / "tuning.md").read_text()
    assert md.splitlines()[0] == ("| arm | repeat | fold | trials | model.ema.enabled | model.estimator.C | "
                                  "model.net.tabular.hidden | model.optimizer.lr | trainer.max_epochs |")
    assert "| m5 | 0 | 1 | 4 | True |  | [32,16] | 0.000647 | 17 |" in md  # settings, 3 significant digits
    assert "| tab_logreg | 0 | 1 | 4 |  | 0.555 |  |  |  |" in md
    assert "best_dev_auc" not in md and "0.88" not in md and "best_objective" not in md  # optimistic: csv only
    assert lines[0] == "## Tuning (nested in the training data)"
    assert "each arm in each fold searched" in lines[2] and "the test fold was never passed to a trial" in lines[2]
    assert "the epoch picked on one half of the dev rows, its AUC on the other" in lines[2]
    assert "Bias and its guard:" in lines[-2] and "no trial was given a test row" in lines[-2]
    assert md in "\n".join(lines)


def test_a_single_split_table_has_one_row_per_arm(tmp_path):
    table = tuning_table({("m1",): _run({"model.net.tta_hflip": "True"}, 0.7, trials=8)}, ["m1"])
    assert list(table.columns[:2]) == ["arm", "trials"] and "repeat" not in table.columns
    lines = tuning_section(table, tmp_path)
    assert "each arm searched" in lines[2] and "the test split was never passed" in lines[2]
    assert "| m1 | 8 | True |" in (tmp_path / "tuning.md").read_text()


def test_a_study_without_tuning_writes_no_tuning_file_and_no_section(tmp_path):
    assert tuning_table({("m1",): _untuned()}, ["m1"]) is None
    assert tuning_section(None, tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_the_model_settings_show_each_searched_setting_as_tuned():
    from hydra import compose, initialize_config_module

    from liver_mm.study.finish import model_settings
    from liver_mm.study.tuning_report import TUNED, mark_tuned

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        off, on, gbm = (compose("study", overrides=o) for o in (["arm=m5"], ["arm=m5", "tune.trials=4"],
                                                               ["arm=tab_gbm", "tune.trials=4"]))
    assert mark_tuned(model_settings(off), off) == model_settings(off)
    marked = mark_tuned(model_settings(on), on)["model"]
    assert marked["optimizer"]["lr"] == marked["optimizer"]["weight_decay"] == marked["ema"]["enabled"] == TUNED
    assert marked["net"]["tabular"]["hidden"] == marked["net"]["tabular"]["dropout"] == marked["net"]["tta_hflip"] == TUNED
    assert marked["optimizer"]["_target_"] == "torch.optim.AdamW" and marked["net"]["head_hidden"] == 64
    assert model_settings(on)["model"]["optimizer"]["lr"] == 1e-3  # the configured value, left as it was
    assert mark_tuned(model_settings(gbm), gbm)["model"]["estimator"] == {
        "_target_": "sklearn.ensemble.HistGradientBoostingClassifier", "random_state": 0, "learning_rate": TUNED,
        "max_leaf_nodes": TUNED, "min_samples_leaf": TUNED}
