"""The report's tuning section: the settings each arm's nested search chose (per fold when cross-validated).

Read from the job runs' params (``tune.chosen.<setting>``, written by :func:`liver_mm.training.tune.tune_job`) and
metrics (``tune_trials``, ``tune_best_objective``, ``tune_best_dev_auc``); configuration only, no patient data. Files:
``tuning.csv`` (one row per arm, or per arm, repeat and fold: trials, the chosen trial's objective and dev AUC, each
chosen setting) and ``tuning.md`` (the same without the dev figures, which are optimistic by construction and never
shown in the report).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from liver_mm.stats import markdown_table

CHOSEN = "tune.chosen."
TUNED = "tuned (see Tuning)"


def mark_tuned(settings: dict[str, object], cfg: DictConfig) -> dict[str, object]:
    """An arm's model settings for the report (:func:`liver_mm.study.finish.model_settings`) with every ``model.*``
    setting its search chose shown as :data:`TUNED`: the configured value is not what the arm trained with."""
    from liver_mm.training.tune_space import search_space, setting_name, tuning_on

    if not tuning_on(cfg):
        return settings
    out = copy.deepcopy(settings)
    for key in search_space(cfg):
        path = setting_name(key).split(".")
        if path[0] != "model":
            continue
        node = out.setdefault("model", {})
        for part in path[1:-1]:
            node = node.setdefault(part, {})  # type: ignore[union-attr, assignment]
        node[path[-1]] = TUNED  # type: ignore[index]
    return out


def tuning_table(runs: Mapping[tuple[str, ...], object], order: Sequence[str]) -> pd.DataFrame | None:
    """One row per tuned job run: ``runs`` maps (arm,) or (arm, repeat, fold) to its MLflow run; columns arm
    [, repeat, fold], trials, sampler, seed, best_objective, best_dev_auc, then each chosen setting (sorted by
    name). None when
    no run was tuned."""
    rows = []
    for key, run in runs.items():
        params, metrics = run.data.params, run.data.metrics  # type: ignore[attr-defined]
        chosen = {k[len(CHOSEN):]: v for k, v in params.items() if k.startswith(CHOSEN)}
        if not chosen:
            continue
        where = {"arm": str(key[0]), **({"repeat": int(key[1]), "fold": int(key[2])} if len(key) == 3 else {})}
        rows.append({**where, "trials": int(metrics.get("tune_trials", 0)), "sampler": params.get("tune.sampler"),
                     "seed": params.get("tune.seed"), "best_objective": metrics.get("tune_best_objective"),
                     "best_dev_auc": metrics.get("tune_best_dev_auc"), **chosen})
    if not rows:
        return None
    rank = {a: i for i, a in enumerate(order)}
    table = pd.DataFrame(rows)
    by = [c for c in ("arm", "repeat", "fold") if c in table.columns]
    table = table.sort_values(by, key=lambda c: c.map(rank) if c.name == "arm" else c, kind="stable")
    first = [*by, "trials", "sampler", "seed", "best_objective", "best_dev_auc"]
    return table[first + sorted(c for c in table.columns if c not in first)].reset_index(drop=True)


def _fmt(value: object) -> str:
    """A chosen value for the report: floats to 3 significant digits, anything else as logged."""
    if pd.isna(value):  # type: ignore[call-overload]
        return ""
    try:
        number = float(str(value))
    except ValueError:
        return str(value)
    return str(value) if str(value).lstrip("-").isdigit() else f"{number:.3g}"


def tuning_section(table: pd.DataFrame | None, out: Path) -> list[str]:
    """Write ``tuning.csv`` and ``tuning.md`` into ``out`` and return report.md's lines; [] (and no file) when no
    arm was tuned."""
    if table is None or table.empty:
        return []
    table.to_csv(out / "tuning.csv", index=False)
    shown = table.drop(columns=["best_objective", "best_dev_auc", "sampler", "seed"])
    shown = shown.assign(**{c: shown[c].map(_fmt) for c in shown.columns if c not in ("arm", "repeat", "fold",
                                                                                     "trials")})
    (out / "tuning.md").write_text(markdown_table(shown), encoding="utf-8")
    folds = "repeat" in table.columns
    samplers = "; ".join(sorted({f"sampler {s}, seed {d}" for s, d in zip(table["sampler"], table["seed"], strict=True)}))
    return [
        "## Tuning (nested in the training data)", "",
        f"Before training, each arm{' in each fold' if folds else ''} searched its training settings with the Hydra "
        f"Optuna sweeper ({samplers}): every trial trained on the training part's train rows and was scored on its "
        "dev rows at the epoch rule the final model uses (a network that keeps its best dev epoch: the epoch picked "
        "on one half of the dev rows, its AUC on the other, both ways averaged, so a longer schedule gains nothing "
        "from more epochs to pick from; otherwise the dev AUC of the model kept); the test "
        f"{'fold' if folds else 'split'} was never passed to a trial. The arm was then "
        "trained with the chosen settings and tested as without tuning; where this report lists a searched setting "
        f"elsewhere (the model settings show \"{TUNED}\", the configuration its starting value), these replace it. "
        "Chosen settings:", "",
        markdown_table(shown),
        "Bias and its guard: the dev part chose the settings and then the epoch and threshold of the final fit, so "
        "the chosen trial's objective and dev AUC, kept in [tuning.csv](tuning.csv), are optimistic (the best of "
        "the trials on that dev part, not estimates of performance); the guard is that no trial was given a test "
        "row and the test part was scored once, after the choice. Every trial is an MLflow run nested under its "
        "job's run.", "",
    ]
