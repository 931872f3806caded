"""What each setting of the composed config is for: the one declared partition that the study key, each arm's
key, the tuning's fixed settings and the report's config summary all read.

Three parts:

* result-defining, in four scopes: ``cohort`` (the study's name, cohort, split and folds: the study's parent key,
  and every arm's key), ``inputs`` (what an arm sees: its modalities, the crop; never searched by tuning),
  ``training`` (how an arm is trained: searched by tuning when ``tune.space`` names it) and ``tuning`` (the
  ``tune`` node: in an arm's key only by what its own search can change);
* ``report``: what is compared or reported, recomputed from the finished arms (changing it retrains nothing);
* ``execution``: how and where a run executes or is tracked, never its results.

A key covers everything below it unless a longer key says otherwise (``model`` is training, ``model.description``
report). A setting not declared here (``++trainer.gradient_clip_val=1``) counts as training, so it can only
retrain, never be ignored; tests/test_partition.py fails on any setting of the shipped configs left undeclared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

COHORT, INPUTS, TRAINING, TUNING = "cohort", "inputs", "training", "tuning"
REPORT, EXECUTION = "report", "execution"
#: the result-defining scopes (an arm's key)
RESULT = (COHORT, INPUTS, TRAINING, TUNING)

PARTITION: dict[str, str] = {
    # the study: name, cohort, split and folds
    "study.name": COHORT, "data": COHORT, "split": COHORT, "seed": COHORT,
    "cv.folds": COHORT, "cv.repeats": COHORT, "cv.dev_fraction": COHORT,
    # what an arm sees
    "study.arm": INPUTS, "modalities": INPUTS, "image_size": INPUTS, "crop": INPUTS,
    # how an arm is trained
    "image_encoder": TRAINING, "augment": TRAINING, "checkpoint": TRAINING, "early_stopping": TRAINING,
    "loader.batch_size": TRAINING, "loader.device_resident": TRAINING, "model": TRAINING, "fusion": TRAINING,
    "trainer._target_": TRAINING, "trainer.accelerator": TRAINING, "trainer.devices": TRAINING,
    "trainer.precision": TRAINING, "trainer.max_epochs": TRAINING, "trainer.deterministic": TRAINING,
    "trainer.channels_last": TRAINING, "trainer.compile": TRAINING, "trainer.benchmark": TRAINING,
    "trainer.strategy": TRAINING, "trainer.sync_batchnorm": TRAINING,
    "tune": TUNING,
    # self-supervised pretraining of the image encoder (liver_mm.pretrain): what the arm starts from
    "pretrain": TRAINING,
    # compared or reported only
    "study.arms": REPORT, "study.reference": REPORT, "study.holm_families": REPORT, "explain": REPORT,
    "modalities.description": REPORT, "model.description": REPORT, "fusion.description": REPORT,
    # how and where it runs (a finished run must still hold the outputs asked for: study/reuse.py)
    "cache_dir": EXECUTION, "logger": EXECUTION, "hydra": EXECUTION,
    # the dictionary's file: its content enters both keys (liver_mm.dictionary.dictionary_key), not its path
    "dictionary": EXECUTION,
    "loader.num_workers": EXECUTION, "loader.pin_memory": EXECUTION,
    "trainer.num_threads": EXECUTION, "trainer.log_every_n_steps": EXECUTION,
    "trainer.enable_model_summary": EXECUTION, "cv.log_models": EXECUTION, "cv.job": EXECUTION,
    "study.out_dir": EXECUTION,
    # the sweep's bookkeeping of each job
    "study.parent_run_id": EXECUTION, "study.key": EXECUTION, "study.arm_key": EXECUTION,
    "study.level": EXECUTION, "study.repeat": EXECUTION, "study.fold": EXECUTION, "study.run_name": EXECUTION,
}
#: nodes set per arm (reported per arm in the report's model settings, not in its config summary)
ARM_ROOTS = ("modalities", "model", "fusion", "study")


def declared(key: str) -> str | None:
    """The part of the dotted ``key`` (its longest declared prefix), None when no prefix is declared."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        part = PARTITION.get(".".join(parts[:n]))
        if part is not None:
            return part
    return None


def part_of(key: str) -> str:
    """The part of the dotted ``key``; an undeclared setting counts as :data:`TRAINING` (it can change results)."""
    return declared(key) or TRAINING


def _split_below(key: str) -> bool:
    return any(k.startswith(key + ".") for k in PARTITION)


def leaves(tree: Mapping, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of each setting in ``tree``, a node whole where the partition does not split it."""
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v and _split_below(key):
            yield from leaves(v, key)
        else:
            yield key, v


def select(tree: Mapping, *parts: str, prefix: str = "") -> dict:
    """The nested part of ``tree`` (a plain resolved config) whose settings belong to ``parts``."""
    out: dict = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v and _split_below(key):
            sub = select(v, *parts, prefix=key)
            if sub:
                out[k] = sub
        elif part_of(key) in parts:
            out[k] = v
    return out
