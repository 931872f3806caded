"""Cross-validation folds: grouping, stratification, dev parts, seeds, reuse, small-cohort errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from liver_mm.cohort.folds import (
    assign_folds,
    fold_sizes,
    folds_hash,
    folds_long,
    prepare_folds,
    read_folds,
)
from liver_mm.cohort.grouping import leakage_groups
from liver_mm.io.images import file_content_hash
from liver_mm.synth.clinical import synth_clinical

K, R = 5, 3


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, list[str]]:
    """240 nodules (18 two-nodule patients) and image keys with 12 cross-patient duplicates."""
    df = synth_clinical(240, seed=3)
    keys = df["case_id"].tolist()
    src, dst = np.random.default_rng(1).choice(len(df), size=(2, 12), replace=False)
    for s, d in zip(src, dst, strict=True):
        keys[d] = keys[s]
    return df, keys


@pytest.fixture(scope="module")
def assignment(table) -> pd.DataFrame:
    df, keys = table
    return assign_folds(df, K, R, seed=0, image_keys=keys)


def _test_fold(assignment: pd.DataFrame, r: int) -> pd.Series:
    """The fold in which each row is tested in repeat r."""
    return assignment[r].eq("test").idxmax(axis=1)


def _partition(assignment: pd.DataFrame, r: int) -> set[frozenset[int]]:
    folds = _test_fold(assignment, r)
    return {frozenset(folds.index[folds == f]) for f in range(K)}


def test_shape_and_one_liner_access(table, assignment):
    df, _ = table
    assert assignment.index.equals(df.index)
    assert list(assignment.columns) == [(r, f) for r in range(R) for f in range(K)]
    assert assignment.columns.names == ["repeat", "fold"]
    split = assignment[(1, 2)]
    assert set(split) == {"train", "dev", "test"}
    assert len(df.assign(split=split).query("split == 'test'")) == (split == "test").sum()


def test_every_case_tested_exactly_once_per_repeat(assignment):
    for r in range(R):
        assert (assignment[r].eq("test").sum(axis=1) == 1).all(), r


def test_no_patient_nor_image_in_two_folds(table, assignment):
    df, keys = table
    key = pd.Series(keys, index=df.index)
    assert key.duplicated().sum() == 12  # the shared images are really there
    for r in range(R):
        folds = _test_fold(assignment, r)
        assert (folds.groupby(df["patient_id"]).nunique() == 1).all(), r
        assert (folds.groupby(key).nunique() == 1).all(), r
        for f in range(K):  # nor split between train and dev
            assert (assignment[(r, f)].groupby(df["patient_id"]).nunique() == 1).all(), (r, f)
            assert (assignment[(r, f)].groupby(key).nunique() == 1).all(), (r, f)


def test_dev_is_inside_the_training_part(table, assignment):
    df, _ = table
    malignant = (df["label"] == "malignant").to_numpy()
    for r in range(R):
        folds = _test_fold(assignment, r)
        for f in range(K):
            part = assignment[(r, f)]
            dev = part == "dev"
            assert (folds[dev] != f).all() and (folds[part == "test"] == f).all()
            outside = int((folds != f).sum())
            assert abs(dev.sum() - outside / 8) <= 8, (r, f)  # ~1/8 of the training rows
            assert 0 < malignant[dev.to_numpy()].sum() < dev.sum()  # both classes


def test_folds_are_stratified(table, assignment):
    df, keys = table
    malignant = (df["label"] == "malignant").to_numpy()
    overall = malignant.mean()
    groups = leakage_groups(df["patient_id"].tolist(), keys)
    largest = int(np.bincount(groups).max())
    assert largest >= 2
    sizes = fold_sizes(assignment, malignant.astype(int))
    for row in sizes.itertuples():
        # greedy group stratification: a fold's malignant count is off by at most one group (+1 rounding)
        for part in ("test", "dev"):
            n, m = getattr(row, f"n_{part}"), getattr(row, f"malignant_{part}")
            assert abs(m - overall * n) <= largest + 1, (row.repeat, row.fold, part, m, n)
    assert (sizes[["n_train", "n_dev", "n_test"]].sum(axis=1) == len(df)).all()
    assert (sizes[["malignant_train", "malignant_dev", "malignant_test"]].sum(axis=1) == malignant.sum()).all()


def test_repeats_differ_and_seed_decides(table, assignment):
    df, keys = table
    parts = [_partition(assignment, r) for r in range(R)]
    assert parts[0] != parts[1] and parts[1] != parts[2] and parts[0] != parts[2]
    assert assign_folds(df, K, R, seed=0, image_keys=keys).equals(assignment)
    other = assign_folds(df, K, 1, seed=1, image_keys=keys)
    assert _partition(other, 0) != parts[0]
    # repeat r depends on (seed, r) only: fewer repeats give the same first repeats
    assert assign_folds(df, K, 1, seed=0, image_keys=keys)[0].equals(assignment[0])


def test_split_column_is_ignored_with_a_warning(table, caplog):
    df, keys = table
    with caplog.at_level(logging.WARNING, logger="liver_mm.cohort.folds"):
        got = assign_folds(df.assign(split="test"), 2, 1, seed=0, image_keys=keys)
    assert "column split ignored" in caplog.text
    assert got.equals(assign_folds(df, 2, 1, seed=0, image_keys=keys))


def _small(n_benign: int, n_malignant: int) -> pd.DataFrame:
    labels = ["benign"] * n_benign + ["malignant"] * n_malignant
    n = len(labels)
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                         "label": labels})


def test_too_few_groups_of_a_class():
    df = _small(20, 6)
    keys = [*df["case_id"][:20], "a", "a", "b", "b", "c", "c"]  # 6 malignant cases, 3 image groups
    with pytest.raises(ValueError, match=r"the malignant class has 3 independent patient/image group\(s\), "
                                         r"fewer than the 5 folds asked.*use folds <= 3"):
        assign_folds(df, 5, image_keys=keys)
    with pytest.raises(ValueError, match="the benign class has 1 independent"):
        assign_folds(_small(1, 20), 2, image_keys=list(range(21)))


def test_dev_part_too_small():
    df = _small(40, 5)  # 5 malignant groups: 4 outside each test fold, 8 dev splits
    with pytest.raises(ValueError, match=r"repeat 0, fold \d: the dev part has no malignant case; use a larger "
                                         r"dev_fraction \(now 0.125: 8 dev splits\)"):
        assign_folds(df, 5, image_keys=df["case_id"].tolist())
    assert set(assign_folds(df, 5, dev_fraction=0.5, image_keys=df["case_id"].tolist())[(0, 0)]) == {
        "train", "dev", "test"}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"folds": 1}, "folds must be an integer >= 2"),
    ({"folds": 5, "repeats": 0}, "repeats must be an integer >= 1"),
    ({"folds": 5, "dev_fraction": 0.0}, "dev_fraction"),
    ({"folds": 5, "seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        assign_folds(_small(20, 20), **kwargs)


@pytest.fixture()
def image_cohort(tmp_path) -> Path:
    """40 nodules with 8x8 PNGs: patients p0 and p1 have two nodules each, and three pairs of different
    patients share pixel-identical images saved with different bytes."""
    root = tmp_path / "cohort"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
        rows.append({"case_id": f"n{i:02d}", "patient_id": f"p{i % 2 if i < 4 else i}",
                     "image_path": f"images/n{i:02d}.png", "label": "malignant" if i % 2 else "benign",
                     "age": 60})
        Image.fromarray(pixels).save(root / "images" / f"n{i:02d}.png", compress_level=1)
    for a, b in ((10, 21), (12, 33), (15, 26)):
        Image.open(root / "images" / f"n{a:02d}.png").save(root / "images" / f"n{b:02d}.png", compress_level=9)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_prepare_folds_writes_groups_and_reuses(image_cohort, tmp_path):
    out = tmp_path / "out" / "folds.csv"
    res = prepare_folds(image_cohort, out, folds=4, repeats=2, seed=0, dev_fraction=0.25)
    assert not res.reused and res.path == out and res.record_path == out.with_name("folds.folds.json")
    long = pd.read_csv(out, dtype={"case_id": str})
    assert list(long.columns) == ["case_id", "repeat", "fold", "part"] and len(long) == 40 * 8
    wide = read_folds(out)
    assert wide.equals(res.assignment) and list(wide.index) == [f"n{i:02d}" for i in range(40)]
    assert res.folds_hash == folds_hash(wide.index, wide)
    for r in range(2):
        folds = wide[r].eq("test").idxmax(axis=1)
        for a, b in (("n00", "n02"), ("n01", "n03"), ("n10", "n21"), ("n12", "n33"), ("n15", "n26")):
            assert folds[a] == folds[b], (r, a, b)
    paths = pd.read_csv(image_cohort)["image_path"].map(lambda p: file_content_hash(image_cohort.parent / p))
    assert paths.duplicated().sum() == 3
    record = json.loads(res.record_path.read_text())
    assert (record["folds"], record["repeats"], record["seed"], record["dev_fraction"]) == (4, 2, 0, 0.25)
    assert record["folds_hash"] == res.folds_hash and len(record["sizes"]) == 8
    assert sum(s["n_test"] for s in record["sizes"] if s["repeat"] == 0) == 40

    stamp = out.stat().st_mtime_ns
    again = prepare_folds(image_cohort, out, folds=4, repeats=2, seed=0, dev_fraction=0.25)
    assert again.reused and out.stat().st_mtime_ns == stamp
    assert (again.folds_hash, again.manifest_hash) == (res.folds_hash, res.manifest_hash)
    assert again.assignment.equals(res.assignment)

    other = prepare_folds(image_cohort, out, folds=4, repeats=2, seed=1, dev_fraction=0.25)
    assert not other.reused and other.folds_hash != res.folds_hash

    edited = long.assign(part=long["part"].where(long.index != 0, "dev" if long.at[0, "part"] != "dev" else "train"))
    edited.to_csv(out, index=False)  # hand-edited: recomputed, not trusted
    fresh = prepare_folds(image_cohort, out, folds=4, repeats=2, seed=1, dev_fraction=0.25)
    assert not fresh.reused and fresh.folds_hash == other.folds_hash


def test_folds_hash_ignores_row_order(assignment, table):
    df, _ = table
    h = folds_hash(df["case_id"], assignment)
    order = np.random.default_rng(0).permutation(len(df))
    assert folds_hash(df["case_id"].to_numpy()[order], assignment.iloc[order]) == h
    changed = assignment.copy()
    changed.iloc[0, 0] = "dev" if changed.iloc[0, 0] != "dev" else "train"
    assert folds_hash(df["case_id"], changed) != h
    long = folds_long(assignment, df["case_id"])
    assert len(long) == len(df) * K * R and set(long["part"]) == {"train", "dev", "test"}


def test_read_folds_names_bad_cells(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,repeat,fold,part\na,0,0,test\nb,0,0,validation\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 3, column part: 'validation'"):
        read_folds(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text("case_id,repeat,fold,part\na,0,0,test\na,0,1,train\nb,0,0,train\n")
    with pytest.raises(ValueError, match="not every case has a part"):
        read_folds(gap)
