"""Over real HTTP (``liver-mm serve`` of the trained model): booleans refused, declared units converted,
no box without ``whole_frame``."""

from __future__ import annotations

import pytest

from liver_mm.serve.requests import NO_BOX
from tests.serve.test_serve import BOX, _post, _problem, _records, cases, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow  # starts its own model server


def test_served_model_refuses_booleans_and_boxless_records_and_converts_units(server, cases):  # noqa: F811
    rec = _records(cases.head(1))[0]
    status, body = _post(server, [{**rec, "albumin": True}])
    assert status == 400, body
    assert _problem(body) == (f"invalid request: case {rec['case_id']}, field albumin: true is a JSON boolean, "
                              "not a number: send albumin as a number in g/dL")

    status, body = _post(server, [rec, {**rec, "case_id": "per-10^9/L", "platelets": rec["platelets"] * 10,
                                        "units": {"platelets": "10^9/L"}}])
    assert status == 200, body
    same, converted = body["predictions"]
    assert converted["prob"] == pytest.approx(same["prob"], abs=1e-6)

    no_box = {k: v for k, v in rec.items() if k not in BOX}
    status, body = _post(server, [no_box])
    assert status == 400, body
    assert _problem(body) == f"invalid request: case {rec['case_id']}, field bbox_x0: {NO_BOX}"
    status, body = _post(server, [{**no_box, "whole_frame": True}])
    assert status == 200, body
    assert body["predictions"][0]["whole_frame"] is True
