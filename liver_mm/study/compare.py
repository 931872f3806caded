"""Comparing a study's arms on one shared split: Table 3 and the DeLong table (pure numpy/pandas).

Every arm's predictions table has columns ``case_id``, ``split`` (dev | test), ``label``
(benign | malignant) and ``prob`` (probability of malignancy). Each arm's threshold is chosen
by Youden's J on its dev predictions, frozen, and applied to test (as the child run did);
AUCs carry DeLong CIs, proportions Wilson CIs. The DeLong table is exactly
:func:`liver_mm.stats.delong_report` on the test predictions, i.e. what ``liver-mm delong``
prints for the same CSV.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.stats import delong_report, encode_labels, markdown_table
from liver_mm.study.report.tables import (
    METRICS,
    TABLE3_COLUMNS,
    delong_frame,
    format_delong,
    format_table3,
)
from liver_mm.training.evaluate import split_metrics

log = logging.getLogger(__name__)

PRED_COLUMNS = ("case_id", "split", "label", "prob")  # one arm's predictions table
_RESERVED = ("case_id", "label")  # columns of StudyComparison.test that are not arms


@dataclass(frozen=True)
class StudyComparison:
    """The arms compared on the same test cases.

    order: arms in stepwise order; reference: the arm every other is tested against.
    test: (N, 2 + k) case_id, label (benign/malignant) and one probability column per arm,
    sorted by case_id (:func:`compare_study`) or as given (:func:`compare_frozen`). table3: numeric Table 3, one row per arm (:data:`TABLE3_COLUMNS`);
    delong: the :func:`~liver_mm.stats.delong_report` dict (JSON-ready).
    """

    order: tuple[str, ...]
    reference: str
    test: pd.DataFrame
    table3: pd.DataFrame
    delong: dict
    alpha: float = 0.05
    families: Mapping[str, Sequence[str]] | None = None

    @property
    def y_test(self) -> np.ndarray:
        """Test labels (N,) int 0/1, malignant = 1."""
        return encode_labels(self.test["label"].to_numpy(dtype=object))

    def prob(self, arm: str) -> np.ndarray:
        """Test probabilities of malignancy (N,) of one arm."""
        return self.test[arm].to_numpy(dtype=np.float64)

    @property
    def table3_md(self) -> str:
        """Table 3 as Markdown: AUC (DeLong CI), accuracy / sensitivity / specificity as "68.5% (74/108; 59.2–76.6)"."""
        return markdown_table(format_table3(self.table3))

    @property
    def delong_table(self) -> pd.DataFrame:
        """Numeric DeLong table, one row per comparison (see :func:`liver_mm.study.report.tables.delong_frame`)."""
        return delong_frame(self.delong)

    @property
    def delong_md(self) -> str:
        """DeLong table as Markdown."""
        return markdown_table(format_delong(self.delong))


def _arm_error(arm: str, message: str) -> ValueError:
    return ValueError(f"arm {arm!r}: {message}")


def _first(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(ids)[:limit])
    return shown + (f" ... ({len(ids)} in all)" if len(ids) > limit else "")


def check_predictions(arm: str, pred: pd.DataFrame) -> pd.DataFrame:
    """One arm's predictions checked and normalised: case_id text, split text, label 0/1 as ``y``, prob float.

    Raises ``ValueError`` naming the arm, the column and the first bad row (0-based) and case.
    Rows of splits other than dev/test are dropped.
    """
    missing = [c for c in PRED_COLUMNS if c not in pred.columns]
    if missing:
        raise _arm_error(arm, f"predictions lack column(s) {', '.join(missing)} (columns: {list(pred.columns)})")
    df = pd.DataFrame({"case_id": pred["case_id"].astype(str).to_numpy(dtype=object),
                       "split": pred["split"].astype(str).str.strip().to_numpy(dtype=object)})
    try:
        df["y"] = encode_labels(pred["label"].to_numpy(dtype=object), name=f"arm {arm!r} column 'label'")
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    prob = pd.to_numeric(pred["prob"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(prob) | (prob < 0) | (prob > 1))
    if bad.size:
        i = int(bad[0])
        raw = pred["prob"].iloc[i]
        value = "a missing value" if pd.isna(raw) else f"'{raw}'"
        raise _arm_error(arm, f"column 'prob' has {value} at row {i} (case_id "
                              f"{df['case_id'].iloc[i]}); need a probability in [0, 1] ({bad.size} bad row(s))")
    df["prob"] = prob
    df = df[df["split"].isin(["dev", "test"])].reset_index(drop=True)
    dup = df.duplicated(["split", "case_id"])
    if dup.any():
        raise _arm_error(arm, f"case_id {df['case_id'][dup].iloc[0]} appears more than once in split "
                              f"{df['split'][dup].iloc[0]!r} ({int(dup.sum())} duplicate(s))")
    for split in ("dev", "test"):
        y = df.loc[df["split"] == split, "y"]
        if y.nunique() < 2:
            raise _arm_error(arm, f"the {split} split has {len(y)} case(s) and not both classes; "
                                  "need benign and malignant cases")
    return df


def _check_same_cases(split: str, ref: str, ref_df: pd.DataFrame, arm: str, df: pd.DataFrame) -> str | None:
    """None when arm predicted exactly ref's cases of ``split`` with the same labels, else the problem."""
    a = ref_df[ref_df["split"] == split].set_index("case_id")["y"]
    b = df[df["split"] == split].set_index("case_id")["y"]
    lacking, extra = a.index.difference(b.index), b.index.difference(a.index)
    if len(lacking) or len(extra):
        parts = [f"predicted {len(b)} {split} cases, {ref!r} {len(a)}"]
        if len(lacking):
            parts.append(f"missing {_first(list(lacking))}")
        if len(extra):
            parts.append(f"not in {ref!r}: {_first(list(extra))}")
        return "; ".join(parts)
    differ = b.index[b.to_numpy() != a.reindex(b.index).to_numpy()]
    if len(differ):
        cid = differ[0]
        names = ("benign", "malignant")
        return (f"{split} case {cid} is labelled {names[int(b[cid])]} but {names[int(a[cid])]} in {ref!r} "
                f"({len(differ)} case(s) differ)")
    return None


def arm_metrics(pred: pd.DataFrame, alpha: float = 0.05) -> dict[str, float]:
    """Table 3 numbers of one checked arm (:func:`check_predictions` output): exactly what its run logged
    (:func:`liver_mm.training.evaluate.split_metrics`), without the ``test_`` prefix."""
    dev, test = pred[pred["split"] == "dev"], pred[pred["split"] == "test"]
    return split_metrics(dev["y"].to_numpy(), dev["prob"].to_numpy(), test["y"].to_numpy(),
                         test["prob"].to_numpy(), alpha=alpha)


def compare_study(
    predictions: Mapping[str, pd.DataFrame],
    order: Sequence[str],
    reference: str = "m1",
    alpha: float = 0.05,
    descriptions: Mapping[str, str] | None = None,
    families: Mapping[str, Sequence[str]] | None = None,
) -> StudyComparison:
    """Table 3 and the DeLong table of the arms in ``order`` from their predictions tables.

    predictions: arm -> DataFrame (case_id, split, label, prob); arms not in ``order`` are
    ignored with a warning. Every arm must have predicted the same test cases with the same
    labels as the reference (a mismatch raises ``ValueError`` naming the arm); differing dev
    cases only warn (each arm's threshold comes from its own dev predictions).
    descriptions: arm -> what it sees (from the arm's config; empty when not given).
    families: Holm families (family -> arms), see :func:`liver_mm.stats.delong_report`.
    """
    order = check_order(order, reference, predictions)
    ignored = sorted(set(predictions) - set(order))
    if ignored:
        log.warning("predictions of arm(s) %s ignored: not in the study order %s", ignored, list(order))
    checked = {arm: check_predictions(arm, predictions[arm]) for arm in order}
    ref_df = checked[reference]
    for arm, df in checked.items():
        if arm == reference:
            continue
        problem = _check_same_cases("test", reference, ref_df, arm, df)
        if problem:
            raise _arm_error(arm, f"not the same test cases as the reference: {problem}")
        problem = _check_same_cases("dev", reference, ref_df, arm, df)
        if problem:
            log.warning("arm %r: dev predictions differ from %r (%s); thresholds come from different cases",
                        arm, reference, problem)
    ref_test = ref_df[ref_df["split"] == "test"].sort_values("case_id", kind="stable")
    test = pd.DataFrame({"case_id": ref_test["case_id"].to_numpy(dtype=object),
                         "label": np.where(ref_test["y"].to_numpy() == 1, "malignant", "benign").astype(object)})
    for arm, df in checked.items():
        probs = df[df["split"] == "test"].set_index("case_id")["prob"]
        test[arm] = probs.reindex(test["case_id"]).to_numpy(dtype=np.float64)
    desc = dict(descriptions or {})
    rows = [{"arm": arm, "description": desc.get(arm, ""), **arm_metrics(checked[arm], alpha)} for arm in order]
    return assemble_comparison(test, order, reference, rows, alpha, families)


def check_order(order: Sequence[str], reference: str, available: Mapping[str, object]) -> tuple[str, ...]:
    """``order`` as a tuple after checking it is non-empty, distinct, holds ``reference``, uses no reserved
    name and names only arms in ``available``."""
    order = tuple(order)
    if not order:
        raise ValueError("no arms to compare (order is empty)")
    if len(set(order)) != len(order):
        raise ValueError(f"duplicate arms in order {list(order)}")
    if reference not in order:
        raise ValueError(f"reference arm {reference!r} is not one of {list(order)}")
    for arm in order:
        if arm in _RESERVED:
            raise ValueError(f"arm name {arm!r} is reserved; rename the arm")
        if arm not in available:
            raise ValueError(f"arm {arm!r}: no predictions (arms with predictions: {sorted(available)})")
    return order


def assemble_comparison(test: pd.DataFrame, order: tuple[str, ...], reference: str, rows: list[dict], alpha: float,
                        families: Mapping[str, Sequence[str]] | None) -> StudyComparison:
    """The :class:`StudyComparison` of ``test`` (case_id, label, one column per arm) with Table 3 ``rows`` (one
    dict per arm, :data:`TABLE3_COLUMNS`) and the DeLong report of the arms in ``order``."""
    table3 = pd.DataFrame(rows, columns=list(TABLE3_COLUMNS))
    y = encode_labels(test["label"].to_numpy(dtype=object))
    report = delong_report(y, {arm: test[arm].to_numpy() for arm in order}, reference=reference, alpha=alpha,
                           families=families)
    return StudyComparison(order, reference, test, table3, report, alpha, families)


_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-./]")


def metric_name(*parts: str) -> str:
    """An MLflow metric name from parts joined by ``_``; characters other than letters, digits, _ - . / become _."""
    return _METRIC_NAME.sub("_", "_".join(parts))


def parent_metrics(comparison: StudyComparison, prefix: str = "test") -> dict[str, float]:
    """Metrics for the study's parent MLflow run, finite values only.

    Per arm: ``test_auc_<arm>`` (+ ``_ci_low``/``_ci_high`` as ``test_auc_ci_low_<arm>``),
    ``test_accuracy_<arm>``, ``test_sensitivity_<arm>``, ``test_specificity_<arm>``,
    ``threshold_<arm>``; per comparison a vs b: ``delong_diff_a_vs_b``, ``delong_z_a_vs_b``,
    ``delong_p_a_vs_b``, ``delong_p_holm_a_vs_b``. ``prefix`` names the cases (``test``; ``external`` for an
    external cohort).
    """
    out: dict[str, float] = {}
    per_arm = ["auc", "auc_ci_low", "auc_ci_high", *METRICS]
    for row in comparison.table3.to_dict("records"):
        for key in per_arm:
            out[metric_name(prefix, key, row["arm"])] = row[key]
        out[metric_name("threshold", row["arm"])] = row["threshold"]
    for c in comparison.delong["comparisons"]:
        pair = f"{c['a']}_vs_{c['b']}"
        for key, value in (("diff", c["diff"]), ("z", c["z"]), ("p", c["p_value"]), ("p_holm", c["p_holm"])):
            out[metric_name("delong", key, pair)] = value
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def write_delong_csv(comparison: StudyComparison, path: str | Path) -> Path:
    """The DeLong table (one row per comparison, numeric) as CSV."""
    path = Path(path)
    comparison.delong_table.to_csv(path, index=False)
    return path


def write_delong_json(comparison: StudyComparison, path: str | Path) -> Path:
    """The delong_report dict as JSON, formatted as ``liver-mm delong --json`` prints it."""
    path = Path(path)
    path.write_text(json.dumps(comparison.delong, indent=2) + "\n", encoding="utf-8")
    return path


def write_comparison(comparison: StudyComparison, out_dir: str | Path,
                     wide_name: str | None = "test_predictions.csv") -> dict[str, Path]:
    """table3.csv/.md, delong.csv/.json/.md and ``wide_name`` (the wide table ``liver-mm delong`` reads; None:
    not written, the caller writes its own)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table3.csv": out / "table3.csv", "table3.md": out / "table3.md", "delong.md": out / "delong.md"}
    comparison.table3.to_csv(files["table3.csv"], index=False)
    files["table3.md"].write_text(comparison.table3_md, encoding="utf-8")
    files["delong.md"].write_text(comparison.delong_md, encoding="utf-8")
    if wide_name is not None:
        files[wide_name] = out / wide_name
        comparison.test.to_csv(files[wide_name], index=False)
    files["delong.csv"] = write_delong_csv(comparison, out / "delong.csv")
    files["delong.json"] = write_delong_json(comparison, out / "delong.json")
    return files
