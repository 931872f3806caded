"""The case gallery: the surest false negatives and false positives, their pictures and clinical values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from liver_mm.explain.gallery import worst_cases, write_gallery

PROB = np.array([0.10, 0.45, 0.30, 0.90, 0.55, 0.80, 0.20, 0.95])
Y = np.array([1, 1, 1, 0, 0, 0, 0, 1])  # 0-2 false negatives, 3-5 false positives, 6-7 right


def test_worst_cases_orders_each_kind_by_the_confidence_of_the_wrong_call():
    sel = worst_cases(PROB, Y, threshold=0.5, k=2)
    assert sel["index"].tolist() == [0, 2, 3, 5]
    assert sel["kind"].tolist() == ["false negative"] * 2 + ["false positive"] * 2
    np.testing.assert_allclose(sel["confidence"], [0.90, 0.70, 0.90, 0.80])
    assert worst_cases(PROB, Y, 0.5, 0).empty


def test_write_gallery_with_pictures_and_clinical_values(tmp_path):
    crops = np.arange(8 * 32 * 32, dtype=np.uint32).reshape(8, 32, 32).astype(np.uint8)
    asked = []

    def maps(idx, sign):
        asked.append((idx.tolist(), sign.tolist()))
        return np.full((len(idx), 32, 32), 0.5, dtype=np.float32)

    clinical = pd.DataFrame({"age": [50, 61, 72, 43, 55, 66, 70, 80], "ast": [20.0, np.nan, 31, 18, 25, 40, 22, 19]})
    ids = [f"C{i}" for i in range(8)]
    written = write_gallery(tmp_path, PROB, Y, 0.5, ids, clinical, k=2, crops=crops, maps=maps, title="m3: ")
    table = pd.read_csv(tmp_path / "gallery.csv")
    assert table["case_id"].tolist() == ["C0", "C2", "C3", "C5"]
    assert table["label"].tolist() == ["malignant", "malignant", "benign", "benign"]
    assert table["age"].tolist() == [50, 72, 43, 66] and table["ast"].tolist() == [20.0, 31.0, 18.0, 40.0]
    assert table["image"].tolist() == ["gallery/false_negative_1.png", "gallery/false_negative_2.png",
                                       "gallery/false_positive_1.png", "gallery/false_positive_2.png"]
    assert asked == [([0, 2, 3, 5], [-1.0, -1.0, 1.0, 1.0])]  # the map of the called class
    for name in table["image"]:
        assert Image.open(tmp_path / name).size[0] > 100
    assert set(written) == {"gallery", "gallery.png", "gallery.csv"} and (tmp_path / "gallery.png").is_file()


def test_no_error_no_gallery(tmp_path):
    assert write_gallery(tmp_path, np.array([0.9, 0.1]), np.array([1, 0]), 0.5, ["a", "b"], pd.DataFrame(index=[0, 1])) == {}
    assert not (tmp_path / "gallery.csv").exists()
