"""The study's question and its answer in plain sentences, computed from Table 3 and the DeLong table.

The report opens with these lines: what each added block of clinical data did to the test AUC (each adjacent
pair of the stepwise order whose later model sees everything the earlier one sees, and more), then the best model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from liver_mm.stats import format_p


def _parts(description: str) -> list[str]:
    """``image + age, sex`` -> ["image", "age", "sex"]: the inputs an arm's description names."""
    return [p.strip() for chunk in str(description).split("+") for p in chunk.split(",") if p.strip()]


def added_inputs(before: str, after: str) -> list[str] | None:
    """The inputs ``after`` names beyond ``before`` (descriptions as Table 3 has them), or None when ``after``
    does not see everything ``before`` sees (not a step that adds something)."""
    a, b = _parts(before), _parts(after)
    if not a or not set(a) < set(b):
        return None
    return [p for p in b if p not in a]


def _p_text(p: float | None) -> str:
    text = format_p(float("nan") if p is None else float(p))
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}" if text else "p not computed"


def step_sentence(comp: Mapping[str, object], descriptions: Mapping[str, str], alpha: float) -> str | None:
    """One sentence for a DeLong comparison a vs b where b adds inputs to a; None for other pairs."""
    a, b = str(comp["a"]), str(comp["b"])
    added = added_inputs(descriptions.get(a, ""), descriptions.get(b, ""))
    if added is None:
        return None
    auc_a, auc_b, p = float(comp["auc_a"]), float(comp["auc_b"]), comp.get("p_holm")  # type: ignore[arg-type]
    change = "raised" if auc_b > auc_a else "lowered" if auc_b < auc_a else "left"
    what = f"Adding {', '.join(added)} ({a} → {b}) {change} the test AUC from {auc_a:.2f} to {auc_b:.2f}"
    if change == "left":
        what = f"Adding {', '.join(added)} ({a} → {b}) left the test AUC at {auc_a:.2f}"
    significant = p is not None and float(p) < alpha  # type: ignore[arg-type]
    verdict = "" if significant else ": no difference shown"
    return f"{what}, DeLong {_p_text(p)} (Holm){verdict}."  # type: ignore[arg-type]


def answer_lines(table3: pd.DataFrame, comparisons: Sequence[Mapping[str, object]], order: Sequence[str],
                 alpha: float, where: str = "test split") -> list[str]:
    """The report's opening section: the question, then the answer as bullet sentences (Markdown lines).

    ``table3``: numeric Table 3 (arm, description, auc, auc_ci_low, auc_ci_high, n_malignant, n_benign);
    ``comparisons``: the DeLong report's comparisons (a, b, auc_a, auc_b, p_holm)."""
    t3 = table3.set_index("arm")
    desc = {a: str(t3.at[a, "description"]) for a in order if a in t3.index}
    adjacent = set(zip(order, order[1:], strict=False))
    steps = [s for c in comparisons if (str(c["a"]), str(c["b"])) in adjacent
             and (s := step_sentence(c, desc, alpha)) is not None]
    chain = " → ".join(f"{a} ({desc[a]})" for a in order if a in desc)
    n_pos, n_neg = int(t3["n_malignant"].iloc[0]), int(t3["n_benign"].iloc[0])
    lines = ["## Question and answer", "",
             f"**Question.** Does adding clinical data to the B-mode ultrasound image tell malignant from benign "
             f"nodules better? Models compared: {chain}.", "",
             f"**Answer** ({where}: {n_pos} malignant / {n_neg} benign nodules; AUC with DeLong "
             f"{round(100 * (1 - alpha))}% CI in Table 3):", ""]
    lines += [f"- {s}" for s in steps] or ["- No model adds inputs to another: see the DeLong table."]
    best = t3.loc[[a for a in order if a in t3.index], "auc"].astype(float).idxmax()
    lines += [f"- Highest test AUC: {best} ({desc[best]}), {float(t3.at[best, 'auc']):.3f} "
              f"({float(t3.at[best, 'auc_ci_low']):.3f}–{float(t3.at[best, 'auc_ci_high']):.3f}).", ""]
    return lines
