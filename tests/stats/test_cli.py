"""``liver-mm delong | icc | cohort``: JSON output, tables, and clear errors (exit code 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main, stats_cmds
from liver_mm.stats import ICC_FORMS, delong_report

DELONG = "delong_stepwise_108"


def _run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_delong_json_structure_and_values(capsys, fixtures_dir):
    path = fixtures_dir / f"{DELONG}.csv"
    out = _run_json(capsys, ["delong", str(path), "--label", "malignant", "--scores", "m1,m2,m3,m4,m5", "--json"])
    gold = json.loads((fixtures_dir / f"{DELONG}.json").read_text())
    assert set(out) == {"n_pos", "n_neg", "models", "comparisons"}
    assert (out["n_pos"], out["n_neg"]) == (55, 53)
    assert list(out["models"]) == ["m1", "m2", "m3", "m4", "m5"]
    for name, m in out["models"].items():
        assert set(m) == {"auc", "ci_low", "ci_high", "var"}
        assert m["auc"] == gold["single"][name]["auc"]
    assert [f"{c['a']}_vs_{c['b']}" for c in out["comparisons"]] == list(gold["paired_delong"])
    for c in out["comparisons"]:
        g = gold["paired_delong"][f"{c['a']}_vs_{c['b']}"]
        assert c["z"] == pytest.approx(g["Z"], abs=1e-9)
        assert c["p_holm"] >= c["p_value"]
    # the same numbers as the library function other parts of the product call
    df = pd.read_csv(path)
    assert out == json.loads(json.dumps(delong_report(df["malignant"], {m: df[m] for m in out["models"]})))


def test_delong_text_labels_and_reference(capsys, tmp_path, fixtures_dir):
    df = pd.read_csv(fixtures_dir / f"{DELONG}.csv")
    df["label"] = np.where(df["malignant"] == 1, "malignant", "benign")
    path = tmp_path / "scores.csv"
    df.drop(columns="malignant").to_csv(path, index=False)
    out = _run_json(capsys, ["delong", str(path), "--label", "label", "--scores", "m1,m2,m3",
                             "--reference", "m3", "--json"])
    assert [(c["a"], c["b"]) for c in out["comparisons"]] == [("m3", "m1"), ("m3", "m2"), ("m1", "m2")]
    assert main(["delong", str(path), "--label", "label", "--scores", "m1,m2"]) == 0
    text = capsys.readouterr().out
    assert "55 malignant / 53 benign" in text and "m1 vs m2" in text


@pytest.mark.parametrize(
    ("edit", "scores", "message"),
    [
        (lambda d: d.assign(m2=d["m2"].where(d.index != 4)), "m1,m2", "column 'm2' has a missing"),
        (lambda d: d.assign(m2=d["m2"].astype(object).where(d.index != 4, "high")), "m1,m2", "non-numeric 'high'"),
        (lambda d: d.assign(malignant=1), "m1,m2", "column 'malignant' has one class only"),
        (lambda d: d, "m1,m9", "column(s) 'm9' not found"),
        (lambda d: d.assign(malignant=d["malignant"].astype(object).where(d.index != 2, "maybe")), "m1",
         "line 4 (case c0003), column malignant: 'maybe' is not one of 0, 1, benign, malignant"),
    ],
)
def test_delong_bad_input_exit_2(capsys, tmp_path, fixtures_dir, edit, scores, message):
    path = tmp_path / "bad.csv"
    edit(pd.read_csv(fixtures_dir / f"{DELONG}.csv")).to_csv(path, index=False)
    code = main(["delong", str(path), "--label", "malignant", "--scores", scores, "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and message in err
    assert "Traceback" not in err


def test_delong_nan_score_names_line(capsys, tmp_path, fixtures_dir):
    path = tmp_path / "nan.csv"
    df = pd.read_csv(fixtures_dir / f"{DELONG}.csv")
    df.loc[9, "m3"] = np.nan
    df.to_csv(path, index=False)
    assert main(["delong", str(path), "--label", "malignant", "--scores", "m1,m3"]) == 2
    assert "line 11 (case_id c0010)" in capsys.readouterr().err


def test_delong_missing_file(capsys, tmp_path):
    assert main(["delong", str(tmp_path / "nope.csv"), "--label", "y", "--scores", "a"]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err


def test_icc_json(capsys, fixtures_dir):
    gold = json.loads((fixtures_dir / "icc_two_raters_20.json").read_text())["icc"]
    out = _run_json(capsys, ["icc", str(fixtures_dir / "icc_two_raters_20.csv"), "--raters", "rater_a,rater_b",
                             "--json"])
    assert tuple(out) == ICC_FORMS
    for form, r in out.items():
        assert set(r) == {"icc", "F", "df1", "df2", "p", "ci_low", "ci_high"}
        assert r["icc"] == pytest.approx(gold[form]["ICC"], abs=1e-9)
        assert r["ci_low"] == pytest.approx(gold[form]["lower_95"], abs=1e-9)


def test_icc_errors(capsys, fixtures_dir):
    path = str(fixtures_dir / "icc_two_raters_20.csv")
    assert main(["icc", path, "--raters", "rater_a"]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["icc", path, "--raters", "rater_a,rater_c"]) == 2
    assert "'rater_c' not found" in capsys.readouterr().err


def test_cohort_through_the_seam(capsys, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"label": ["benign", "malignant"] * 10, "age": rng.normal(60, 9, 20).round(),
                       "sex": ["F", "M", "M", "F"] * 5, "subtype": ["FNH", "HCC"] * 10,
                       "diagnostic_basis": ["histology"] * 20})
    monkeypatch.setattr(stats_cmds, "_load_manifest", lambda path, units=None: df)
    out = tmp_path / "tables"
    assert main(["cohort", "ignored.csv", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| variable | level | benign | malignant")
    assert sorted(p.name for p in out.iterdir()) == ["table1.csv", "table1.md", "table2.csv", "table2.md"]
    t2 = pd.read_csv(out / "table2.csv")
    assert t2["variable"].tolist() == ["n", "age", "sex", "sex"]
    assert (out / "table2.md").read_text() == printed


def test_cohort_on_synthetic_manifest(capsys, tmp_path, tiny_cohort):
    assert main(["cohort", str(tiny_cohort), "--out", str(tmp_path)]) == 0
    t1 = pd.read_csv(tmp_path / "table1.csv")
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert t1["total"].iloc[-1] == 60
    assert {"age", "ast", "alt", "platelets", "albumin", "sex"} <= set(t2["variable"])
    assert "| age |" in capsys.readouterr().out


def test_cohort_missing_manifest(capsys, tmp_path):
    assert main(["cohort", str(tmp_path / "absent.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "absent.csv" in err and "Traceback" not in err
