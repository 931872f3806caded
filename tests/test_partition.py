"""The one declared partition of the config (conf/partition.py): every setting of every shipped config is in
exactly one part, and the keys, the tuning's fixed settings and the report's config summary all follow it."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from liver_mm.conf.partition import EXECUTION, REPORT, TRAINING, declared, leaves, part_of

CONF = Path(__file__).resolve().parents[1] / "conf"
ARMS = sorted(p.stem for p in (CONF / "arm").glob("*.yaml"))
EXPERIMENTS = [None, *sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))]


def _config(name: str, overrides: tuple[str, ...] = ()) -> dict:
    out = OmegaConf.to_container(compose(name, overrides=list(overrides)), resolve=False)
    assert isinstance(out, dict)
    return out


def undeclared(tree: dict) -> list[str]:
    """The settings of ``tree`` that no part of the partition declares."""
    return [key for key, _ in leaves(tree) if declared(key) is None]


def _shipped_configs() -> list[tuple[str, tuple[str, ...]]]:
    """train and tune with each data kind and trainer preset; study with each arm and with each experiment preset
    (a preset sets values of the same nodes whatever the arm)."""
    out: list[tuple[str, tuple[str, ...]]] = [("tune", ())]
    for data in ("synthetic", "manifest", "folder"):
        for trainer in sorted(p.stem for p in (CONF / "trainer").glob("*.yaml")):
            out.append(("train", (f"data={data}", f"trainer={trainer}")))
    out += [("study", (f"arm={arm}",)) for arm in ARMS]
    return out + [("study", (f"experiment={e}",)) for e in EXPERIMENTS if e is not None]


def test_every_setting_of_every_shipped_config_is_declared():
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        found = {f"{name} {' '.join(o)}": undeclared(_config(name, o)) for name, o in _shipped_configs()}
    assert len(found) == 1 + 3 * 4 + len(ARMS) + len(EXPERIMENTS) - 1 and len(ARMS) >= 13
    assert {k: v for k, v in found.items() if v} == {}


def test_a_new_setting_fails_the_check_until_it_is_declared():
    """The check can fail: a setting nobody declared is named (and counts as training meanwhile)."""
    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        tree = _config("study", ("arm=m1", "++trainer.gradient_clip_val=1.0", "++my_node.x=1"))
    assert undeclared(tree) == ["trainer.gradient_clip_val", "my_node"]
    assert part_of("trainer.gradient_clip_val") == TRAINING


def test_a_longer_key_overrides_its_node():
    assert part_of("model.optimizer.lr") == TRAINING and part_of("model.description") == REPORT
    assert part_of("trainer.num_threads") == EXECUTION and part_of("trainer.max_epochs") == TRAINING
    assert part_of("study.reference") == REPORT and part_of("study.name") == "cohort"


def test_tuning_searches_only_training_settings():
    from liver_mm.training.tune_space import tune_problems

    def problems(space: str) -> list[str]:
        with initialize_config_module("liver_mm.conf", version_base="1.3"):
            cfg = compose("study", overrides=["arm=m1", "tune.trials=2", f"++tune.space.network={space}"])
        return [p for p in tune_problems(cfg) if "hydra-optuna-sweeper" not in p]

    assert problems("{trainer.max_epochs: 'int(interval(1, 3))'}") == []
    for key, part in (("explain.cases", "report"), ("image_size", "inputs"), ("seed", "cohort"),
                      ("trainer.num_threads", "execution")):
        (msg,) = problems(f"{{{key}: 'choice(1, 2)'}}")
        assert msg.startswith(f"tune.space.network.{key}: {key} is a {part} setting, not searched"), msg


def test_the_reports_config_summary_holds_the_result_and_report_settings_only():
    from liver_mm.study.finish import config_summary

    with initialize_config_module("liver_mm.conf", version_base="1.3"):
        cfg = compose("study", overrides=["trainer.num_threads=3", "loader.num_workers=2"])
    summary = config_summary(cfg)
    assert summary["trainer"]["max_epochs"] == 20 and "num_threads" not in summary["trainer"]
    assert "log_every_n_steps" not in summary["trainer"] and "enable_model_summary" not in summary["trainer"]
    assert summary["loader"] == {"batch_size": 32, "device_resident": "auto"}
    assert summary["explain"]["cases"] == 16 and summary["cv"] == {"folds": None, "repeats": 1, "dev_fraction": 0.125}
    assert not {"logger", "cache_dir", "model", "modalities", "fusion", "study", "tune"} & set(summary)
