"""TRIPOD+AI items 12a (how the data were used), 12c (model building, tuning) and 13 (class imbalance), answered from
what this study recorded (:class:`~liver_mm.study.tripod.evidence.Evidence`): the split's source, the epoch rule,
whether and what was tuned and where tuned settings came from (:mod:`liver_mm.study.tripod.records`)."""

from __future__ import annotations

from collections.abc import Mapping

from liver_mm.study.tripod.evidence import (
    ANSWERED,
    AUTHORS,
    MODEL_SETTINGS,
    PARTLY,
    PARTS,
    Answer,
    Evidence,
    model_type,
    sub,
)
from liver_mm.study.tripod.records import FOLDS_IGNORING, SPLIT_GIVEN, SPLIT_MADE, tuned_outside


def _networks(ev: Evidence) -> bool:
    return any(ev.model(a).get("kind") == "lightning" for a in ev.arms)


def _searched(ev: Evidence, key: str) -> str | None:
    """The search of a network setting (``trainer.max_epochs``) when this study tuned it, else None."""
    from liver_mm.training.tune_space import setting_name

    if not ev.config("tune", "trials") or not _networks(ev):
        return None
    space = ev.config("tune", "space")
    parts = [space.get(p) for p in ("network", "image", "mlp")] if isinstance(space, Mapping) else []
    found = [str(v) for part in parts if isinstance(part, Mapping)
             for k, v in part.items() if setting_name(str(k)) == key and v is not None]
    return found[0] if found else None


def _dev_chooses(ev: Evidence) -> str:
    """What the dev part chose in this study: the searched settings, the epoch, when to stop, the threshold."""
    roles = ["the searched settings (item 12c)"] if ev.config("tune", "trials") else []
    if _networks(ev):
        if ev.config("checkpoint", "select") == "best":
            roles.append("the networks' epoch")
        if ev.config("early_stopping", "enabled"):
            roles.append("when the networks stop")
    roles.append("the classification threshold")
    return ", ".join(roles[:-1]) + (" and " if len(roles) > 1 else "") + roles[-1]


def partition(ev: Evidence) -> Answer:
    """Item 12a: the parts of each analysis, who made them and what each part chose."""
    source = ev.provenance.get("split_source")
    if ev.design == "cv":
        ignored = (" The manifest's split column was ignored: cross-validation makes its own parts."
                   if source == FOLDS_IGNORING else "")
        text = (f"{ev.config('cv', 'folds')}-fold cross-validation repeated {ev.config('cv', 'repeats')} time(s), "
                f"seed {ev.provenance.get('seed')}, folds made by liver-mm: grouped by patient and identical image, "
                "stratified by label; each fold model trains on the other folds, where a grouped, stratified dev "
                f"part (fraction {ev.config('cv', 'dev_fraction')}) chooses {_dev_chooses(ev)}; every nodule is "
                f"a test case once per repeat.{ignored}")
        return ANSWERED, text, ev.pointer("cv_fold_sizes.csv", "oof_predictions.csv")
    head = (f"One split (sha256 {ev.provenance.get('split_hash', 'not recorded')}): train fits the models, dev "
            f"chooses {_dev_chooses(ev)}, test is used for evaluation only.")
    if source == SPLIT_GIVEN:
        how = ("The split is the manifest's own split column, used as given after a check that no patient or "
               "identical image spans two parts; liver-mm did not make it (split.fractions and split.seed unused).")
    elif source == SPLIT_MADE:
        how = (f"liver-mm made it with fractions {ev.config('split', 'fractions')} and seed "
               f"{ev.config('split', 'seed')}, grouped by patient and identical image, stratified by label.")
    else:
        return (PARTLY, f"{head} Whether liver-mm made the split or the manifest's split column gave it is not "
                        "recorded. For the authors: how the split was made.", ev.pointer("counts.csv", "report.md: Cohort"))
    return ANSWERED, f"{head} {how}", ev.pointer("counts.csv", "report.md: Cohort")


def model_building(ev: Evidence) -> Answer:
    """Item 12c: the models, the epochs and epoch rule, the tuning and where tuned settings came from."""
    arms = "; ".join(f"{a}: {model_type(ev, a)}" for a in ev.arms)
    es = ev.config("early_stopping", "enabled")
    select = ev.config("checkpoint", "select")
    epochs = _searched(ev, "trainer.max_epochs")
    length = (f"for the number of epochs each job's search chose (trainer.max_epochs searched over {epochs}; the "
              f"configured {ev.config('trainer', 'max_epochs')} was only the starting value)" if epochs else
              f"for {ev.config('trainer', 'max_epochs')} epochs")
    steps = [f"networks train {length}, early stopping "
             f"{'on (patience ' + str(ev.config('early_stopping', 'patience')) + ')' if es else 'off'}"
             + (f", keeping the {'epoch with the best dev AUC' if select == 'best' else 'last epoch'}" if select else "")
             ] if _networks(ev) else []
    steps.append(f"seed {ev.provenance.get('seed')}")
    valid = ("internal validation by cross-validation (item 12a)" if ev.design == "cv"
             else "internal validation on the held-out test part (item 12a)")
    steps_text = "; ".join(steps)
    outside = _outside_text(ev)
    return (PARTLY, f"{arms}. {steps_text[:1].upper() + steps_text[1:]}. {_tuning_text(ev)}; {valid}.{outside} "
                    "For the authors: the rationale for the models and settings.", MODEL_SETTINGS)


def _tuning_text(ev: Evidence) -> str:
    """How the settings were chosen: fixed by the configuration, or searched per training job (``tune.trials``),
    with the objective's epoch rule and what guards the estimate against the search's selection."""
    trials = ev.config("tune", "trials")
    if not trials:
        return ("Settings are fixed by the configuration; no hyperparameter search ran inside this study's training "
                f"jobs; the dev part chose only {_dev_chooses(ev)}")
    where = "each fold's" if ev.design == "cv" else "the"
    table = " (chosen settings per arm: tuning.csv, section Tuning)" if "tuning.csv" in ev.files else ""
    if _networks(ev) and ev.config("checkpoint", "select") == "best":
        rule = ("for a network the dev AUC of the epoch the final model's rule (checkpoint.select=best) picks, "
                "picked on one half of the dev rows and scored on the other (both ways, averaged), so a longer "
                "schedule gains nothing from more epochs to pick from")
    elif _networks(ev):
        rule = "for a network the dev AUC of its last epoch, the epoch the final model keeps (checkpoint.select=last)"
    else:
        rule = "the dev AUC of the fitted model"
    return (f"Hyperparameters searched by Optuna (hydra-optuna-sweeper, {ev.config('tune', 'sampler')} sampler, "
            f"{trials} trials per training job) on {where} training part only; objective: {rule}. The chosen "
            "trial's dev AUC is optimistic (the best of the trials on that dev part; kept out of the report); the "
            "guard: no trial is given a test row, and the test part is scored once, after the choice"
            f"{table}")


def _outside_text(ev: Evidence) -> str:
    """The arms whose settings a separate ``liver-mm tune`` run chose, and whether that search saw rows that are
    test rows here."""
    sources = ev.provenance.get("settings_source")
    if not isinstance(sources, Mapping) or not sources:
        return ""
    outside = tuned_outside(ev.provenance)
    each = "; ".join(f"{a}: run {s.get('tune_run')} on split sha256 {str(s.get('split_hash'))[:12]}"
                     for a, s in sources.items() if isinstance(s, Mapping))
    text = f" Settings chosen by a separate `liver-mm tune` search on a single split ({each})"
    if outside:
        return (text + f": for {', '.join(outside)} that search's train and dev rows are test rows of this study, "
                       "so their test estimates are optimistic.")
    return text + ": on this split's train and dev rows; the test part was not used."


def imbalance(ev: Evidence) -> Answer:
    """Item 13: class weights, and whether this study's parts were stratified by label."""
    weights = [f"{a}: pos_weight {m.get('pos_weight')}" for a in ev.arms
               if (m := ev.model(a)).get("pos_weight") is not None]
    weights += [f"{a}: class_weight {est.get('class_weight')}" for a in ev.arms
                if (est := sub(ev.model(a), "estimator")).get("class_weight") is not None]
    counts = ""
    if ev.cohort is not None:
        y = ev.y()
        counts = f" The cohort holds {int(y.sum())} malignant and {int(len(y) - y.sum())} benign nodules."
    if not ev.provenance.get("model_settings"):
        return AUTHORS, "The arms' model settings are not recorded." + counts, ""
    method = ("Class weights: " + "; ".join(weights) + "." if weights else
              "No class-imbalance method: unweighted loss (model.pos_weight empty), no class_weight, no "
              "resampling.")
    return ANSWERED, f"{method} {_stratification(ev)}{counts}", MODEL_SETTINGS


def _stratification(ev: Evidence) -> str:
    """Whether this study's parts were stratified by label, from the recorded split source."""
    source = ev.provenance.get("split_source")
    if ev.design == "cv":
        return "The folds and each fold's dev part are stratified by label (made by liver-mm)."
    if source == SPLIT_MADE:
        return "The split is stratified by label (made by liver-mm)."
    if source == SPLIT_GIVEN:
        share = ""
        if ev.parts is not None and ev.cohort is not None:
            y, part = ev.y(), ev.parts.iloc[:, 0]
            share = ": malignant share " + ", ".join(
                f"{p} {100 * y.loc[part.index[part == p]].mean():.1f}%" for p in PARTS if (part == p).any())
        return f"The split is the manifest's own split column, not stratified by liver-mm{share}."
    return "Whether the split is stratified by label is not recorded."
