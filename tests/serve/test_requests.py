"""Request checks (no server): lab ranges and unit sniffing, images, boxes, the 400 mapping."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from PIL import Image

from liver_mm.serve.inference import Predictor
from liver_mm.serve.pyfunc import input_example, request_signature, score_request
from liver_mm.serve.requests import RequestError, check_lab, parse_request


@pytest.mark.parametrize("name, value, expected", [
    ("albumin", 4.1, None),
    ("albumin", 40, "looks like g/L (= 4 g/dL)"),
    ("age", -3, "outside the plausible 0-120 years"),
    ("age", 64, None),
    ("ast", 0, "outside the plausible 1-20000 U/L"),
    ("ast", 800, None),  # high but no other unit explains it: accepted
    ("platelets", 180, "looks like x10^9/L"),  # plausible but atypical, typical in x10^9/L
    ("platelets", 15.2, None),
    ("sex", "female", None),
    ("sex", "X", "'X' is not one of F, M"),
    ("albumin", None, "missing: this model needs albumin in g/dL"),
    ("alt", float("nan"), "missing"),
    ("alt", "abc", "'abc' is not a number"),
    ("alt", float("inf"), "not a finite number"),
])
def test_check_lab(name, value, expected):
    msg = check_lab(name, value)
    if expected is None:
        assert msg is None
    else:
        assert msg is not None and expected in msg


def _png(h: int = 40, w: int = 50) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(h * w, dtype=np.uint8).reshape(h, w)).save(buf, format="PNG")
    return buf.getvalue()


def _row(**kw) -> dict:
    row = {"case_id": "a", "image_b64": base64.b64encode(_png()).decode(), "age": 60.0, "sex": "M"}
    return {**row, **kw}


def test_parse_request_whole_image_and_box():
    df = pd.DataFrame([_row(), _row(case_id="b", bbox_x0=5, bbox_y0=6, bbox_x1=25, bbox_y1=30)])
    cases = parse_request(df, ["age", "sex"], use_image=True)
    assert cases.case_ids == ["a", "b"]
    assert cases.boxes == [None, (5, 6, 25, 30)]
    assert cases.frames[0].shape == (40, 50)
    assert cases.labs["sex"].tolist() == ["M", "M"] and cases.labs["age"].dtype == np.float64


def test_parse_request_lists_every_problem():
    png = _png()
    df = pd.DataFrame([
        _row(case_id="c1", age=None),
        _row(case_id="c2", image_b64="%%%not-base64%%%"),
        _row(case_id="c3", image_b64=base64.b64encode(png[: len(png) // 2]).decode()),
        _row(case_id="c4", bbox_x0=1, bbox_y0=2),
        _row(case_id="c5", bbox_x0=0, bbox_y0=0, bbox_x1=80, bbox_y1=10),
        _row(case_id="c6", image_path="/x.png"),
        _row(case_id="c7", sex="U"),
    ])
    with pytest.raises(RequestError) as info:
        parse_request(df, ["age", "sex"], use_image=True)
    got = {(p.case_id, p.field) for p in info.value.problems}
    assert got == {("c1", "age"), ("c2", "image_b64"), ("c3", "image_b64"), ("c4", "bbox_x1"),
                   ("c5", "bbox_x0"), ("c6", "image_b64"), ("c7", "sex")}
    msg = str(info.value)
    assert "case c2, field image_b64: not valid base64" in msg
    assert "case c3, field image_b64: the decoded bytes: not a readable image" in msg
    assert "outside the 50x40 px image" in msg


def test_missing_image_path_file_is_named(tmp_path):
    row = _row(image_path=str(tmp_path / "gone.png"))
    del row["image_b64"]
    with pytest.raises(RequestError, match=r"case a, field image_path: .*gone.png: file not found"):
        parse_request(pd.DataFrame([row]), [], use_image=True)


def test_score_request_maps_bad_input_to_http_400(tabular_bundle):
    predictor = Predictor.from_dir(tabular_bundle)
    ok = pd.DataFrame([{"case_id": "k1", "age": 50.0, "sex": "F", "ast": 30.0, "alt": 25.0}])
    out = score_request(predictor, ok)
    assert list(out.columns) == ["case_id", "prob", "label"] and out["case_id"].tolist() == ["k1"]
    with pytest.raises(MlflowException) as info:
        score_request(predictor, ok.drop(columns=["alt"]))
    assert info.value.get_http_status_code() == 400
    assert "case k1, field alt: missing" in info.value.message


def test_signature_and_example_fit_the_model(tabular_bundle):
    predictor = Predictor.from_dir(tabular_bundle)
    sig = request_signature(predictor.features, predictor.use_image)
    names = sig.inputs.input_names()
    assert names == ["case_id", "age", "sex", "ast", "alt"]  # no image fields without an image branch
    assert not any(c.required for c in sig.inputs.inputs)
    assert sig.outputs.input_names() == ["case_id", "prob", "label"]
    example = input_example(predictor)
    assert all(check_lab(f, example.at[0, f]) is None for f in predictor.features)
    assert score_request(predictor, example)["prob"].between(0, 1).all()
