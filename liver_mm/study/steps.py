"""The stepwise study's arms from a data dictionary's ``steps:`` (``liver-mm study dictionary=PATH``).

Step k is an arm named as the step: the image (when the step or an earlier one says ``image: true``) plus the
cumulative ``add`` variables of steps 1..k, on the fusion network. The controls (tabular MLP, logistic regression,
GBM) take the last step's variables (``conf/modalities/tabular_only.yaml`` resolves them with
:func:`last_features`); FIB-4 and APRI run only where the dictionary declares their inputs. ``study.reference``
is the first step; the Holm families are the steps, then the steps with the controls.

The shipped liver dictionary's steps are m1..m5, the built-in arms (``conf/arm/``): a study without
``dictionary=`` composes exactly as before. A user's step whose name is a built-in arm must match it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources

from omegaconf import OmegaConf

from liver_mm.dictionary import Dictionary, default_dictionary, resolve
from liver_mm.features.scores import SCORE_INPUTS

log = logging.getLogger(__name__)

CONTROLS = ("tab_mlp", "tab_logreg")
STUDY_KEYS = ("study.arms", "study.reference", "study.holm_families")


def builtin_arms() -> dict[str, dict]:
    """Built-in arm name -> its modalities file's content (``None`` for arms on another model's modalities)."""
    conf = resources.files("liver_mm.conf")
    out: dict[str, dict] = {}
    for f in conf.joinpath("arm").iterdir():
        if f.name.endswith(".yaml"):
            mod = conf.joinpath("modalities", f.name)
            out[f.name[:-5]] = dict(OmegaConf.to_container(OmegaConf.load(str(mod)))) if mod.is_file() else {}
    return out


def step_modalities(d: Dictionary) -> dict[str, dict]:
    """Step name -> its ``modalities`` node: name, description, image (this step or an earlier one), features."""
    out, image = {}, False
    for step in d.steps:
        image = image or step.image
        features = list(d.features(step.name))
        desc = step.description or ("image" if image else "clinical") + (
            (" + " if image else ": ") + ", ".join(features) if features else "")
        out[step.name] = {"name": step.name, "description": desc, "image": image, "features": features}
    return out


def register_steps(d: Dictionary) -> list[str]:
    """Register one Hydra arm node (``arm=<step>``) per step of ``d`` that is not a built-in arm; a step named
    like a built-in arm must have the built-in's image and variables (else ValueError naming both). Returns the
    step names in order."""
    from hydra.core.config_store import ConfigStore

    builtin = builtin_arms()
    store = ConfigStore.instance()
    for name, mods in step_modalities(d).items():
        if name in builtin:
            known = builtin[name]
            if (bool(known.get("image")), list(known.get("features") or [])) != (mods["image"], mods["features"]):
                raise ValueError(
                    f"{d.source}: step {name!r} is the name of a built-in arm (image={known.get('image')}, "
                    f"variables {list(known.get('features') or [])}), but the dictionary gives it "
                    f"image={mods['image']}, variables {mods['features']}: rename the step")
            continue
        store.store(group="arm", name=name, package="_global_",
                    node={"defaults": [{"override /modalities": "m1"}, {"override /model": "fusion"}, "_self_"],
                          "modalities": mods, "study": {"arm": name}})
    return list(d.step_names)


def runnable_scores(d: Dictionary) -> dict[str, tuple[str, ...]]:
    """Score arm -> the inputs ``d`` does not declare (empty: the score can run)."""
    return {arm: tuple(v for v in inputs if v not in d) for arm, inputs in SCORE_INPUTS.items()}


def skipped_scores(path: str | None) -> dict[str, str]:
    """Score arm -> why it cannot run on the dictionary at ``path`` (None: the shipped one, which declares every
    input): ``inputs ast, alt, platelets not declared by the data dictionary lesions.yaml``; the report's line
    on the score arms this study could not run."""
    d = resolve(path)
    return {arm: f"inputs {', '.join(missing)} not declared by the data dictionary {d.source}"
            for arm, missing in runnable_scores(d).items() if missing}


def _given(overrides: Sequence[str], key: str) -> str | None:
    """The value of the last ``key=value`` among ``overrides`` (``+``/``++`` allowed), or None."""
    found = None
    for o in overrides:
        k, sep, v = o.partition("=")
        if sep and k.lstrip("+") == key:
            found = v
    return found


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.strip().strip("[]").split(",") if s.strip()]


def study_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides a study command with ``dictionary=PATH`` gains (nothing without one): its steps registered
    as arms, ``study.arms`` = steps + controls, ``study.reference`` = the first step, the Holm families by the
    steps. What the command sets itself is kept; a score arm whose inputs are undeclared is dropped from
    ``study.arms`` with a warning naming them."""
    path = _given(overrides, "dictionary")
    if not path or path == "null":
        return []
    d = resolve(path)
    if d.content_hash() == default_dictionary().content_hash():
        return []  # the shipped steps m1..m5: the built-in arms and conf/study.yaml's families, as without it
    if not d.steps:
        raise ValueError(f"{d.source}: the dictionary declares no steps: add a steps: list to run a study")
    steps = register_steps(d)
    extra: list[str] = []
    arms_text = _given(overrides, "study.arms")
    if arms_text is None:
        extra.append(f"study.arms=[{','.join([*steps, *CONTROLS])}]")
    else:
        arms = _names(arms_text)
        missing = runnable_scores(d)
        skipped = [a for a in arms if missing.get(a)]
        for a in skipped:
            log.warning("arm %s skipped: the dictionary %s does not declare its inputs %s", a, d.source,
                        ", ".join(missing[a]))
        if skipped:
            extra.append(f"study.arms=[{','.join(a for a in arms if a not in skipped)}]")
    if _given(overrides, "study.reference") is None:
        extra.append(f"study.reference={steps[0]}")
    if _given(overrides, "study.holm_families") is None:
        extra.append("study.holm_families=[{name:steps,arms:[" + ",".join(steps) + "]},"
                     "{name:controls,arms:[" + ",".join([*steps, *CONTROLS]) + "]}]")
    return extra


def last_features(path: str | None) -> list[str]:
    """``${liver_mm.last_features:${dictionary}}``: the controls' variables (the last step's); the shipped
    dictionary's are m5's."""
    return list(resolve(path).last_features())


def controls_input(path: str | None) -> str:
    """``${liver_mm.controls_input:${dictionary}}``: the controls' Input label in Table 3, ``clinical (<the last
    step> features)`` (the shipped dictionary: ``clinical (m5 features)``)."""
    d = resolve(path)
    return f"clinical ({d.steps[-1].name if d.steps else 'no'} features)"
