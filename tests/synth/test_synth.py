"""The synthetic cohort: calibration to the paper's tables, determinism, frames and boxes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from liver_mm.cli import main
from liver_mm.io.images import read_gray
from liver_mm.synth.clinical import (
    FEMALE_FRACTION,
    LAB_LIMITS,
    LAB_QUARTILES,
    SUBTYPE_COUNTS,
    class_counts,
    lab_quantile,
    synth_clinical,
)
from liver_mm.synth.cohort import generate_cohort, is_synthetic, read_cohort_meta
from liver_mm.synth.images import render_frame


@pytest.fixture(scope="module", params=[0, 7])
def paper_table(request) -> pd.DataFrame:
    return synth_clinical(1080, seed=request.param)


def test_class_and_subtype_counts_exact_at_paper_size(paper_table):
    assert paper_table["label"].value_counts().to_dict() == {"benign": 532, "malignant": 548}
    for label, expected in SUBTYPE_COUNTS.items():
        got = paper_table.loc[paper_table["label"] == label, "subtype"].value_counts().to_dict()
        assert got == expected


@pytest.mark.parametrize("var", list(LAB_QUARTILES))
def test_quartiles_match_table2_within_5_percent(paper_table, var):
    for label, (q1, med, q3) in LAB_QUARTILES[var].items():
        values = paper_table.loc[paper_table["label"] == label, var].astype(float).dropna()
        got = values.quantile([0.25, 0.5, 0.75]).to_numpy()
        np.testing.assert_allclose(got, [q1, med, q3], rtol=0.05, err_msg=f"{var} {label}")


def test_female_share_and_missing_labs(paper_table):
    for label, share in FEMALE_FRACTION.items():
        got = (paper_table.loc[paper_table["label"] == label, "sex"] == "F").mean()
        assert abs(got - share) / share < 0.05
    assert set(paper_table["sex"]) == {"F", "M"}
    assert paper_table["ggt"].isna().sum() == 3 and paper_table["alp"].isna().sum() == 28
    core = ["age", "sex", "ast", "alt", "platelets", "albumin", "wbc", "hemoglobin"]
    assert not paper_table[core].isna().any().any()


def test_values_plausible_and_rounded_like_lab_reports(paper_table):
    for var, (lo, hi, decimals) in LAB_LIMITS.items():
        v = paper_table[var].astype(float).dropna()
        assert v.min() > lo * 0.99 and v.max() < hi, var
        assert np.allclose(v, v.round(decimals)), var
    assert paper_table["age"].min() >= 18 and paper_table["ast"].min() > 0


def test_labs_correlated_as_in_life(paper_table):
    for label, grp in paper_table.groupby("label"):
        rho = grp[["ast", "alt", "platelets", "albumin"]].astype(float).corr(method="spearman")
        assert rho.loc["ast", "alt"] > 0.5, label
    malignant = paper_table[paper_table["label"] == "malignant"][["platelets", "albumin"]].corr("spearman")
    assert malignant.iloc[0, 1] > 0.3


def test_multi_nodule_patients_share_sex_and_age(paper_table):
    per_patient = paper_table.groupby("patient_id")
    sizes = per_patient.size()
    assert 0.05 < (sizes == 2).mean() < 0.11 and sizes.max() == 2
    multi = paper_table[paper_table["patient_id"].isin(sizes.index[sizes > 1])]
    for _, grp in multi.groupby("patient_id"):
        assert grp["sex"].nunique() == 1 and grp["label"].nunique() == 1
        assert grp["age"].max() - grp["age"].min() <= 1
    assert paper_table["case_id"].is_unique


@pytest.mark.parametrize("n", [2, 61, 540])
def test_counts_proportional_for_other_sizes(n):
    counts = class_counts(n)
    assert sum(counts.values()) == n and min(counts.values()) >= 1
    assert abs(counts["benign"] - n * 532 / 1080) < 1
    df = synth_clinical(n, seed=1)
    assert len(df) == n and df["label"].value_counts().to_dict() == counts


def test_quantile_function_hits_the_quartiles():
    for var, per_class in LAB_QUARTILES.items():
        for label, quartiles in per_class.items():
            np.testing.assert_allclose(lab_quantile(var, label, np.array([0.25, 0.5, 0.75])), quartiles, rtol=1e-9)


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    kw = {"n": 6, "frame_size": (96, 120)}
    a = generate_cohort(tmp_path / "a", seed=3, **kw)
    b = generate_cohort(tmp_path / "b", seed=3, **kw)
    c = generate_cohort(tmp_path / "c", seed=4, **kw)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    names = sorted(p.name for p in (a.parent / "images").iterdir())
    assert len(names) == 6
    for name in names:
        assert (a.parent / "images" / name).read_bytes() == (b.parent / "images" / name).read_bytes()
    assert (a.parent / "images" / names[0]).read_bytes() != (c.parent / "images" / names[0]).read_bytes()
    assert (a.parent / "cohort.json").read_bytes() == (b.parent / "cohort.json").read_bytes()


def test_manifest_columns_and_sidecar(tiny_cohort):
    df = pd.read_csv(tiny_cohort, dtype={"case_id": str, "patient_id": str})
    expected = ["case_id", "patient_id", "image_path", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                "bbox2_x0", "bbox2_y0", "bbox2_x1", "bbox2_y1", "label", "subtype", "diagnostic_basis",
                "age", "sex", "ast", "alt", "platelets", "albumin", "wbc", "hemoglobin", "ggt", "alp"]
    assert list(df.columns) == expected
    assert df["image_path"].str.match(r"^images/C\d{4}\.png$").all()
    assert set(df["diagnostic_basis"]) <= {"histology", "contrast imaging", "follow-up"}
    assert is_synthetic(tiny_cohort)
    meta = read_cohort_meta(tiny_cohort)
    assert meta["synthetic"] is True and meta["generator"] == "liver_mm.data.synth"
    assert (meta["n"], meta["seed"], meta["frame_size"]) == (60, 0, [128, 160])


def test_is_synthetic_false_without_or_with_bad_sidecar(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("case_id\n")
    assert not is_synthetic(manifest)
    (tmp_path / "cohort.json").write_text("{not json")
    assert not is_synthetic(manifest)
    (tmp_path / "cohort.json").write_text(json.dumps({"synthetic": False}))
    assert not is_synthetic(manifest)


def _contrast(px: np.ndarray, box) -> float:
    """KS distance between the pixels in a box and a ring around it (scan field only)."""
    x0, y0, x1, y1 = box
    m = max(4, (x1 - x0) // 2)
    inner = np.zeros(px.shape, bool)
    inner[y0:y1, x0:x1] = True
    outer = np.zeros(px.shape, bool)
    outer[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m] = True
    return ks_2samp(px[inner & (px > 0)], px[outer & ~inner & (px > 0)]).statistic


def _control_box(px: np.ndarray, box):
    """A lesion-free box of the same size beside the lesion, inside the scan field."""
    x0, y0, x1, y1 = box
    w = x1 - x0
    for shift in (int(1.6 * w) + 4, -int(1.6 * w) - 4):
        c = (x0 + shift, y0, x1 + shift, y1)
        if c[0] >= 0 and c[2] <= px.shape[1] and (px[c[1]:c[3], c[0]:c[2]] > 0).mean() > 0.9:
            return c
    return None


def test_frames_hold_a_visible_lesion_inside_the_box(tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    lesion, control = [], []
    for row in df.itertuples():
        px = read_gray(tiny_cohort.parent / row.image_path)
        assert px.shape == (128, 160)
        box = (row.bbox_x0, row.bbox_y0, row.bbox_x1, row.bbox_y1)
        assert 0 <= box[0] < box[2] <= 160 and 0 <= box[1] < box[3] <= 128
        assert (box[2] - box[0]) * (box[3] - box[1]) < px.size / 4  # a full frame, not a crop
        assert (px[box[1]:box[3], box[0]:box[2]] > 0).mean() > 0.95  # lesion inside the field of view
        assert (px == 0).mean() > 0.02  # dark surround outside the scan field
        c = _control_box(px, box)
        if c is not None:
            lesion.append(_contrast(px, box))
            control.append(_contrast(px, c))
    lesion, control = np.array(lesion), np.array(control)
    assert len(lesion) > 40
    assert (lesion > control).mean() >= 0.85
    assert np.median(lesion) > 2 * np.median(control) and np.median(lesion) > 0.15


def test_second_observer_boxes_close_but_not_identical(tiny_cohort):
    df = pd.read_csv(tiny_cohort)
    a1 = (df.bbox_x1 - df.bbox_x0) * (df.bbox_y1 - df.bbox_y0)
    a2 = (df.bbox2_x1 - df.bbox2_x0) * (df.bbox2_y1 - df.bbox2_y0)
    diff = (df[["bbox2_x0", "bbox2_y0", "bbox2_x1", "bbox2_y1"]].to_numpy()
            - df[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy())
    assert 0.5 < np.abs(diff).mean() < 6 and (diff != 0).any(axis=1).mean() > 0.5
    assert 0.85 < np.corrcoef(a1, a2)[0, 1] < 1.0


def _crop_auc(signal: float, n: int = 200) -> float:
    df = synth_clinical(n, seed=5)
    feats = []
    for k, subtype in enumerate(df["subtype"]):
        f = render_frame(subtype, np.random.default_rng([5, k]), signal, (96, 120))
        crop = f.pixels[f.bbox[1]:f.bbox[3], f.bbox[0]:f.bbox[2]].astype(float)
        feats.append([crop.mean(), crop.std(), *np.percentile(crop, [10, 50, 90])])
    y = (df["label"] == "malignant").to_numpy()
    p = cross_val_predict(LogisticRegression(max_iter=1000), np.array(feats), y, cv=5, method="predict_proba")
    return roc_auc_score(y, p[:, 1])


def test_image_signal_sets_how_much_the_crop_tells():
    low, high = _crop_auc(0.0), _crop_auc(1.0)
    assert low < 0.65 and high > 0.8


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="image_signal"):
        generate_cohort(tmp_path, n=4, image_signal=1.5)
    with pytest.raises(ValueError, match="frame_size"):
        generate_cohort(tmp_path, n=4, frame_size=(32, 32))
    with pytest.raises(ValueError, match="n must be"):
        synth_clinical(1)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "--out", str(out), "--n", "5", "--seed", "2", "--frame-size", "96x120"]) == 0
    assert (out / "manifest.csv").is_file() and len(list((out / "images").glob("*.png"))) == 5
    assert "manifest.csv" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--n", "5", "--image-signal", "2"]) == 1
    assert "image_signal" in capsys.readouterr().err


# sha256 of manifest.csv + every images/<file> (name, decoded pixels) and of cohort.json of
# generate_cohort(n=24, seed=3), for the generator before the interaction option existed (the manifest and sidecar
# as hashed then; the pixels re-hashed decoded at c153f9a, whose synth code is that generator's): with the option
# off the cohort must stay identical
DEFAULT_COHORT_SHA256 = "3abbb2cf22e964fb259c598424ba476ec1944156ff2c2dd975088a4062721058"
DEFAULT_SIDECAR_SHA256 = "96fcd6f54dec5be60d86cafdf6149e42480f77fe0bdf9b101435da2153703092"


def _cohort_sha256(manifest) -> str:
    """sha256 of the manifest's bytes and each image's name, shape and decoded pixels (not the PNG bytes: the
    PNG encoder's output moves with the Pillow/zlib build while the pixels stay)."""
    import hashlib

    from PIL import Image

    h = hashlib.sha256(manifest.read_bytes())
    for p in sorted((manifest.parent / "images").iterdir()):
        pixels = np.asarray(Image.open(p))
        h.update(p.name.encode())
        h.update(str(pixels.shape).encode())
        h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def test_interaction_off_is_byte_identical_to_before(tmp_path):
    import hashlib

    manifest = generate_cohort(tmp_path / "c", n=24, seed=3, progress=False)
    assert _cohort_sha256(manifest) == DEFAULT_COHORT_SHA256
    assert hashlib.sha256((manifest.parent / "cohort.json").read_bytes()).hexdigest() == DEFAULT_SIDECAR_SHA256
    explicit = generate_cohort(tmp_path / "d", n=24, seed=3, progress=False, interaction=0.0)
    assert _cohort_sha256(explicit) == DEFAULT_COHORT_SHA256


def test_interaction_shifts_the_echo_by_label_and_platelets(tmp_path):
    from liver_mm.synth.looks import interaction_echo_db

    shift = interaction_echo_db(np.array(["malignant", "benign", "malignant", "benign"]),
                                np.array([9.0, 21.0, 21.0, 15.0]), 1.0)
    t = 10.0 * np.tanh(2.0)  # |platelets - 15| = 6 = 2 scales
    np.testing.assert_allclose(shift, [t, t, -t, 0.0], atol=1e-12)
    np.testing.assert_allclose(interaction_echo_db(np.array(["benign"]), np.array([9.0]), 0.5), [-0.5 * t])
    assert not interaction_echo_db(np.array(["benign"]), np.array([np.nan]), 0.0).any()
    with pytest.raises(ValueError, match="interaction must lie in"):
        generate_cohort(tmp_path / "bad", n=24, interaction=1.5)
    # a brighter core with a positive shift, same random draws otherwise
    plain = render_frame("HCC", np.random.default_rng(5), 0.35, (128, 160))
    bright = render_frame("HCC", np.random.default_rng(5), 0.35, (128, 160), echo_shift_db=10.0)
    assert plain.bbox == bright.bbox
    x0, y0, x1, y1 = plain.bbox
    assert bright.pixels[y0:y1, x0:x1].mean() > plain.pixels[y0:y1, x0:x1].mean() + 10
    # the cohort: same manifest (labs, boxes), other images, the option in the sidecar
    on = generate_cohort(tmp_path / "on", n=24, seed=3, progress=False, interaction=1.0)
    off = generate_cohort(tmp_path / "off", n=24, seed=3, progress=False, frame_size=(256, 320))
    assert on.read_bytes() == off.read_bytes()
    assert _cohort_sha256(on) != DEFAULT_COHORT_SHA256
    assert read_cohort_meta(on)["interaction"] == 1.0 and "interaction" not in read_cohort_meta(off)
