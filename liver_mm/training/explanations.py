"""What a finished run adds for a reader who asks "why": Grad-CAM and lab importance on its test split.

Written into ``<run folder>/explain/`` (and logged there by the run): ``gradcam_montage.png``,
``gradcam_cases.csv`` and ``overlays/`` for a network with an image branch; ``importance.csv`` and
``importance.png`` (drop in test AUC when a lab is permuted) for any model that sees labs, the
scikit-learn controls included; the case gallery (``gallery.csv``, and ``gallery.png`` with ``gallery/`` for an
image branch: :mod:`liver_mm.explain.gallery`). Cross-validation folds explain nothing (``explain.enabled`` off there).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from liver_mm.cohort.prepare import PreparedCohort
from liver_mm.features.inputs import Features

log = logging.getLogger(__name__)


def explain_settings(cfg: DictConfig) -> dict | None:
    """``explain`` settings of this run, or None when the run explains nothing (disabled, a CV fold)."""
    ex = cfg.get("explain") or {}
    if not ex.get("enabled", False) or (cfg.get("study") or {}).get("level") == "fold":
        return None
    return {"cases": int(ex.get("cases", 16)), "repeats": int(ex.get("importance_repeats", 10)),
            "gallery": int(ex.get("gallery", 4))}


def _title(cfg: DictConfig, synthetic: bool) -> str:
    name = str((cfg.get("study") or {}).get("arm") or cfg.modalities.name)
    return f"{name}{' [synthetic]' if synthetic else ''}: "


def explain_network(cfg: DictConfig, cohort: PreparedCohort, feats: Features, net, threshold: float,
                    out: Path) -> list[Path]:
    """Grad-CAM (image branch) and lab importance of a fitted network (``inference_net``) on the test rows;
    returns the files written under ``out/explain`` ([] when the run explains nothing), the overlays last."""
    from liver_mm.explain import explain_run, feature_groups

    settings = explain_settings(cfg)
    if settings is None:
        return []
    test = cohort.df["split"].to_numpy() == "test"
    case_ids = cohort.df.loc[test, "case_id"].astype(str).tolist()
    tab = feats.tabular[test]
    images = None if feats.images is None else feats.images[test]
    written = explain_run(net.eval(), images, tab if tab.shape[1] else None,
                          feature_groups(feats.preprocessor.feature_names_out), feats.labels[test], case_ids,
                          out / "explain", threshold=threshold, n_cases=settings["cases"],
                          n_repeats=settings["repeats"], seed=int(cfg.seed), title=_title(cfg, cohort.synthetic),
                          clinical=_clinical(cfg, cohort, test), gallery_cases=settings["gallery"])
    return _written_files(written)


def _clinical(cfg: DictConfig, cohort: PreparedCohort, rows: np.ndarray):
    """The raw clinical values the model sees (its ``modalities.features`` columns) of ``rows``."""
    return cohort.df.loc[rows, list(cfg.modalities.features)].reset_index(drop=True)


def explain_estimator(cfg: DictConfig, cohort: PreparedCohort, feats: Features, est, out: Path,
                      threshold: float | None = None) -> list[Path]:
    """Lab importance (drop in test AUC) of a fitted scikit-learn estimator and, given its frozen ``threshold``,
    its case gallery; the files written under ``out/explain`` ([] when the run explains nothing)."""
    from liver_mm.explain import feature_groups
    from liver_mm.explain.gallery import write_gallery

    settings = explain_settings(cfg)
    if settings is None:
        return []
    test = cohort.df["split"].to_numpy() == "test"
    written = _explain_estimator(est, feats.tabular[test], feats.labels[test],
                                 feature_groups(feats.preprocessor.feature_names_out), out / "explain", settings,
                                 _title(cfg, cohort.synthetic), int(cfg.seed))
    if threshold is not None and settings["gallery"] > 0:
        prob = est.predict_proba(feats.tabular[test])[:, 1]
        written |= write_gallery(out / "explain", prob, feats.labels[test], threshold,
                                 cohort.df.loc[test, "case_id"].astype(str).tolist(), _clinical(cfg, cohort, test),
                                 settings["gallery"])
    return _written_files(written)


def _written_files(written: dict) -> list[Path]:
    return sorted(p for p in written.values() if Path(p).is_file()) + sorted(
        f for p in written.values() if Path(p).is_dir() for f in Path(p).rglob("*.png"))


def _explain_estimator(est, tab: np.ndarray, y: np.ndarray, groups: dict, folder: Path, settings: dict,
                       title: str, seed: int) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    from liver_mm.explain import permutation_importance
    from liver_mm.figures import importance_figure
    from liver_mm.fileio import atomic_to_csv

    if len(np.unique(y)) < 2:
        log.warning("permutation importance skipped: the test split has one class")
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    table = permutation_importance(lambda x: est.predict_proba(x)[:, 1], tab, y, groups,
                                   n_repeats=settings["repeats"], seed=seed)
    atomic_to_csv(table, folder / "importance.csv", index=False)
    fig = importance_figure(table, f"{title}permutation importance\n(drop in AUC; n={len(y)}, "
                                   f"{settings['repeats']} repeats)")
    fig.savefig(folder / "importance.png")
    plt.close(fig)
    return {"importance.csv": folder / "importance.csv", "importance.png": folder / "importance.png"}
