"""No silent wrong answer from a request: JSON booleans are not numbers, declared units are converted
(or refused), a record without a lesion box is refused unless it asks for the whole frame, and an
unreadable image under the image root is named relative to it. Checked through the MLflow scoring
server's own request handling (``scoring_server.invocations``) and on :func:`parse_request`."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from PIL import Image

from liver_mm.serve.inference import Predictor
from liver_mm.serve.requests import NO_BOX, RequestError, parse_request

BOX = {"bbox_x0": 4, "bbox_y0": 6, "bbox_x1": 30, "bbox_y1": 28}


def _png_b64(h: int = 40, w: int = 50) -> str:
    buf = io.BytesIO()
    Image.fromarray((np.arange(h * w) % 251).astype(np.uint8).reshape(h, w)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _invoke(model, records: list[dict]) -> tuple[int, object]:
    """POST /invocations as the scoring server handles it: (status, predictions or the error message)."""
    body = json.dumps({"dataframe_records": records})
    try:
        resp = scoring_server.invocations(body, "application/json", model, model.metadata.get_input_schema())
    except MlflowException as exc:
        return exc.get_http_status_code(), exc.message.split("Error: ", 1)[-1]  # after MLflow's preamble
    return resp.status, json.loads(resp.response)["predictions"]


def _image_record(**kw) -> dict:
    return {"case_id": "a", "image_b64": _png_b64(), **BOX, "age": 60, "sex": "F", **kw}


TAB = {"case_id": "t", "age": 50, "sex": "F", "ast": 30, "alt": 25}


# --- item 12: JSON booleans -------------------------------------------------------------------------

@pytest.mark.parametrize("change, problem", [
    ({"age": True}, "case a, field age: true is a JSON boolean, not a number: send age as a number in years"),
    ({"bbox_x0": False, "bbox_y0": False, "bbox_x1": True, "bbox_y1": True},
     "case a, field bbox_x0: false is a JSON boolean, not a pixel coordinate"),
    ({"whole_frame": "yes"}, "case a, field whole_frame: 'yes' is not true or false"),
])
def test_json_boolean_in_a_numeric_field_is_400(image_pyfunc, change, problem):
    status, answer = _invoke(image_pyfunc, [_image_record(case_id="ok"), _image_record(**change)])
    assert status == 400, answer
    assert answer == f"invalid request: {problem}"


def test_json_boolean_lab_of_a_tabular_model_is_400(tabular_pyfunc):
    status, answer = _invoke(tabular_pyfunc, [{**TAB, "alt": False}])
    assert (status, answer) == (400, "invalid request: case t, field alt: false is a JSON boolean, not a "
                                     "number: send alt as a number in U/L")


# --- item 13: units -----------------------------------------------------------------------------------

def test_declared_units_are_converted_to_the_models():
    df = pd.DataFrame([{"case_id": "p", "platelets": 90, "albumin": 41,
                        "units": {"platelets": "10^9/L", "albumin": "g/L"}},
                       {"case_id": "q", "platelets": 9, "albumin": 4.1}])
    cases = parse_request(df, ["platelets", "albumin"], use_image=False)
    assert cases.labs["platelets"].tolist() == [9.0, 9.0]
    assert cases.labs["albumin"].tolist() == [pytest.approx(4.1, abs=1e-12), 4.1]


@pytest.mark.parametrize("units, field, message", [
    ({"platelets": "lakh/uL"}, "units.platelets",
     "unit 'lakh/uL' is not accepted for platelets; send one of x10^4/uL, x10^9/L, x10^3/uL, G/L, K/uL, /uL, "
     "/mm3 (or convert the value to x10^4/uL and leave the unit out)"),
    ({"hemoglobin": "g/L"}, "units.hemoglobin",
     "this model takes no lab 'hemoglobin' with a unit; units may name platelets, albumin"),
    ("10^9/L", "units", "'10^9/L' is not an object of lab units, e.g. {\"platelets\": \"10^9/L\"}"),
    ({"platelets": "10^9/L"}, "platelets",
     "2000 10^9/L = 200 x10^4/uL is outside the plausible 0.1-150 x10^4/uL"),
])
def test_unknown_or_impossible_units_are_refused(units, field, message):
    df = pd.DataFrame([{"case_id": "p", "platelets": 2000 if field == "platelets" else 20, "albumin": 4.0,
                        "units": units}])
    with pytest.raises(RequestError) as info:
        parse_request(df, ["platelets", "albumin"], use_image=False)
    assert [(p.case_id, p.field, p.message) for p in info.value.problems] == [("p", field, message)]


def test_served_units_convert_and_the_model_states_its_own(tabular_pyfunc, tabular_bundle):
    status, same = _invoke(tabular_pyfunc, [TAB, {**TAB, "ast": 0.5, "units": {"ast": "ukat/L"}}])
    assert status == 200, same
    assert same[1]["prob"] == pytest.approx(same[0]["prob"], abs=1e-7)  # 0.5 ukat/L = 30 U/L
    status, bad = _invoke(tabular_pyfunc, [{**TAB, "units": {"alt": "mg/dL"}}])
    assert status == 400 and "case t, field units.alt: unit 'mg/dL' is not accepted for alt; send one of " \
        "U/L, IU/L, ukat/L" in bad
    document = json.loads((tabular_bundle / "units.json").read_text())
    assert {k: v["unit"] for k, v in document.items()} == {"age": "years", "ast": "U/L", "alt": "U/L"}
    assert document["ast"]["accepted"] == ["U/L", "IU/L", "ukat/L"]
    assert tabular_pyfunc.metadata.metadata["units"] == document


def test_logged_example_declares_the_models_units(tabular_bundle):
    from liver_mm.serve.pyfunc import input_example

    example = input_example(Predictor.from_dir(tabular_bundle))
    assert example.at[0, "units"] == {"age": "years", "ast": "U/L", "alt": "U/L"}


# --- item 14: no box without whole_frame --------------------------------------------------------------

def test_record_without_a_box_is_400_unless_whole_frame(image_pyfunc, image_bundle):
    no_box = {k: v for k, v in _image_record().items() if k not in BOX}
    status, answer = _invoke(image_pyfunc, [no_box])
    assert (status, answer) == (400, f"invalid request: case a, field bbox_x0: {NO_BOX}")
    assert NO_BOX == ("no lesion box: send bbox_x0..bbox_y1, or whole_frame: true to score the whole frame "
                      "(the model was trained on crops)")
    status, rows = _invoke(image_pyfunc, [{**no_box, "whole_frame": True}, _image_record(case_id="b")])
    assert status == 200, rows
    assert [(r["case_id"], r["whole_frame"]) for r in rows] == [("a", True), ("b", False)]
    predictor = Predictor.from_dir(image_bundle)
    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(_png_b64()))))
    labs = pd.DataFrame({"age": [60.0], "sex": ["F"]})
    whole = predictor.probabilities(predictor.crop(frame, None)[None], predictor.tabular(labs))
    assert rows[0]["prob"] == pytest.approx(float(whole[0]), abs=1e-6)
    status, answer = _invoke(image_pyfunc, [_image_record(whole_frame=True)])
    assert (status, answer) == (400, "invalid request: case a, field whole_frame: whole_frame is true but a box "
                                     "is given: send the box, or whole_frame: true without one")
    status, rows = _invoke(image_pyfunc, [_image_record()])
    assert status == 200 and list(rows[0]) == ["case_id", "prob", "label"]  # no whole_frame asked: no column


# --- item 16: unreadable files are named relative to the image root ------------------------------------

def test_unreadable_image_is_named_relative_to_the_image_root(tmp_path):
    root = tmp_path / "server-secret-location" / "images"
    (root / "sub" / "folder.png").mkdir(parents=True)
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    records = [{"case_id": c, "image_path": p, **BOX} for c, p in
               (("broken", "sub/broken.png"), ("gone", "sub/gone.png"), ("folder", str(root / "sub" / "folder.png")))]
    with pytest.raises(RequestError) as info:
        parse_request(pd.DataFrame(records), [], use_image=True, image_root=root)
    got = {p.case_id: (p.field, p.message) for p in info.value.problems}
    assert "server-secret-location" not in str(info.value)
    assert got["broken"] == ("image_path", "sub/broken.png: not a readable image (cannot identify image file "
                                           "'sub/broken.png')")
    assert got["gone"] == ("image_path", "sub/gone.png: file not found")
    assert got["folder"] == ("image_path", "sub/folder.png: not a readable image ([Errno 21] Is a directory: "
                                           "'sub/folder.png')")
