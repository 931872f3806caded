"""Synthetic acquisition sites: the home site is byte-identical to the cohort before sites existed; site b measures
the same patients with another scanner and lab assays."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from liver_mm.cli import main
from liver_mm.io.images import read_gray
from liver_mm.synth.cohort import generate_cohort, read_cohort_meta
from liver_mm.synth.site import SITES, get_site, measure_labs
from tests.synth.test_synth import _cohort_sha256

# _cohort_sha256 and the sidecar's sha256 of generate_cohort(n=24, seed=5, frame_size=(128, 160)), computed with
# the generator as it was before sites existed
HOME_COHORT_SHA256 = "7838bcd3fa8e0fa4c1511f73ebd9d98b41ff434e1970c8ae6abfa40a10077bb9"  # pixels decoded
HOME_SIDECAR_SHA256 = "eae621a858efb6669310e0eb992b0802e7617d3b8fc44b79dacded3d7a3252a9"


def test_the_home_site_is_byte_identical_to_before(tmp_path):
    for out, kwargs in (("default", {}), ("explicit", {"site": None}), ("empty", {"site": ""})):
        manifest = generate_cohort(tmp_path / out, n=24, seed=5, frame_size=(128, 160), progress=False, **kwargs)
        assert _cohort_sha256(manifest) == HOME_COHORT_SHA256, out
        assert hashlib.sha256((manifest.parent / "cohort.json").read_bytes()).hexdigest() == HOME_SIDECAR_SHA256


def test_site_b_measures_the_same_patients_with_other_labs_and_scanner(tmp_path):
    home = generate_cohort(tmp_path / "home", n=12, seed=4, frame_size=(96, 120), progress=False)
    other = generate_cohort(tmp_path / "b", n=12, seed=4, frame_size=(96, 120), progress=False, site="b")
    a, b = pd.read_csv(home), pd.read_csv(other)
    shifted = ["ast", "alt", "albumin", "platelets"]
    pd.testing.assert_frame_equal(a.drop(columns=shifted), b.drop(columns=shifted))  # same patients and boxes
    np.testing.assert_array_equal(b["ast"], np.round(1.25 * a["ast"]))
    np.testing.assert_array_equal(b["alt"], np.round(1.25 * a["alt"]))
    np.testing.assert_allclose(b["albumin"], np.round(a["albumin"] - 0.3, 1), atol=1e-9)
    np.testing.assert_allclose(b["platelets"], np.round(0.9 * a["platelets"], 1), atol=1e-9)
    # brighter frames (+6 dB gain on a narrower window): every frame's mean gray rises
    for rel_a, rel_b in zip(a["image_path"], b["image_path"], strict=True):
        assert read_gray(str(other.parent / rel_b)).mean() > read_gray(str(home.parent / rel_a)).mean() + 10
    assert read_cohort_meta(other)["site"] == json.loads(json.dumps(SITES["b"].record()))
    assert "site" not in read_cohort_meta(home)


def test_measure_labs_keeps_missing_values_and_ranges():
    df = pd.DataFrame({"ast": pd.array([20, None, 2900], dtype="Int64"), "alt": pd.array([10, 12, 14], dtype="Int64"),
                       "albumin": [4.2, np.nan, 1.6], "platelets": [20.0, 9.3, 59.9]})
    out = measure_labs(df, get_site("b"))
    assert out["ast"].tolist()[0] == 25 and pd.isna(out["ast"].iloc[1]) and out["ast"].iloc[2] == 2999
    assert str(out["ast"].dtype) == "Int64" and pd.isna(out["albumin"].iloc[1])
    assert out["albumin"].iloc[2] == pytest.approx(1.6)  # kept inside the plausible range (1.5, 5.5)
    assert measure_labs(df, None) is df


def test_unknown_site_is_refused_before_writing(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown site 'x'.*known sites are b"):
        generate_cohort(tmp_path / "x", n=4, site="x")
    assert not (tmp_path / "x").exists()
    assert main(["synth", "--out", str(tmp_path / "y"), "--n", "4", "--site", "nowhere"]) == 1
    assert "unknown site 'nowhere'" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "z"), "--n", "4", "--frame-size", "96x120", "--site", "b"]) == 0
    assert "(site b)" in capsys.readouterr().out and read_cohort_meta(tmp_path / "z" / "manifest.csv")["site"]


def test_a_hydra_run_gets_the_site_as_a_data_option(tmp_path):
    from liver_mm.cohort.prepare import source_manifest

    manifest, synthetic = source_manifest({"kind": "synthetic", "n": 6, "seed": 2, "site": "b"}, tmp_path)
    assert synthetic and manifest.parent.name.endswith("-siteb")
    assert read_cohort_meta(manifest)["site"]["name"] == "b"
    home, _ = source_manifest({"kind": "synthetic", "n": 6, "seed": 2}, tmp_path)
    assert home.parent.name == "synthetic-n6-seed2-signalNone" and "site" not in read_cohort_meta(home)
