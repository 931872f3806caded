"""Reading a manifest is one straight pass: the study's cohort preparation reads the source table once (read,
recode by the dictionary, validate, hash, split), then only the split copy it wrote."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

import liver_mm.io.schema as schema
from liver_mm.cohort.prepare import prepare_cohort


def test_the_source_manifest_is_read_once(tmp_path, tiny_cohort, monkeypatch):
    reads: Counter[str] = Counter()
    real = schema.read_csv_table

    def counted(path, *args, **kwargs):
        reads[str(Path(path).resolve())] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(schema, "read_csv_table", counted)
    data = {"kind": "manifest", "manifest": str(tiny_cohort)}
    cohort = prepare_cohort(data, {"fractions": [0.8, 0.1, 0.1], "seed": 0}, tmp_path / "cache", ["age", "sex"])
    assert reads == Counter({str(Path(tiny_cohort).resolve()): 1, str(cohort.manifest_path.resolve()): 1})
    assert len(cohort.df) == len(pd.read_csv(tiny_cohort)) and set(cohort.df["split"]) == {"train", "dev", "test"}
    assert cohort.manifest_hash == schema.manifest_hash(tiny_cohort)  # the same hash as a read of its own
