"""Requests to a running prediction service: what ``make demo`` sends, and how long each took.

The bodies come from the project's own label table (entity key and request-time fields of its
latest events), so every request names an entity the online store knows after materialization.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.integrations.service_http import READY_PATH, ServiceClient, ServiceUnreachableError
from modelops.services.context import project as project_for
from modelops.services.datasets import read_labels


class ServiceNotReadyError(ModelopsError):
    """The service did not answer ready in time."""


class ServiceExitedError(ServiceNotReadyError):
    """The service's process exited while it was waited for (``code``: its exit code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _check_running(base_url: str, process: Any, before: str) -> None:
    if process is not None and process.poll() is not None:
        raise ServiceExitedError(
            f"{base_url}: the service exited with code {process.returncode} before {before}",
            process.returncode,
        )


@dataclass
class TrafficResult:
    """``sent`` requests, ``failed`` of them not 200; latencies in milliseconds, in order."""

    url: str
    sent: int
    failed: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    samples: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("nan")


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def request_bodies(settings: Settings, project_name: str, count: int) -> list[dict[str, Any]]:
    """``count`` /predict bodies: the entity key and request fields of the latest events."""
    project = project_for(settings, project_name)
    spec = project.spec
    labels = read_labels(settings, project)
    columns = [spec.entity, *spec.label.request_columns]
    latest = labels.sort_values(spec.label.timestamp).tail(count)
    return [
        {column: _plain(row[column]) for column in columns}
        for row in latest[columns].to_dict("records")
    ]


def wait_ready(base_url: str, timeout: float = 120.0, process: Any = None) -> float:
    """Seconds until ``GET /readyz`` answered 200, asked every half second; raises when
    ``process`` exits or on timeout."""
    from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

    started = time.perf_counter()
    last = ["no answer"]

    def ready(client: ServiceClient) -> bool:
        _check_running(base_url, process, "it was ready")
        try:
            status = client.status(READY_PATH)
        except ServiceUnreachableError as exc:
            last[0] = exc.reason
            return False
        last[0] = f"HTTP {status}"
        return status == 200

    retrying = Retrying(
        retry=retry_if_result(lambda answered: not answered),
        wait=wait_fixed(0.5),
        stop=stop_after_delay(timeout),
        retry_error_callback=lambda state: False,
    )
    with ServiceClient(base_url, timeout=2.0) as client:
        if retrying(ready, client):
            return time.perf_counter() - started
    raise ServiceNotReadyError(f"{base_url}/readyz: not ready after {timeout:.0f} s ({last[0]})")


def wait_serving(base_url: str, version: str, timeout: float = 120.0, process: Any = None) -> bool:
    """Whether the service reports serving ``version`` (``/metrics``) within ``timeout``
    seconds, asked every quarter second; raises :class:`ServiceExitedError` when ``process``
    exits first."""
    from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

    def serving(client: ServiceClient) -> bool:
        if client.served_version() == version:
            return True
        _check_running(base_url, process, f"it served v{version}")
        return False

    retrying = Retrying(
        retry=retry_if_result(lambda served: not served),
        wait=wait_fixed(0.25),
        stop=stop_after_delay(timeout),
        retry_error_callback=lambda state: False,
    )
    with ServiceClient(base_url, timeout=2.0) as client:
        return bool(retrying(serving, client))


def _post(client: ServiceClient, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    status, payload = client.post_json("/predict", body)
    return status, payload, (time.perf_counter() - started) * 1000


def send(
    base_url: str, bodies: list[dict[str, Any]], *, concurrency: int = 8, samples: int = 3
) -> TrafficResult:
    """POST each body to ``/predict`` from ``concurrency`` threads sharing one connection pool;
    keeps the first answers."""
    url = f"{base_url}/predict"
    started = time.perf_counter()
    workers = max(concurrency, 1)
    with (
        ServiceClient(base_url, timeout=30.0) as client,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        answers = list(pool.map(lambda body: _post(client, body), bodies))
    result = TrafficResult(url=url, sent=len(bodies), failed=0, seconds=0.0)
    result.seconds = time.perf_counter() - started
    for body, (status, payload, ms) in zip(bodies, answers, strict=True):
        result.latencies_ms.append(ms)
        if status != 200:
            result.failed += 1
            if len(result.errors) < 3:
                result.errors.append(f"HTTP {status}: {json.dumps(payload)[:300]}")
        elif len(result.samples) < samples:
            result.samples.append((body, payload))
    return result
