"""The report's provenance: what a study records of itself (seed, hashes, versions, config) and the appendix
"How this was produced" that shows it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

import pandas as pd


def study_provenance(config_summary: Mapping[str, object], manifest_hash: str, split_hash: str,
                     seed: int) -> dict[str, object]:
    """Provenance for :func:`write_report`: seed, cohort hashes, git commit, package versions, config.

    Adds :func:`liver_mm.tracking.runs.provenance` (imports torch) and the versions of the
    statistics stack.
    """
    from importlib.metadata import version

    import numpy
    import scipy
    import sklearn

    from liver_mm.tracking.runs import provenance

    return {"seed": int(seed), "manifest_hash": manifest_hash, "split_hash": split_hash, **provenance(),
            "numpy_version": numpy.__version__, "pandas_version": pd.__version__,
            "scipy_version": scipy.__version__, "sklearn_version": sklearn.__version__,
            "mlflow_version": version("mlflow"), "config": dict(config_summary)}


def provenance_section(provenance: Mapping[str, object], command: str) -> list[str]:
    from liver_mm.tracking.runs import flatten

    settings = provenance.get("model_settings")
    flat = flatten({k: v for k, v in provenance.items() if k != "model_settings"})
    lines = ["## Appendix: How this was produced", "", "```", command.strip(), "```", "",
             "| item | value |", "|---|---|"]
    blocks = []
    for key, value in flat.items():
        text = str(value)
        if "\n" in text:
            blocks += [f"**{key}**", "", "```", text.rstrip(), "```", ""]
        else:
            lines.append(f"| {key} | {text.replace('|', chr(92) + '|')} |")
    lines += ["", *blocks]
    if isinstance(settings, Mapping) and settings:
        lines += _model_settings_table(settings)
    lines.append(f"Generated at {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S')} UTC.")  # noqa: UP017
    return lines + [""]


def _model_settings_table(settings: Mapping[str, object]) -> list[str]:
    """The model settings of each arm (arm -> nested settings) as one table: a row per setting, a column per arm."""
    from liver_mm.tracking.runs import flatten

    flat = {arm: flatten(v) if isinstance(v, Mapping) else {} for arm, v in settings.items()}
    rows = list(dict.fromkeys(k for f in flat.values() for k in f))

    def cell(value: object) -> str:
        return "" if value is None else str(value).replace("|", chr(92) + "|").replace("\n", " ")

    lines = ["### Model settings of each arm", "", "| setting | " + " | ".join(flat) + " |",
             "|---|" + "---|" * len(flat)]
    lines += [f"| {row} | " + " | ".join(cell(f.get(row)) for f in flat.values()) + " |" for row in rows]
    return [*lines, ""]
