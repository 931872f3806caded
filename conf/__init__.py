"""liver-mm's Hydra configs, shipped as the package ``liver_mm.conf`` (``pkg://liver_mm.conf``).

The folder is ``conf/`` at the top of a checkout (pyproject.toml maps it into the package), so a
wheel carries it too. Importing the package registers the OmegaConf resolvers the configs use;
Hydra imports it when it reads ``pkg://liver_mm.conf``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from omegaconf import OmegaConf

_NAME = re.compile(r"[A-Za-z0-9_]+")


def csv(items: Sequence[str]) -> str:
    """``${liver_mm.csv:${study.arms}}``: a list of config names as Hydra's sweep string ``a,b,c``."""
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise ValueError(f"study.arms must be a non-empty list of arm names, e.g. study.arms=[m1,m5]; got {items!r}")
    names = [str(x) for x in items]
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"study.arms: {bad} are not arm names (conf/arm/<name>.yaml); got {names}")
    return ",".join(names)


def cv_jobs(folds: object, repeats: object) -> str:
    """``${liver_mm.cv_jobs:${cv.folds},${cv.repeats}}``: the fold jobs of a cross-validated study as Hydra's sweep
    string ``0,1,...,K*R-1`` (one job per (repeat, fold), so the joblib launcher runs folds in parallel), or
    ``null`` (one job per arm) without cross-validation."""
    if folds is None or int(folds) < 2:
        return "null"
    return ",".join(str(j) for j in range(int(folds) * max(1, int(repeats or 1))))


if not OmegaConf.has_resolver("liver_mm.csv"):
    OmegaConf.register_new_resolver("liver_mm.csv", csv)
if not OmegaConf.has_resolver("liver_mm.cv_jobs"):
    OmegaConf.register_new_resolver("liver_mm.cv_jobs", cv_jobs)


def last_features(path: object) -> list[str]:
    """``${liver_mm.last_features:${dictionary}}``: the data dictionary's last step's variables (the controls'
    inputs); ``null`` = the shipped dictionary (m5's)."""
    from liver_mm.study.steps import last_features as of_dictionary

    return of_dictionary(None if path in (None, "", "null") else str(path))


def controls_input(path: object) -> str:
    """``${liver_mm.controls_input:${dictionary}}``: the controls' Input label, ``clinical (<last step> features)``."""
    from liver_mm.study.steps import controls_input as of_dictionary

    return of_dictionary(None if path in (None, "", "null") else str(path))


if not OmegaConf.has_resolver("liver_mm.last_features"):
    OmegaConf.register_new_resolver("liver_mm.last_features", last_features)
if not OmegaConf.has_resolver("liver_mm.controls_input"):
    OmegaConf.register_new_resolver("liver_mm.controls_input", controls_input)
