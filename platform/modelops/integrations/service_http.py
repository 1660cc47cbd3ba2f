"""A running prediction service over HTTP (httpx): JSON requests, readiness, ``/metrics``.

Only HTTP mechanics live here; what to send and what an answer means is decided by the callers
(:mod:`modelops.services.simulate`, :mod:`modelops.services.traffic`). One
:class:`ServiceClient` holds one connection pool for a run, with explicit timeouts; a service
that does not answer becomes one :class:`ServiceUnreachableError` line naming the URL.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    import httpx

READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
MODEL_INFO = "modelops_model_info"
"""The gauge a service sets to 1 for the version it serves (``modelops.serving.metrics``)."""


class ServiceUnreachableError(ModelopsError):
    """The service did not answer: refused, timed out, or answered with a body that is not
    JSON. ``reason`` names the kind of failure (the transport error's class, ``invalid JSON``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServiceClient:
    """Requests to the service at ``base_url``; ``timeout`` seconds for each (connect, read,
    write and pool alike). Use it as a context manager, or :meth:`close` it."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        import httpx

        try:
            return self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnreachableError(
                f"{self.base_url}{path}: {str(exc) or type(exc).__name__}", type(exc).__name__
            ) from exc

    def post_json(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """POST ``body`` as JSON; the status and the JSON object answered (``{}`` when the answer
        is empty or not an object, or an error answer is not JSON).

        Raises:
            ServiceUnreachableError: no answer, or a success whose body is not JSON.
        """
        response = self._send("POST", path, body)
        try:
            payload = response.json() if response.content else {}
        except ValueError as exc:
            if response.is_error:
                return response.status_code, {}
            raise ServiceUnreachableError(
                f"{self.base_url}{path}: HTTP {response.status_code} with a body that is not "
                f"JSON ({exc})",
                "invalid JSON",
            ) from exc
        return response.status_code, payload if isinstance(payload, dict) else {}

    def status(self, path: str) -> int:
        """The status ``GET path`` answers (raises :class:`ServiceUnreachableError` without one)."""
        return self._send("GET", path).status_code

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (False when the service does not answer)."""
        try:
            return self.status(READY_PATH) == 200
        except ServiceUnreachableError:
            return False

    def metric_samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The samples of ``name`` on ``/metrics`` (labels, value), parsed with
        prometheus_client; empty when the service does not answer or the text is unreadable."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            response = self._send("GET", METRICS_PATH)
        except ServiceUnreachableError:
            return []
        if response.status_code != 200:
            return []
        try:
            return [
                (dict(sample.labels), float(sample.value))
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
                if sample.name == name
            ]
        except ValueError:
            return []

    def served_version(self) -> str | None:
        """The version the service reports serving (``modelops_model_info`` = 1 on
        ``/metrics``), None when it does not answer or is not ready (``/readyz``)."""
        if not self.ready():
            return None
        for labels, value in self.metric_samples(MODEL_INFO):
            if value >= 1 and "model_version" in labels:
                return labels["model_version"]
        return None
