"""Prometheus metrics of a prediction service, next to BentoML's own on ``GET /metrics``.

BentoML already counts requests and times them per endpoint (``bentoml_service_request_*``);
these add what only the service knows, every series labelled with the model version that
answered: outcomes, latency, the score distribution, decisions, entities without online
features, prediction-log rows and reloads. They are created through ``bentoml.metrics`` (a
drop-in for ``prometheus_client`` that handles BentoML's multi-process mode).
"""

from __future__ import annotations

from typing import Any, Protocol

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))


class Metrics(Protocol):
    def request(self, endpoint: str, version: str, outcome: str, seconds: float) -> None: ...

    def rejected(self, endpoint: str, version: str) -> None: ...

    def scores(self, version: str, scores: list[float], decisions: list[str]) -> None: ...

    def missing(self, version: str, policy: str, count: int) -> None: ...

    def log_rows(self, outcome: str, count: int) -> None: ...

    def model(self, version: str, sha256: str, shadow: str | None) -> None: ...

    def reload(self, outcome: str) -> None: ...

    def unmatched(self) -> None: ...


class NullMetrics:
    """Counts nothing (unit tests, tools)."""

    def request(self, endpoint: str, version: str, outcome: str, seconds: float) -> None:
        return None

    def rejected(self, endpoint: str, version: str) -> None:
        return None

    def scores(self, version: str, scores: list[float], decisions: list[str]) -> None:
        return None

    def missing(self, version: str, policy: str, count: int) -> None:
        return None

    def log_rows(self, outcome: str, count: int) -> None:
        return None

    def model(self, version: str, sha256: str, shadow: str | None) -> None:
        return None

    def reload(self, outcome: str) -> None:
        return None

    def unmatched(self) -> None:
        return None


class PrometheusMetrics:
    """The service's metrics, labelled with the project and the answering model version."""

    def __init__(self, project: str, environment: str | None) -> None:
        import bentoml

        m: Any = bentoml.metrics
        self._project = project
        self._environment = environment or ""
        self._requests = m.Counter(
            name="modelops_requests_total",
            documentation="Prediction requests by endpoint, model version and outcome "
            "(ok, fallback, missing_features, bad_request, unavailable).",
            labelnames=["project", "endpoint", "model_version", "outcome"],
        )
        self._latency = m.Histogram(
            name="modelops_request_latency_seconds",
            documentation="Time from a validated request to its response, inside the service.",
            labelnames=["project", "endpoint", "model_version"],
            buckets=LATENCY_BUCKETS,
        )
        self._scores = m.Histogram(
            name="modelops_score",
            documentation="Scores returned, by model version.",
            labelnames=["project", "model_version"],
            buckets=SCORE_BUCKETS,
        )
        self._decisions = m.Counter(
            name="modelops_decisions_total",
            documentation="Decisions returned, by model version and action.",
            labelnames=["project", "model_version", "decision"],
        )
        self._missing = m.Counter(
            name="modelops_missing_features_total",
            documentation="Entities without online features, by the policy applied "
            "(error: answered 404; fallback: answered with the fallback decision).",
            labelnames=["project", "model_version", "policy"],
        )
        self._log = m.Counter(
            name="modelops_prediction_log_rows_total",
            documentation="Prediction log rows: written, dropped (queue full) or failed (sink).",
            labelnames=["project", "outcome"],
        )
        self._info = m.Gauge(
            name="modelops_model_info",
            documentation="1 for the model version being served (with its artifact hash, shadow "
            "version and environment), 0 for a version swapped out.",
            labelnames=["project", "model_version", "artifact_sha256", "shadow", "environment"],
            multiprocess_mode="livemax",
        )
        self._reloads = m.Counter(
            name="modelops_reloads_total",
            documentation="Reloads of a newer release: swapped, or refused (kept serving).",
            labelnames=["project", "outcome"],
        )
        self._unmatched = m.Counter(
            name="modelops_unmatched_requests_total",
            documentation="Requests for a path no route serves (answered 404 before BentoML "
            "sees them): one series, whatever the paths.",
            labelnames=["project"],
        )
        self._current: tuple[str, str, str] | None = None

    def request(self, endpoint: str, version: str, outcome: str, seconds: float) -> None:
        self._requests.labels(self._project, endpoint, version, outcome).inc()
        self._latency.labels(self._project, endpoint, version).observe(seconds)

    def rejected(self, endpoint: str, version: str) -> None:
        """A request refused before it reached the model (not timed)."""
        self._requests.labels(self._project, endpoint, version, "bad_request").inc()

    def scores(self, version: str, scores: list[float], decisions: list[str]) -> None:
        histogram = self._scores.labels(self._project, version)
        for score in scores:
            histogram.observe(score)
        counts: dict[str, int] = {}
        for decision in decisions:
            counts[decision] = counts.get(decision, 0) + 1
        for decision, count in counts.items():
            self._decisions.labels(self._project, version, decision).inc(count)

    def missing(self, version: str, policy: str, count: int) -> None:
        self._missing.labels(self._project, version, policy).inc(count)

    def log_rows(self, outcome: str, count: int) -> None:
        self._log.labels(self._project, outcome).inc(count)

    def model(self, version: str, sha256: str, shadow: str | None) -> None:
        if self._current is not None:
            self._info.labels(self._project, *self._current, self._environment).set(0)
        self._current = (version, sha256, shadow or "")
        self._info.labels(self._project, *self._current, self._environment).set(1)

    def reload(self, outcome: str) -> None:
        self._reloads.labels(self._project, outcome).inc()

    def unmatched(self) -> None:
        self._unmatched.labels(self._project).inc()
