"""A tracking-server store takes no file lock, and one that does not answer fails at once, naming itself."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from liver_mm.tracking.store import TrackingServerDown, open_client


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_server_that_answers_gives_a_client_and_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        assert open_client(uri).tracking_uri == uri
    finally:
        server.shutdown()
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no lock file


def test_server_that_does_not_answer_fails_at_once_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    t0 = time.time()
    with pytest.raises(TrackingServerDown) as exc:
        open_client(f"http://127.0.0.1:{port}")
    assert time.time() - t0 < 5
    assert str(exc.value).startswith(f"MLflow tracking server http://127.0.0.1:{port} does not answer (")
    assert "scripts/mlflow-server.sh up" in str(exc.value) and "the study resumes" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_study_links_point_at_the_tracking_server():
    from liver_mm.tracking.ui import runs_link, ui_base

    assert runs_link("1", "abc", ui_base("http://127.0.0.1:5077/")) == (
        "MLflow server, Table 3 of every arm: "
        "http://127.0.0.1:5077/#/experiments/1/runs/abc/artifacts/table3.html?workflowType=machine_learning")
    assert runs_link("1", "abc", ui_base("sqlite:///x/mlflow.db")).startswith(
        "MLflow UI (make ui), Table 3 of every arm: http://127.0.0.1:5000/#/experiments/1/runs/abc/")
