"""The logged pyfunc model behind ``mlflow models serve``: same probabilities as ``liver-mm predict``,
HTTP 400 naming the case and field for bad input, no process left behind."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liver_mm.serve.predict import load_predictor, predict_manifest

LAB_FIELDS = ["age", "sex", "ast", "alt", "platelets", "albumin"]
BOX = ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]
STARTUP_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except (urllib.error.URLError, OSError):
        return 0


@pytest.fixture(scope="module")
def server(trained_model, tiny_cohort, tmp_path_factory):
    """``liver-mm serve`` of the run's pyfunc model on a free loopback port (base URL), started with a
    PATH that lacks the environment's scripts folder (where ``mlflow models serve`` looks for uvicorn)
    and with the cohort's folder as the image root."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "LIVER_MM_SERVE_IMAGE_ROOT"}
    env.update(OMP_NUM_THREADS="1", PATH=os.pathsep.join(["/usr/bin", "/bin"]))
    log = (tmp_path_factory.mktemp("server") / "serve.log").open("w+")
    proc = subprocess.Popen(
        [str(bin_dir / "liver-mm"), "serve", "--model-uri", trained_model.model_uri, "--port", str(port),
         "--workers", "1", "--image-root", str(tiny_cohort.parent), "--tracking-uri", trained_model.tracking_uri],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while _get(url + "/ping") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"model server did not start (exit {proc.poll()}):\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop_group(proc)
        log.close()
    assert _get(url + "/ping") == 0, "server still answering after shutdown"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the server's process group (mlflow + its uvicorn worker), SIGKILL after ``grace_s``."""
    os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (proc.poll() is None or _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _post(url: str, records: list[dict] | dict) -> tuple[int, dict]:
    body = json.dumps(records if isinstance(records, dict) else {"dataframe_records": records}).encode()
    req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def cases(heldout_manifest) -> pd.DataFrame:
    return pd.read_csv(heldout_manifest, dtype={"case_id": str}).head(6)


def _records(cases: pd.DataFrame, image: str = "b64") -> list[dict]:
    out = []
    for row in cases.to_dict("records"):
        rec = {"case_id": row["case_id"], **{k: row[k] for k in LAB_FIELDS + BOX}}
        if image == "b64":
            rec["image_b64"] = base64.b64encode(Path(row["image_path"]).read_bytes()).decode("ascii")
        else:
            rec["image_path"] = row["image_path"]
        out.append(rec)
    return out


def test_valid_request_matches_predict(server, tracked, cases, tmp_path):
    manifest = tmp_path / "cases.csv"
    cases.to_csv(manifest, index=False)
    expected = predict_manifest(tracked.model_uri, manifest)
    for image in ("b64", "path"):
        status, body = _post(server, _records(cases, image))
        assert status == 200, body
        got = pd.DataFrame(body["predictions"])
        assert list(got.columns) == ["case_id", "prob", "label"]
        assert got["case_id"].tolist() == expected["case_id"].tolist()
        np.testing.assert_allclose(got["prob"], expected["prob"], atol=1e-6, rtol=0)
        assert got["label"].tolist() == expected["label"].tolist()


def test_request_without_box_uses_the_whole_image(server, tracked, cases):
    rec = _records(cases.head(1))[0]
    for col in BOX:
        del rec[col]
    rec["whole_frame"] = True  # a record without a box must ask for the whole frame (issue 21, item 14)
    status, body = _post(server, [rec])
    assert status == 200, body
    assert body["predictions"][0]["whole_frame"] is True
    predictor = load_predictor(tracked.model_uri)
    from liver_mm.io.images import read_gray

    frame = read_gray(cases.loc[0, "image_path"])
    labs = cases.loc[[0], predictor.features].reset_index(drop=True)
    local = predictor.probabilities(predictor.crop(frame, None)[None], predictor.tabular(labs))
    assert body["predictions"][0]["prob"] == pytest.approx(float(local[0]), abs=1e-6)


def test_logged_input_example_is_served(server, tracked):
    import mlflow

    from liver_mm.serve.pyfunc import score_request

    path = Path(mlflow.artifacts.download_artifacts(tracked.model_uri)) / "serving_input_example.json"
    req = urllib.request.Request(server + "/invocations", data=path.read_bytes(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        (got,) = json.loads(resp.read())["predictions"]
    example = json.loads(path.read_text())["dataframe_split"]
    (local,) = score_request(load_predictor(tracked.model_uri), pd.DataFrame(**example)).to_dict("records")
    assert got["case_id"] == local["case_id"] == "example-1"
    assert got["prob"] == pytest.approx(local["prob"], abs=1e-6) and got["label"] == local["label"]


def _truncated_png(rec: dict) -> str:
    return base64.b64encode(base64.b64decode(rec["image_b64"])[:300]).decode("ascii")


BAD_REQUESTS = {
    "missing_lab": (lambda r: {k: v for k, v in r.items() if k != "albumin"}, "albumin", "missing"),
    "albumin_g_per_l": (lambda r: {**r, "albumin": r["albumin"] * 10}, "albumin", "looks like g/L"),
    "negative_age": (lambda r: {**r, "age": -4}, "age", "outside the plausible"),
    "ast_zero": (lambda r: {**r, "ast": 0}, "ast", "outside the plausible"),
    "broken_base64": (lambda r: {**r, "image_b64": "iVBORw0K$$$not-base64"}, "image_b64", "not valid base64"),
    "truncated_png": (lambda r: {**r, "image_b64": _truncated_png(r)}, "image_b64", "not a readable image"),
}


@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
def test_bad_request_is_400_naming_case_and_field(server, cases, kind):
    change, field, why = BAD_REQUESTS[kind]
    good, bad = _records(cases.head(2))
    status, body = _post(server, [good, change(bad)])
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    problem = body["message"].split("Error: ", 1)[-1]
    assert f"case {bad['case_id']}, field {field}: " in problem and why in problem
    assert f"case {good['case_id']}" not in problem


def _problem(body: dict) -> str:
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    return body["message"].split("Error: ", 1)[-1]


def test_image_path_outside_the_image_root_is_400_that_reveals_nothing(server, cases, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(Path(cases.loc[0, "image_path"]).read_bytes())  # readable by the server, outside the root
    inside = cases.loc[0, "image_path"]
    escapes = {"exists": str(secret), "absent": str(tmp_path / "absent.png"),
               "dotdot": f"{Path(inside).parent}/../../{tmp_path.name}/secret.png", "passwd": "/etc/passwd"}
    answers = {}
    for name, path in escapes.items():
        rec = {**_records(cases.head(1), "path")[0], "case_id": "probe", "image_path": path}
        status, body = _post(server, [rec])
        assert status == 400, (name, body)
        answers[name] = _problem(body)
    assert len(set(answers.values())) == 1, answers
    assert answers["exists"].startswith("invalid request: case probe, field image_path: image_path must name "
                                        "a file under the server's image folder")


def test_empty_request_is_400_naming_the_fields(server):
    status, body = _post(server, [])
    assert status == 400, body
    assert "field dataframe_records: the request holds no case: send one record per case with the fields " \
        "case_id, image_b64 (or image_path), bbox_x0" in _problem(body)
    status, body = _post(server, [{"case_id": "c0"}])
    assert status == 400, body
    problem = _problem(body)
    assert "KeyError" not in problem
    assert all(f"case c0, field {f}: missing" in problem for f in LAB_FIELDS)
    assert "case c0, field image_b64: give exactly one of image_b64 / image_path (neither given)" in problem


def test_decompression_bomb_is_a_clean_400(server, cases, bomb_b64):
    from PIL import Image

    rec = {**_records(cases.head(1))[0], "image_b64": bomb_b64}
    status, body = _post(server, [rec])
    assert status == 400, body
    problem = _problem(body)
    assert problem == (f"invalid request: case {rec['case_id']}, field image_b64: image too large "
                       f"(196,000,000 pixels): the limit is {Image.MAX_IMAGE_PIXELS:,} pixels per image; "
                       "crop or downscale it")


def test_serve_environment_puts_this_installation_first(tmp_path):
    import sysconfig

    from liver_mm.cli.serve_cmds import serve_command, serve_environment

    env = serve_environment("sqlite:///x.db", str(tmp_path / "imgs" / ".."), base={"PATH": "/usr/bin:/bin"})
    scripts = sysconfig.get_path("scripts")
    assert env["PATH"] == f"{scripts}:/usr/bin:/bin" and os.access(Path(scripts) / "uvicorn", os.X_OK)
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"
    assert env["LIVER_MM_SERVE_IMAGE_ROOT"] == str(tmp_path.resolve())
    assert "LIVER_MM_SERVE_IMAGE_ROOT" not in serve_environment("u", None, base={})
    with pytest.raises(NotADirectoryError, match="--image-root .*nope: not an existing folder"):
        serve_environment("u", str(tmp_path / "nope"), base={})
    assert serve_command("runs:/r/model", "127.0.0.1", 5001) == [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", "runs:/r/model", "--host", "127.0.0.1",
        "--port", "5001", "--env-manager", "local"]
