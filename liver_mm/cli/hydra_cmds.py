"""``liver-mm train``, ``liver-mm study`` and ``liver-mm tune``: Hydra-composed runs (overrides as Hydra takes them)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("liver_mm")
# the configs ship inside the package (conf/ of a checkout is mapped to liver_mm.conf by pyproject.toml),
# so a wheel install finds them as well as a checkout
CONFIG_PATH = "pkg://liver_mm.conf"


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (a cohort, a path, a config value), not a bug."""
    from omegaconf.errors import MissingMandatoryValue

    from liver_mm.cohort.validate import ManifestValidationError
    from liver_mm.fileio import NotWritableError
    from liver_mm.io.images import ImageReadError
    from liver_mm.io.schema import ManifestError

    return (ManifestValidationError, ManifestError, ImageReadError, FileNotFoundError, ValueError,
            MissingMandatoryValue, NotWritableError)


def _check_output_dirs(overrides: list[str]) -> str | None:
    """Hydra creates its run (or sweep) folder before any task code runs: check it can, and say which
    folder cannot be written instead of Hydra's traceback. Returns the problem, or None."""
    from liver_mm.fileio import NotWritableError, check_writable_dir

    given = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        folder = Path(given[key]) if key in given else Path.cwd()  # the defaults lie under the working folder
        try:
            check_writable_dir(folder)
        except NotWritableError as exc:
            return f"{key}: {exc}"
    return None


#: what every Hydra task imports (training, tracking): imported at a job's start by
#: :func:`~liver_mm.runtime.import_frozen`
JOB_MODULES = ("liver_mm.training.run", "liver_mm.tracking.registry", "liver_mm.tracking.runs")


def run_hydra_app(config_name: str, task, overrides: list[str], script: Path | None = None) -> int:
    """Run ``task(cfg)`` as a Hydra app over ``liver_mm/conf/<config_name>.yaml`` with command-line overrides.

    Bad input ends the run with its message and exit status 1, no traceback (set
    ``LIVER_MM_DEBUG=1`` to see one). ``script``: the file that re-runs this app from its
    overrides alone (what Lightning's DDP launcher re-executes per device).
    """
    import hydra

    import liver_mm.conf  # noqa: F401 - registers the configs' OmegaConf resolvers
    from liver_mm.cohort.validate import ManifestValidationError
    from liver_mm.runtime import import_frozen, quick_exit, tune_malloc

    tune_malloc()
    user_errors = _user_errors()
    problem = None if "--cfg" in overrides or "-c" in overrides else _check_output_dirs(overrides)
    if problem:
        print(f"error: cannot write the run's output folder; nothing was run. {problem}", file=sys.stderr)
        raise SystemExit(1)

    def guarded(cfg):
        from liver_mm.dictionary import activate

        quick_exit()  # each job's process (a SLURM job, a joblib worker) exits without the final GC passes
        import_frozen(*JOB_MODULES)  # without the GC's passes over the growing heap; later passes skip them
        try:
            activate(cfg.get("dictionary"))  # the clinical variables this job reads tables with
            return task(cfg)
        except user_errors as exc:
            if os.environ.get("LIVER_MM_DEBUG"):
                raise
            if isinstance(exc, ManifestValidationError):
                log.error("the cohort failed validation; nothing was trained.\n%s", exc)
            else:
                log.error("%s: %s", type(exc).__name__, exc)
            raise SystemExit(1) from None

    app = hydra.main(config_path=CONFIG_PATH, config_name=config_name, version_base="1.3")(guarded)
    saved = sys.argv
    sys.argv = [str(script) if script else (saved[0] if saved else "liver-mm"), *overrides]
    try:
        app()
    finally:
        sys.argv = saved
    return 0


def train_app(overrides: list[str]) -> int:
    from liver_mm.training.run import train

    return run_hydra_app("train", train, overrides, script=Path(__file__).with_name("train_app.py"))


def _train(args: argparse.Namespace) -> int:
    return train_app(args.overrides)


def _study(args: argparse.Namespace) -> int:
    from liver_mm.study.steps import study_overrides
    from liver_mm.study.sweep import run_arm

    overrides = list(args.overrides)
    try:
        overrides += study_overrides(overrides)  # dictionary=PATH: its steps are the study's arms
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return run_hydra_app("study", run_arm, overrides)


def _tune(args: argparse.Namespace) -> int:
    from liver_mm.training.tune_app import tune_task

    return run_hydra_app("tune", tune_task, args.overrides)


# what a Ctrl-C leaves behind and how to go on (liver_mm.training.run ends an interrupted run KILLED;
# a rerun of a study finds its parent run and trains only the arms not yet finished)
_ON_INTERRUPT = {
    "train": "the run in progress is marked KILLED; rerun the same command to train it again",
    "study": "runs in progress are marked KILLED; rerun the same command to resume (finished arms are kept)",
    "tune": "the tuning run and its trial in progress are marked KILLED; rerun the same command to search again",
}

_COMMANDS = {
    "train": (
        _train,
        "train and evaluate one model (Hydra overrides, e.g. modalities=m3 data.n=300 trainer.max_epochs=2)",
        "Train one model of the study. Arguments are Hydra overrides of conf/train.yaml; "
        "add --cfg job to print the composed config.",
    ),
    "study": (
        _study,
        "the stepwise study: m1..m5 + controls as child runs, then DeLong comparison and report",
        "Run the seed's stepwise study as a Hydra multirun (conf/study.yaml). Arguments are Hydra "
        "overrides, e.g. data.n=300 image_size=64 trainer.max_epochs=1 hydra/launcher=joblib_local.",
    ),
    "tune": (
        _tune,
        "search one arm's training recipe on its dev split (hydra-optuna-sweeper; e.g. arm=m5 tune.trials=8)",
        "Search the training settings of one arm (conf/tune.yaml) with the Hydra Optuna sweeper: every trial trains "
        "on the train split and is scored by its dev AUC; the test split is never used. Arguments are Hydra "
        "overrides, e.g. arm=m5 experiment=demo tune.trials=8.",
    ),
}


def register(sub: argparse._SubParsersAction) -> None:
    for name, (func, help_text, description) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description)
        p.set_defaults(func=func, accepts_overrides=True, on_interrupt=_ON_INTERRUPT[name])
