"""The reaction watcher: the first moment the GitOps branch, the values file and a local service
each show the rollback (a GitOps repository in a temporary folder and a small fake service)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from modelops.core.release import values_path
from modelops.integrations.gitops import GitOpsRepo
from modelops.services.simulate import reaction

VALUES = values_path("production", "p")


class _Service(BaseHTTPRequestHandler):
    version: ClassVar[str] = "5"

    def do_GET(self) -> None:
        body = (
            f'modelops_model_info{{project="p",model_version="{type(self).version}"}} 1.0\n'
            if self.path == "/metrics"
            else "{}"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def service() -> Iterator[str]:
    _Service.version = "5"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _deployed(path: Path, version: str) -> GitOpsRepo:
    repo = GitOpsRepo(path)
    repo.ensure()
    repo.write({VALUES: f"modelVersion: '{version}'\n"})
    assert repo.commit([VALUES], f"deploy v{version}") is not None
    return repo


def test_the_watcher_marks_each_step_of_the_rollback(tmp_path: Path, service: str) -> None:
    repo = _deployed(tmp_path / "gitops", "5")
    settings: Any = SimpleNamespace(resolved_gitops_repo=repo.path)
    watcher = reaction._Watcher(settings, "p", "production", "4", service)
    assert watcher.served_before == "5"
    watcher.start()
    time.sleep(0.5)
    assert watcher.seen == {} and watcher.is_alive()  # nothing changed yet

    repo.write({VALUES: "modelVersion: '4'\n"})
    assert repo.commit([VALUES], "rollback to v4") is not None
    _Service.version = "4"
    watcher.join(15)
    assert not watcher.is_alive()  # everything watched was seen: it ended by itself
    assert set(watcher.seen) == {"values", "gitops", "service"}
    assert watcher.seen["values"] <= watcher.seen["gitops"]


def test_a_stopped_watcher_ends_at_once(tmp_path: Path) -> None:
    settings: Any = SimpleNamespace(resolved_gitops_repo=tmp_path / "missing")
    watcher = reaction._Watcher(settings, "p", "production", "4", None)
    assert watcher.served_before is None
    watcher.start()
    time.sleep(0.3)
    started = time.perf_counter()
    watcher.stop()
    watcher.join(5)
    assert not watcher.is_alive() and time.perf_counter() - started < 1.0
    assert watcher.seen == {}
