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


BOX = {"bbox_x0": 2, "bbox_y0": 3, "bbox_x1": 12, "bbox_y1": 15}  # inside every test image


def _row(**kw) -> dict:
    row = {"case_id": "a", "image_b64": base64.b64encode(_png()).decode(), **BOX, "age": 60.0, "sex": "M"}
    return {**row, **kw}


def _no_box(**kw) -> dict:
    return {k: v for k, v in _row(**kw).items() if k not in BOX}


def test_parse_request_whole_frame_and_box():
    df = pd.DataFrame([_no_box(whole_frame=True), _row(case_id="b", bbox_x0=5, bbox_y0=6, bbox_x1=25, bbox_y1=30)])
    cases = parse_request(df, ["age", "sex"], use_image=True)
    assert cases.case_ids == ["a", "b"]
    assert cases.boxes == [None, (5, 6, 25, 30)]
    assert cases.whole_frame == [True, False]
    assert cases.frames[0].shape == (40, 50)
    assert cases.labs["sex"].tolist() == ["M", "M"] and cases.labs["age"].dtype == np.float64


def test_parse_request_lists_every_problem():
    png = _png()
    df = pd.DataFrame([
        _row(case_id="c1", age=None),
        _row(case_id="c2", image_b64="%%%not-base64%%%"),
        _row(case_id="c3", image_b64=base64.b64encode(png[: len(png) // 2]).decode()),
        _row(case_id="c4", bbox_x1=None, bbox_y1=None),
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
        parse_request(pd.DataFrame([row]), [], use_image=True, image_root=tmp_path)


def _path_row(case_id: str, path: str) -> dict:
    row = _row(case_id=case_id, image_path=path)
    del row["image_b64"]
    return row


def test_image_path_is_refused_without_an_image_root(tmp_path):
    (tmp_path / "a.png").write_bytes(_png())
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame([_path_row("a", str(tmp_path / "a.png"))]), [], use_image=True)
    (problem,) = info.value.problems
    assert (problem.case_id, problem.field) == ("a", "image_path")
    assert "image_path is not accepted by this server: send the image inline as image_b64" in problem.message


def test_image_path_outside_the_root_never_reveals_whether_it_exists(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "ok.png").write_bytes(_png(20, 30))
    (outside / "secret.png").write_bytes(_png())
    (root / "link.png").symlink_to(outside / "secret.png")
    (root / "linkdir").symlink_to(outside)
    cases = {"exists": str(outside / "secret.png"), "absent": str(outside / "nothing.png"),
             "dotdot": str(root / ".." / "private" / "secret.png"), "rel_dotdot": "../private/secret.png",
             "symlink": str(root / "link.png"), "symlink_dir": "linkdir/secret.png", "etc": "/etc/passwd"}
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame([_path_row(k, v) for k, v in cases.items()]), [], use_image=True,
                      image_root=root)
    problems = info.value.problems
    assert [(p.case_id, p.field) for p in problems] == [(k, "image_path") for k in cases]
    assert len({p.message for p in problems}) == 1  # one answer, existing file or not
    assert "must name a file under the server's image folder" in problems[0].message
    assert "secret" not in str(info.value) and "not found" not in str(info.value)
    # inside the root: relative (from the root), absolute, and with a harmless ".."
    ok = parse_request(pd.DataFrame([_path_row("r", "sub/ok.png"), _path_row("a", str(root / "sub" / "ok.png")),
                                     _path_row("d", "sub/../sub/ok.png")]), [], use_image=True, image_root=root)
    assert [f.shape for f in ok.frames] == [(20, 30)] * 3


def test_image_root_from_the_environment(tmp_path, monkeypatch):
    from liver_mm.serve.image_root import IMAGE_ROOT_ENV, image_root_from_env

    monkeypatch.delenv(IMAGE_ROOT_ENV, raising=False)
    assert image_root_from_env() is None
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(tmp_path / "x" / ".."))
    assert image_root_from_env() == tmp_path.resolve()
    monkeypatch.setenv(IMAGE_ROOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError, match=f"{IMAGE_ROOT_ENV}=.*missing: not an existing folder"):
        image_root_from_env()


def test_empty_request_names_the_fields():
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame(), ["age", "sex"], use_image=True)
    (problem,) = info.value.problems
    assert problem.field == "dataframe_records"
    assert problem.message == ("the request holds no case: send one record per case with the fields case_id, "
                               "image_b64 (or image_path), bbox_x0, bbox_y0, bbox_x1, bbox_y1, age, sex")


def test_records_without_the_model_fields_name_each_one():
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame([{"case_id": "q1"}]), ["age", "sex"], use_image=True)
    assert [(p.case_id, p.field) for p in info.value.problems] == [("q1", "age"), ("q1", "sex"),
                                                                    ("q1", "image_b64"), ("q1", "bbox_x0")]
    assert "missing: this model needs age" in str(info.value)


def test_decompression_bomb_is_a_clean_problem(bomb_b64):
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame([_row(image_b64=bomb_b64)]), ["age", "sex"], use_image=True)
    (problem,) = info.value.problems
    assert (problem.case_id, problem.field) == ("a", "image_b64")
    assert problem.message == (f"image too large (196,000,000 pixels): the limit is {Image.MAX_IMAGE_PIXELS:,} "
                               "pixels per image; crop or downscale it")


def test_score_request_maps_bad_input_to_http_400(tabular_bundle):
    predictor = Predictor.from_dir(tabular_bundle)
    ok = pd.DataFrame([{"case_id": "k1", "age": 50.0, "sex": "F", "ast": 30.0, "alt": 25.0}])
    out = score_request(predictor, ok)
    assert list(out.columns) == ["case_id", "prob", "label"] and out["case_id"].tolist() == ["k1"]
    with pytest.raises(MlflowException) as info:
        score_request(predictor, ok.drop(columns=["alt"]))
    assert info.value.get_http_status_code() == 400
    assert "case k1, field alt: missing" in info.value.message
    with pytest.raises(MlflowException) as info:
        score_request(predictor, pd.DataFrame())  # {"dataframe_records": []}: was KeyError 'age'
    assert info.value.get_http_status_code() == 400
    assert "field dataframe_records: the request holds no case" in info.value.message


def test_signature_and_example_fit_the_model(tabular_bundle):
    predictor = Predictor.from_dir(tabular_bundle)
    sig = request_signature(predictor.features, predictor.use_image)
    names = sig.inputs.input_names()
    assert names == ["case_id", "age", "sex", "ast", "alt", "units"]  # no image fields without an image branch
    assert not any(c.required for c in sig.inputs.inputs)
    assert sig.outputs.input_names() == ["case_id", "prob", "label"]
    example = input_example(predictor)
    assert all(check_lab(f, example.at[0, f]) is None for f in predictor.features)
    assert score_request(predictor, example)["prob"].between(0, 1).all()
