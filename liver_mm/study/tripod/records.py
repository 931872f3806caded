"""What a study did that its config summary does not say, recorded in the report's provenance when the study is
finished (:func:`study_records`) and read by the TRIPOD+AI answers and the reports' warnings:

* ``split_source``: who made the parts. A single split is the manifest's own ``split`` column used as given
  (:data:`SPLIT_GIVEN`) or one liver-mm made (:data:`SPLIT_MADE`); cross-validation always makes its folds
  (:data:`FOLDS_MADE`, or :data:`FOLDS_IGNORING` when the manifest has a split column, which the folds ignore).
* ``settings_source``: arm -> the ``liver-mm tune`` run whose chosen settings the arm trained with (every chosen
  setting equals the arm's config value), the split that search saw and whether its rows are test rows here
  (cross-validation: always; a single split: when the tune's split is not this one). Arms that tune inside their
  own jobs (``tune.trials``) have no entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from liver_mm.cohort.prepare import PreparedCohort

SPLIT_GIVEN = "the manifest's split column, used as given"
SPLIT_MADE = "made by liver-mm"
FOLDS_MADE = "cross-validation folds made by liver-mm"
FOLDS_IGNORING = "cross-validation folds made by liver-mm; the manifest's split column was ignored"
#: settings_source.<arm>.tuned_on: the tune's train/dev rows are this study's training rows, or test rows here
OWN_ROWS, TEST_ROWS = "this split's train and dev rows", "rows that are test rows of this study"


def manifest_has_split(cohort: PreparedCohort, data: Mapping[str, Any]) -> bool:
    """Whether the cohort's source manifest fills its ``split`` column (the rule of
    :func:`liver_mm.cohort.split.assign_split`: a filled column is used as given; a partly filled one is refused
    before any training)."""
    from liver_mm.io.dialect import options_from_config
    from liver_mm.io.schema import read_raw_table

    opts = options_from_config(data) if data.get("kind") == "manifest" else None
    raw = read_raw_table(cohort.source_manifest, log_renames=False, options=opts)
    if "split" not in raw.columns:
        return False
    return bool(raw["split"].astype("string").str.strip().replace("", None).notna().any())


def split_source(cohort: PreparedCohort, data: Mapping[str, Any], cv: bool) -> str:
    """``split_source`` of the provenance (module docstring)."""
    given = manifest_has_split(cohort, data)
    if cv:
        return FOLDS_IGNORING if given else FOLDS_MADE
    return SPLIT_GIVEN if given else SPLIT_MADE


def _uses(cfg: DictConfig, chosen: Mapping[str, str]) -> bool:
    """True when every chosen setting (``key`` -> value as the sweeper wrote it) is what ``cfg`` holds: applying
    them changes nothing (Hydra's own parsing of the values)."""
    from liver_mm.training.tune_space import apply_overrides

    marker = object()
    try:
        after = apply_overrides(cfg, [f"{k}={v}" for k, v in chosen.items()])
    except Exception:  # noqa: BLE001 - a value Hydra cannot parse is not this arm's setting
        return False
    for key in chosen:
        before = OmegaConf.select(cfg, key, default=marker)
        if before is marker or before != OmegaConf.select(after, key):
            return False
    return True


def settings_sources(client, exp_id: str, configs: Mapping[str, DictConfig], cohort: PreparedCohort,
                     cv: bool) -> dict[str, dict[str, str]]:
    """``settings_source`` of the provenance: arm -> {tune_run, tuned_arm, split_hash, tuned_on} for each arm
    (without its own search) whose settings are all those a finished ``liver-mm tune`` run on this cohort chose
    (the latest such run)."""
    from liver_mm.study.tuning_report import CHOSEN
    from liver_mm.training.tune_space import tuning_on

    runs = client.search_runs([exp_id], f"tags.study_level = 'tuning' and tags.manifest_hash = "
                                        f"'{cohort.manifest_hash}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"])
    tunes = [(r, {k[len(CHOSEN):]: v for k, v in r.data.params.items() if k.startswith(CHOSEN)}) for r in runs]
    out: dict[str, dict[str, str]] = {}
    for arm, cfg in configs.items():
        if tuning_on(cfg):
            continue
        for run, chosen in tunes:
            if chosen and _uses(cfg, chosen):
                split = str(run.data.tags.get("split_hash", "not recorded"))
                inside = not cv and split == cohort.split_hash
                out[arm] = {"tune_run": run.info.run_id, "tuned_arm": str(run.data.tags.get("arm", "?")),
                            "split_hash": split, "tuned_on": OWN_ROWS if inside else TEST_ROWS}
                break
    return out


def study_records(config: DictConfig, cohort: PreparedCohort, client, exp_id: str,
                  configs: Mapping[str, DictConfig]) -> dict[str, object]:
    """The provenance entries of this module (``split_source``, and ``settings_source`` when some arm's settings
    came from ``liver-mm tune``)."""
    from liver_mm.study.checks import check_cv

    cv = check_cv(config) is not None  # liver_mm.study.cv.run.uses_cv's rule
    records: dict[str, object] = {"split_source": split_source(cohort, config.data, cv)}
    sources = settings_sources(client, exp_id, configs, cohort, cv)
    if sources:
        records["settings_source"] = sources
    return records


def tuned_outside(provenance: Mapping[str, object]) -> dict[str, Mapping[str, str]]:
    """arm -> its ``settings_source`` entry, for the arms whose settings were tuned on rows that are test rows
    of this study."""
    sources = provenance.get("settings_source")
    if not isinstance(sources, Mapping):
        return {}
    return {str(a): s for a, s in sources.items() if isinstance(s, Mapping) and s.get("tuned_on") == TEST_ROWS}


def tuned_outside_warning(provenance: Mapping[str, object]) -> list[str]:
    """The report's warning (Markdown lines) when arms trained with settings a ``liver-mm tune`` run chose on rows
    that are test rows here; [] when none did."""
    outside = tuned_outside(provenance)
    if not outside:
        return []
    each = "; ".join(f"{arm}: `liver-mm tune` run {s.get('tune_run')} (arm {s.get('tuned_arm')}, split sha256 "
                     f"{str(s.get('split_hash'))[:12]})" for arm, s in outside.items())
    cv = str(provenance.get("split_source", "")).startswith("cross-validation")
    where = ("every nodule is a test case of some fold" if cv else
             "this study's split is another one, so its test part holds rows the search trained or scored on")
    inside = "inside the folds" if cv else "on this split"
    return [f"**Warning: settings tuned outside this study's training data.** {each}. These arms trained with the "
            "settings that search chose on the train and dev rows of a single split of this cohort, and some of "
            f"those rows are test rows here ({where}): their test estimates are optimistic. Tune {inside} "
            "instead (`tune.trials`, README \"Tuning\").", ""]
