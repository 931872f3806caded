"""The data dictionary a finished study was run with, read back from what the study logged.

``liver-mm evaluate`` reads and validates the external cohort, and prepares the study's own cohort for the overlap
check, with the study's dictionary: its missing tokens, categories, synonyms, aliases, units and ranges. That
dictionary is the one each trained arm's model saved (its ``preprocessing.json`` artifact: every variable's
dictionary entry and the missing tokens), never the installed package's default nor whatever file the study's
``dictionary=`` path holds today. A state saved before the data dictionary (no ``variables``) was fitted with the
shipped dictionary, as :meth:`~liver_mm.features.tabular.TabularPreprocessor.from_dict` reads it. A clinical score's
inputs that no trained arm declares are the formula's own variables: their shipped entries (units of the formula).

The same states say which inputs the models learned to take missing (:func:`learned_missing`): a variable missing
in some training rows got a missing indicator, and the study's own test cases without it were scored that way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from liver_mm.dictionary import Dictionary, activate, active, default_dictionary, variable_from_canonical
from liver_mm.study.external.source import ArmRun, StudySource, StudySourceError

log = logging.getLogger(__name__)
STATE = "preprocessing.json"  # each trained arm's fitted clinical preprocessing, with its dictionary entries


def _state(client, run: ArmRun, study: str, tmp: Path) -> dict:
    """The ``preprocessing.json`` a trained arm's run logged (``StudySourceError`` naming the run without it)."""
    if STATE not in run.artifacts:
        raise StudySourceError(
            f"study {study}: arm {run.arm}'s run {run.run_id} logged no {STATE} (the data dictionary entries and "
            "missing tokens its model was trained with): the study's data dictionary cannot be read back, so the "
            "external cohort cannot be read as the study read its own; rerun the study to log it")
    path = client.download_artifacts(run.run_id, STATE, str(tmp / "dictionary" / run.arm))
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StudySourceError(f"study {study}: arm {run.arm}'s run {run.run_id}: {STATE} is unreadable "
                               f"({exc})") from None


def logged_dictionary(states: Mapping[str, Mapping], score_inputs: Mapping[str, list[str]], study: str,
                      configured: str | None) -> Dictionary:
    """The study's dictionary from its trained arms' saved ``states`` (arm -> ``preprocessing.json`` content)
    and the inputs of its score arms (arm -> variables). ``configured``: the study's ``dictionary=`` value (None:
    the shipped one), named in the result's ``source`` only. ``StudySourceError`` when two arms saved different
    entries or missing tokens for one variable, or when a study run with its own dictionary has no trained arm."""
    shipped = default_dictionary()
    variables: dict[str, tuple[str, dict]] = {}
    missing: dict[tuple[str, ...], str] = {}
    for arm, state in states.items():
        if "variables" not in state:  # saved before the data dictionary: fitted with the shipped one
            saved = {f: shipped[f].canonical() for f in state.get("features", []) if f in shipped}
            tokens = tuple(shipped.missing)
        else:
            saved, tokens = dict(state["variables"]), tuple(state.get("missing_tokens", ()))
        missing.setdefault(tokens, arm)
        for f, entry in saved.items():
            first = variables.setdefault(f, (arm, dict(entry)))
            if first[1] != entry:
                raise StudySourceError(f"study {study}: arms {first[0]} and {arm} saved different data dictionary "
                                       f"entries for {f}: not one study's dictionary")
    if len(missing) > 1:
        (a, ta), (b, tb) = ((arm, list(t)) for t, arm in list(missing.items())[:2])
        raise StudySourceError(f"study {study}: arms {a} and {b} saved different missing tokens ({ta} and {tb}): "
                               "not one study's dictionary")
    if not states and configured:
        raise StudySourceError(f"study {study} ran with dictionary={configured} but none of its arms "
                               f"({', '.join(score_inputs)}) saved a model with the dictionary's entries ({STATE}): "
                               "the study's data dictionary cannot be read back")
    out = {f: variable_from_canonical(e) for f, (_arm, e) in variables.items()}
    for arm, inputs in score_inputs.items():
        for f in inputs:
            if f not in out and f in shipped:
                out[f] = shipped[f]
                log.info("study %s: %s's input %s read with the formula's own (shipped) entry", study, arm, f)
    tokens = next(iter(missing)) if missing else tuple(shipped.missing)
    return Dictionary(out, (), tokens, f"the data dictionary of study {study} ({configured or 'the shipped one'}) "
                      "as its models saved it")


def learned_missing(states: Mapping[str, Mapping], score_inputs: Mapping[str, list[str]]) -> frozenset[str]:
    """The model inputs every arm reading them learned to take missing: missing in some of its training rows (a
    saved missing indicator), read by no clinical score (a formula takes no missing input)."""
    seen: dict[str, bool] = {}
    for state in states.values():
        for f in state.get("features", []):
            learned = bool(state.get("stats", {}).get(f, {}).get("indicator", False))
            seen[f] = seen.get(f, True) and learned
    scored = {f for inputs in score_inputs.values() for f in inputs}
    return frozenset(f for f, ok in seen.items() if ok and f not in scored)


@dataclass(frozen=True)
class StudyDictionary:
    """What the study's models saved: its ``dictionary`` and the inputs they learned to take missing."""

    dictionary: Dictionary
    learned_missing: frozenset[str]


def study_dictionary(source: StudySource, tmp: Path) -> StudyDictionary:
    """The data dictionary ``source``'s models were trained with and the inputs they learned to take missing, read
    from each trained arm's logged ``preprocessing.json`` (see the module docstring); files go to ``tmp``."""
    trained = {a: r for a, r in source.arms.items() if r.kind != "score"}
    states = {a: _state(source.client, r, source.name, tmp) for a, r in trained.items()}
    scores = {a: r.features for a, r in source.arms.items() if r.kind == "score"}
    configured = source.arms[source.reference].config.get("dictionary")
    d = logged_dictionary(states, scores, source.name, None if configured in (None, "") else str(configured))
    return StudyDictionary(d, learned_missing(states, scores))


@contextmanager
def reading_with(dictionary: Dictionary) -> Iterator[Dictionary]:
    """Tables are read with ``dictionary`` inside the block; the dictionary active before comes back after."""
    before = active()
    activate(dictionary)
    try:
        yield dictionary
    finally:
        activate(before)
