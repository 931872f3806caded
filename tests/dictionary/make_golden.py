"""Writes ``golden_encodings.json``: what the clinical inputs encode to, made with the code before the data
dictionary (the hand-written tables). ``test_default_matches_golden`` checks the dictionary-driven code gives
the same bytes. Run from the repository root: ``python tests/dictionary/make_golden.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from liver_mm.cohort.validate_labs import validate_labs
from liver_mm.features.tabular import TabularPreprocessor
from liver_mm.stats.cohort import table2
from liver_mm.synth.clinical import synth_clinical

OUT = Path(__file__).with_name("golden_encodings.json")
SETS = {
    "m2": ["age", "sex"],
    "m3": ["age", "sex", "ast", "alt"],
    "m5": ["age", "sex", "ast", "alt", "platelets", "albumin"],
    "all": ["age", "sex", "ast", "alt", "platelets", "albumin", "wbc", "hemoglobin", "ggt", "alp"],
}


def cohort() -> pd.DataFrame:
    """40 synthetic rows with missing cells, a censored AST and lower-case sex."""
    df = synth_clinical(n=40, seed=3).reset_index(drop=True)
    df = df.astype({c: "float64" for c in ("age", "ast", "alt", "ggt", "alp")})
    df.loc[[2, 11], "albumin"] = np.nan
    df.loc[5, "age"] = np.nan
    df.loc[[7, 33], "sex"] = np.nan
    df.loc[9, "sex"] = " m "
    df["ast_censored"] = 0
    df.loc[4, "ast_censored"] = 1
    df.loc[36, "platelets"] = np.nan  # missing only in the rows not fitted on
    return df


def encodings() -> dict:
    df = cohort()
    train = df.iloc[:30]
    out = {}
    for name, feats in SETS.items():
        pre = TabularPreprocessor(feats).fit(train)
        x = pre.transform(df)
        out[name] = {"names": pre.feature_names_out, "hex": x.astype("<f4").tobytes().hex()}
    return out


def table2_csv() -> str:
    df = cohort()
    df["sex"] = df["sex"].str.strip().str.upper()  # as read_manifest gives it
    return table2(df).to_csv(index=False, lineterminator="\n")


def findings() -> list[str]:
    df = cohort()
    df.loc[3, "albumin"] = 42.0   # g/L in g/dL: out of range
    df.loc[6, "age"] = 130.0
    df.loc[8, "sex"] = "X"
    return [f"{f.severity}|{f.code}|{f.column}|{f.message}" for f in validate_labs(df)]


if __name__ == "__main__":
    OUT.write_text(json.dumps({"encodings": encodings(), "table2": table2_csv(), "findings": findings()},
                              indent=1) + "\n")
    print("wrote", OUT)
