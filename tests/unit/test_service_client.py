"""The HTTP adapter to a running service and the readiness wait built on it, against a small
local server (no prediction service needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from modelops.integrations.service_http import ServiceClient, ServiceUnreachableError
from modelops.services import traffic

METRICS = (
    b"# HELP modelops_model_info 1 for the model version being served\n"
    b"# TYPE modelops_model_info gauge\n"
    b'modelops_model_info{project="p",model_version="3",environment="production"} 0.0\n'
    b'modelops_model_info{project="p",model_version="4",environment="production"} 1.0\n'
    b"modelops_requests_total 12.0\n"
)


class _Handler(BaseHTTPRequestHandler):
    ready_after: ClassVar[int] = 0
    """``/readyz`` answers 503 this many times, then 200."""
    asked: ClassVar[int] = 0

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/readyz":
            type(self).asked += 1
            ready = type(self).asked > type(self).ready_after
            self._answer(200 if ready else 503, b"{}")
        elif self.path == "/metrics":
            self._answer(200, METRICS, "text/plain")
        else:
            self._answer(404, b"not json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/echo":
            self._answer(200, json.dumps({"got": body}).encode())
        elif self.path == "/broken":
            self._answer(200, b"<html>")
        else:
            self._answer(422, json.dumps({"error": "bad field"}).encode())

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.ready_after, _Handler.asked = 0, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_json_answers_errors_and_bodies_that_are_not_json(server: str) -> None:
    with ServiceClient(server, timeout=5) as client:
        assert client.base_url == server.rstrip("/")
        assert client.post_json("/echo", {"a": [1, None]}) == (200, {"got": {"a": [1, None]}})
        assert client.post_json("/other", {}) == (422, {"error": "bad field"})
        with pytest.raises(ServiceUnreachableError, match="/broken: HTTP 200 with a body"):
            client.post_json("/broken", {})
        assert client.status("/nowhere") == 404


def test_metric_samples_are_read_with_their_labels(server: str) -> None:
    with ServiceClient(server, timeout=5) as client:
        samples = client.metric_samples("modelops_model_info")
        assert [(labels["model_version"], value) for labels, value in samples] == [
            ("3", 0.0),
            ("4", 1.0),
        ]
        assert client.metric_samples("modelops_absent") == []


def test_the_served_version_is_the_info_gauge_at_one(server: str) -> None:
    with ServiceClient(server, timeout=5) as client:
        assert client.served_version() == "4"
        _Handler.ready_after = 10_000  # not ready: no version, whatever /metrics says
        assert client.served_version() is None


def test_wait_serving_until_the_version_or_the_timeout(server: str) -> None:
    assert traffic.wait_serving(server, "4", timeout=5)
    started = time.perf_counter()
    assert not traffic.wait_serving(server, "5", timeout=0.6)
    assert 0.5 <= time.perf_counter() - started < 5
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(2)"])
    process.wait()
    with pytest.raises(traffic.ServiceExitedError, match="before it served v5") as raised:
        traffic.wait_serving(server, "5", timeout=20, process=process)
    assert raised.value.code == 2


def test_a_service_that_does_not_answer_is_one_error_naming_it() -> None:
    with socket_closed() as url, ServiceClient(url, timeout=2) as client:
        assert not client.ready()
        assert client.metric_samples("modelops_model_info") == []
        with pytest.raises(ServiceUnreachableError, match=rf"^{url}/predict: ") as raised:
            client.post_json("/predict", {})
        assert raised.value.reason == "ConnectError"


def test_wait_ready_asks_until_ready(server: str) -> None:
    _Handler.ready_after = 2
    seconds = traffic.wait_ready(server.rstrip("/"), timeout=20)
    assert _Handler.asked == 3 and 0.9 <= seconds < 20  # two waits of half a second


def test_wait_ready_gives_up_with_the_last_answer(server: str) -> None:
    _Handler.ready_after = 10_000
    with pytest.raises(traffic.ServiceNotReadyError, match=r"not ready after 1 s \(HTTP 503\)"):
        traffic.wait_ready(server.rstrip("/"), timeout=1.2)


def test_wait_ready_stops_when_the_process_exits(server: str) -> None:
    _Handler.ready_after = 10_000
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(traffic.ServiceNotReadyError, match="exited with code 3"):
        traffic.wait_ready(server.rstrip("/"), timeout=20, process=process)
    assert _Handler.asked == 0


class socket_closed:
    """A URL on which nothing listens (a port bound, then released)."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *args: object) -> None:
        return None
