"""Study comparison: Table 3 and the DeLong table equal the stats functions and ``liver-mm delong``."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.stats import auc_ci, binary_metrics, delong_report, wilson_ci, youden_threshold
from liver_mm.study.compare import (
    compare_study,
    metric_name,
    parent_metrics,
    write_comparison,
    write_delong_csv,
)
from liver_mm.study.report.tables import ARM_ORDER, cohort_counts, fmt_auc, fmt_proportion
from liver_mm.training.evaluate import run_metrics as child_metrics

ORDER = list(ARM_ORDER)


def make_predictions(case_ids, labels, splits, seed: int = 0, arms=ORDER) -> dict[str, pd.DataFrame]:
    """Fake children: arm j separates the classes a little better than arm j-1; rows shuffled per arm."""
    rng = np.random.default_rng(seed)
    y = (np.asarray(labels) == "malignant").astype(float)
    keep = np.isin(np.asarray(splits), ["dev", "test"])
    out = {}
    for j, arm in enumerate(arms):
        logit = (0.3 + 0.25 * j) * (2 * y - 1) + rng.normal(size=y.size)
        prob = np.round(1 / (1 + np.exp(-logit)), 6)  # a child's CSV carries finite precision
        df = pd.DataFrame({"case_id": case_ids, "split": splits, "label": labels, "prob": prob})[keep]
        out[arm] = df.sample(frac=1.0, random_state=j).reset_index(drop=True)
    return out


@pytest.fixture(scope="module")
def preds() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(42)
    n = 130
    ids = [f"C{i:04d}" for i in range(n)]
    labels = np.where(rng.random(n) < 0.5, "malignant", "benign")
    splits = np.array(["dev"] * 50 + ["test"] * 70)
    splits = np.concatenate([splits, ["train"] * (n - splits.size)])
    return make_predictions(ids, labels, splits)


@pytest.fixture(scope="module")
def comp(preds):
    return compare_study(preds, ORDER, reference="m1")


def _test_arrays(pred: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    part = pred[pred["split"] == split]
    return (part["label"] == "malignant").to_numpy().astype(int), part["prob"].to_numpy()


def test_table3_equals_stats_functions(preds, comp):
    t3 = comp.table3.set_index("arm")
    assert list(t3.index) == ORDER
    for arm, pred in preds.items():
        y_dev, p_dev = _test_arrays(pred, "dev")
        y, p = _test_arrays(pred, "test")
        thr = youden_threshold(y_dev, p_dev).threshold
        auc = auc_ci(y, p)
        bm = binary_metrics(y, p, thr)
        row = t3.loc[arm]
        assert row["threshold"] == thr
        assert (row["auc"], row["auc_ci_low"], row["auc_ci_high"]) == (auc.auc, auc.ci_low, auc.ci_high)
        assert (row["n_test"], row["n_malignant"], row["n_benign"]) == (y.size, y.sum(), y.size - y.sum())
        for m in ("accuracy", "sensitivity", "specificity"):
            for s in ("", "_k", "_n", "_ci_low", "_ci_high"):
                assert row[f"{m}{s}"] == bm[f"{m}{s}"], (arm, m, s)
        # ... and the same as the metrics the child run logged
        logged = child_metrics(pred)
        assert row["auc"] == logged["test_auc"] and row["threshold"] == logged["threshold"]
        assert row["sensitivity_ci_low"] == logged["test_sensitivity_ci_low"]
        assert row["selection_dev_auc"] == logged["selection_dev_auc"]


def test_table3_markdown_format(comp):
    md = comp.table3_md
    r = comp.table3.set_index("arm").loc["m3"]
    k, n = int(r["sensitivity_k"]), int(r["sensitivity_n"])
    lo, hi = wilson_ci(k, n)
    expected = f"{100 * k / n:.1f}% ({k}/{n}; {100 * lo:.1f}–{100 * hi:.1f})"
    line = next(ln for ln in md.splitlines() if ln.startswith("| m3 |"))
    assert expected in line
    assert f"{r['auc']:.3f} ({r['auc_ci_low']:.3f}–{r['auc_ci_high']:.3f})" in line
    assert len(md.splitlines()) == 2 + len(ORDER)
    assert fmt_proportion(0.685, 0.592, 0.766, 74, 108) == "68.5% (74/108; 59.2–76.6)"
    assert fmt_proportion(float("nan"), float("nan"), float("nan"), 0, 0) == "–"
    assert fmt_auc(0.8125, 0.7, 0.9) == "0.812 (0.700–0.900)"


def test_delong_equals_report_and_cli(preds, comp, tmp_path, capsys):
    ref = preds["m1"][preds["m1"]["split"] == "test"].sort_values("case_id")
    y = (ref["label"] == "malignant").to_numpy().astype(int)
    scores = {}
    for arm in ORDER:
        t = preds[arm][preds[arm]["split"] == "test"].set_index("case_id")
        scores[arm] = t.loc[ref["case_id"], "prob"].to_numpy()
    assert comp.delong == delong_report(y, scores, "m1")
    # in another case order the sums differ only by rounding
    shuffled = np.random.default_rng(1).permutation(y.size)
    other = delong_report(y[shuffled], {a: s[shuffled] for a, s in scores.items()}, "m1")
    for c, o in zip(comp.delong["comparisons"], other["comparisons"], strict=True):
        assert c["p_value"] == pytest.approx(o["p_value"], rel=1e-9) and c["z"] == pytest.approx(o["z"], rel=1e-9)
    pairs = [(c["a"], c["b"]) for c in comp.delong["comparisons"]]
    assert pairs[:6] == [("m1", a) for a in ORDER[1:]]
    assert pairs[6:] == [("m2", "m3"), ("m3", "m4"), ("m4", "m5"), ("m5", "tab_mlp"), ("tab_mlp", "tab_logreg")]

    files = write_comparison(comp, tmp_path)
    assert main(["delong", str(files["test_predictions.csv"]), "--label", "label", "--scores", ",".join(ORDER),
                 "--reference", "m1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli == json.loads(files["delong.json"].read_text())
    assert cli == json.loads(json.dumps(comp.delong))

    table = pd.read_csv(files["delong.csv"])
    assert list(table["comparison"]) == [f"{a} vs {b}" for a, b in pairs]
    for (_, row), c in zip(table.iterrows(), comp.delong["comparisons"], strict=True):
        for key in ("auc_a", "auc_b", "diff", "diff_ci_low", "diff_ci_high", "z", "p_value", "p_holm"):
            assert row[key] == pytest.approx(c[key], rel=1e-15, abs=0)
    # the same CSV through the writer alone
    assert write_delong_csv(comp, tmp_path / "d2.csv").read_text() == files["delong.csv"].read_text()


def test_row_order_does_not_matter(preds, comp):
    shuffled = {a: df.sample(frac=1.0, random_state=99) for a, df in preds.items()}
    again = compare_study(shuffled, ORDER)
    pd.testing.assert_frame_equal(again.table3, comp.table3)
    assert again.delong == comp.delong


def _edit(preds, arm, fn):
    out = dict(preds)
    out[arm] = fn(preds[arm].copy())
    return out


@pytest.mark.parametrize(
    ("arm", "edit", "message"),
    [
        ("m3", lambda d: d.drop(d.index[d["split"] == "test"][:2]), r"arm 'm3'.*68 test cases.*missing C"),
        ("m4", lambda d: pd.concat([d, d.iloc[:1].assign(case_id="X999", split="test")]),
         r"arm 'm4'.*not in 'm1': X999"),
        ("m5", lambda d: d.assign(label=np.where(
            (d["split"] == "test") & (d.index == d.index[d["split"] == "test"][0]),
            np.where(d["label"] == "benign", "malignant", "benign"), d["label"])),
         r"arm 'm5'.*test case C\d+ is labelled .* \(1 case\(s\) differ\)"),
        ("m2", lambda d: d.drop(columns="prob"), r"arm 'm2': predictions lack column\(s\) prob"),
        ("m2", lambda d: d.assign(prob=d["prob"].where(d.index != 3, 1.7)), r"arm 'm2': column 'prob' has '1.7' at row 3"),
        ("m2", lambda d: d.assign(prob=d["prob"].where(d.index != 5)), r"arm 'm2': column 'prob' has a missing value at row 5"),
        ("m2", lambda d: d.assign(label=d["label"].where(d.index != 2, "maybe")), r"arm 'm2' column 'label'.*row 2"),
        ("m2", lambda d: pd.concat([d, d[d["split"] == "test"].iloc[:1]]), r"arm 'm2': case_id C\d+ appears more"),
        ("m2", lambda d: d[(d["split"] == "dev") | (d["label"] == "benign")], r"arm 'm2': the test split has"),
    ],
)
def test_bad_predictions_raise_naming_the_arm(preds, arm, edit, message):
    with pytest.raises(ValueError, match=message):
        compare_study(_edit(preds, arm, edit), ORDER)


def test_arms_and_reference_checked(preds, caplog):
    with pytest.raises(ValueError, match="arm 'm9': no predictions"):
        compare_study(preds, [*ORDER, "m9"])
    with pytest.raises(ValueError, match="reference arm 'm9'"):
        compare_study(preds, ORDER, reference="m9")
    with caplog.at_level(logging.WARNING):
        res = compare_study(preds, ["m1", "m5"], reference="m5")
    assert "ignored" in caplog.text
    assert [(c["a"], c["b"]) for c in res.delong["comparisons"]] == [("m5", "m1")]


def test_dev_mismatch_only_warns(preds, caplog):
    edited = _edit(preds, "m2", lambda d: d.drop(d.index[d["split"] == "dev"][:1]))
    with caplog.at_level(logging.WARNING):
        res = compare_study(edited, ORDER)
    assert "arm 'm2': dev predictions differ" in caplog.text
    assert len(res.test) == 70


def test_parent_metrics(comp):
    m = parent_metrics(comp)
    assert all(re.fullmatch(r"[A-Za-z0-9_\-./]+", k) for k in m)
    t3 = comp.table3.set_index("arm")
    assert m["test_auc_m3"] == t3.loc["m3", "auc"]
    assert m["test_auc_ci_low_tab_logreg"] == t3.loc["tab_logreg", "auc_ci_low"]
    assert m["threshold_m5"] == t3.loc["m5", "threshold"]
    c = next(c for c in comp.delong["comparisons"] if (c["a"], c["b"]) == ("m1", "m5"))
    assert (m["delong_p_m1_vs_m5"], m["delong_p_holm_m1_vs_m5"], m["delong_z_m1_vs_m5"]) == (
        c["p_value"], c["p_holm"], c["z"])
    assert "delong_p_m4_vs_m5" in m and "delong_p_m1_vs_m1" not in m
    assert all(np.isfinite(v) for v in m.values())
    assert metric_name("test", "auc", "arm 2+x") == "test_auc_arm_2_x"


def test_zero_variance_comparison_kept_finite():
    # two perfect arms: z = 0, p = 1 (no difference); a perfect vs imperfect arm keeps finite metrics
    ids = [f"c{i}" for i in range(12)]
    labels = ["benign", "malignant"] * 6
    split = ["dev"] * 6 + ["test"] * 6
    y = np.array([lab == "malignant" for lab in labels], dtype=float)
    preds = {a: pd.DataFrame({"case_id": ids, "split": split, "label": labels, "prob": 0.1 + 0.8 * y})
             for a in ("m1", "m2")}
    res = compare_study(preds, ["m1", "m2"])
    assert res.delong["comparisons"][0]["z"] == 0.0
    assert parent_metrics(res)["delong_p_m1_vs_m2"] == 1.0


def test_cohort_counts():
    df = pd.DataFrame({"label": ["benign", "malignant", "malignant", "benign", "benign"],
                       "split": ["train", "train", "test", "dev", "train"]})
    t = cohort_counts(df)
    assert list(t["split"]) == ["train", "dev", "test", "all"]
    assert t.set_index("split").loc["all"].tolist() == [3, 2, 5]
    assert t.set_index("split").loc["train"].tolist() == [2, 1, 3]
    assert cohort_counts(df.drop(columns="split"))["total"].tolist() == [5]
