"""What a nested search tunes (the ``tune`` node of conf/train.yaml), checked before anything is read or trained.

``tune.space`` holds the search space in hydra-optuna-sweeper's ``hydra.sweeper.params`` syntax
(``tag(log, interval(1e-4, 3e-3))``, ``int(interval(10, 40))``, ``choice(false, true)``), one part per kind of model:

* a network (``model: fusion``) searches ``network`` (the training recipe), plus ``image`` when it sees the image
  and ``mlp`` when it sees labs (the clinical MLP);
* a scikit-learn control searches the part named by its estimator's class (``LogisticRegression``, ...);
* a clinical score (FIB-4, APRI) has nothing to search: it is trained as without tuning.

An entry set to null is not searched. A key must be a setting of the run (``++key`` adds one, as in Hydra) and a
training setting of the config's partition (:mod:`liver_mm.conf.partition`): the cohort, split, seed, inputs and
what is only reported or how it runs stay fixed; a trial changes only how a model is trained on the same rows.
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from liver_mm.conf.partition import TRAINING, part_of

#: the search's objective, maximised: the dev AUC at the epoch rule the final model uses, the epoch picked on the
#: other half of the dev rows when the rule picks one (:mod:`liver_mm.training.tune_score`)
OBJECTIVE = "dev_auc_at_epoch_rule"
SAMPLERS = ("tpe", "random")
_ABSENT = object()


def setting_name(key: str) -> str:
    """The config key of a search-space entry (``++model.estimator.learning_rate`` -> ``model.estimator.learning_rate``)."""
    return key.lstrip("+~")


def trials(cfg: DictConfig) -> int:
    """``tune.trials`` (0 when the config has no ``tune`` node); ValueError for anything but a whole number >= 0."""
    value = (cfg.get("tune") or {}).get("trials", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"tune.trials={value!r}: a whole number of trials >= 0 (0 = no tuning, e.g. tune.trials=8)")
    return value


def space_parts(cfg: DictConfig) -> list[str]:
    """The parts of ``tune.space`` this run's model searches (see the module docstring); [] for a clinical score."""
    from liver_mm.training.estimators import estimator_for

    est = estimator_for(cfg)
    if est.has_network:
        parts = ["network"]
        if cfg.modalities.image:
            parts.append("image")
        if list(cfg.modalities.features):
            parts.append("mlp")
        return parts
    if est.kind == "sklearn":
        return [str(cfg.model.estimator._target_).rsplit(".", 1)[-1]]
    return []


def search_space(cfg: DictConfig) -> dict[str, str]:
    """This run's ``hydra.sweeper.params``: the entries of its parts of ``tune.space`` that are not null."""
    space = (cfg.get("tune") or {}).get("space") or {}
    out: dict[str, str] = {}
    for part in space_parts(cfg):
        entries = space.get(part)
        for key, value in (entries or {}).items():
            if value is not None:
                out[str(key)] = str(value)
    return out


def tuning_on(cfg: DictConfig) -> bool:
    """True when this run searches before training: ``tune.trials`` > 0 and its model has something to search."""
    return trials(cfg) > 0 and bool(search_space(cfg))


def tuning_identity(cfg: DictConfig) -> dict[str, Any] | None:
    """What of ``tune`` can change this run's results (None when it does not tune): trials, sampler, seed,
    objective and its own search space (another kind's part is left out)."""
    if not tuning_on(cfg):
        return None
    tune = cfg.tune
    return {"trials": trials(cfg), "sampler": str(tune.sampler), "seed": int(tune.seed), "objective": OBJECTIVE,
            "space": search_space(cfg)}


def _entry_problems(cfg: DictConfig, part: str, key: str, value: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    where = f"tune.space.{part}.{key}"
    name = setting_name(key)
    part = part_of(name)
    if part != TRAINING:
        return [f"{where}: {name} is a {part} setting, not searched (a trial trains on the same rows, inputs, split "
                "and seed; only how the model is trained may change)"]
    if not key.startswith("+") and OmegaConf.select(cfg, name, default=_ABSENT) is _ABSENT:
        return [f"{where}: this run has no setting {name} (write ++{name} to add one)"]
    try:
        (override,) = OverridesParser.create().parse_overrides([f"{key}={value}"])
    except Exception as exc:  # noqa: BLE001 - Hydra's grammar errors are several classes
        return [f"{where}={value}: not hydra-optuna-sweeper syntax ({str(exc).splitlines()[0]})"]
    if not override.is_sweep_override():
        return [f"{where}={value}: a single value searches nothing; write interval(a, b), tag(log, interval(a, b)), "
                "int(interval(a, b)) or choice(a, b, ...)"]
    return []


def tune_problems(cfg: DictConfig) -> list[str]:
    """What is wrong with the ``tune`` node for this run, as messages naming the option ([] when fine or off)."""
    try:
        n = trials(cfg)
    except ValueError as exc:
        return [str(exc)]
    if n == 0:
        return []
    tune = cfg.tune
    problems = []
    if str(tune.get("sampler")) not in SAMPLERS:
        problems.append(f"tune.sampler={tune.get('sampler')}: one of {', '.join(SAMPLERS)}")
    if isinstance(tune.get("seed"), bool) or not isinstance(tune.get("seed"), int):
        problems.append(f"tune.seed={tune.get('seed')!r}: a whole number (the sampler's seed)")
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        problems.append(f"tune.trials={n}: the search needs hydra-optuna-sweeper: pip install 'liver-mm[tune]'")
    if str(cfg.trainer.get("strategy", "")).startswith("ddp"):
        problems.append(f"tune.trials={n} with trainer.strategy={cfg.trainer.strategy}: trials train in the job's "
                        "one process; tune with trainer=gpu or trainer=cpu")
    space = tune.get("space") or {}
    for part in space_parts(cfg):
        entries = space.get(part)
        if entries is not None and not OmegaConf.is_dict(entries):
            problems.append(f"tune.space.{part}: a mapping of setting -> search (hydra.sweeper.params syntax)")
            continue
        for key, value in (entries or {}).items():
            if value is not None:
                problems += _entry_problems(cfg, part, str(key), str(value))
    return problems


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A copy of ``cfg`` with Hydra overrides ``key=value`` (a trial's settings) applied, as Hydra applies them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = copy.deepcopy(cfg)
    with open_dict(out):
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            OmegaConf.update(out, override.key_or_group, override.value(), merge=False, force_add=True)
    return out
