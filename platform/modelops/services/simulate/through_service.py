"""Traffic through a running service: ``POST /predict_batch`` in time order, and the labels
stamped with the time the service answered (the time its log holds)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.integrations.service_http import ServiceClient, ServiceUnreachableError
from modelops.services.simulate.errors import SimulationError
from modelops.services.simulate.period import plain

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Answers:
    """What the service answered to a run's batches."""

    answered: int = 0
    fallbacks: int = 0
    refused: int = 0
    answered_at: list[datetime] = field(default_factory=list)
    """When each event was answered, in the events' order."""
    versions: set[str] = field(default_factory=set)
    """The versions that answered."""


def _batches(entities: Sequence[Any], limit: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` of consecutive batches of at most ``limit`` rows, each entity at most once
    (the monitor joins a label to the nearest logged time of its entity)."""
    lo = 0
    seen: set[Any] = set()
    for i, key in enumerate(entities):
        if i - lo >= limit or key in seen:
            yield lo, i
            lo, seen = i, set()
        seen.add(key)
    if lo < len(entities):
        yield lo, len(entities)


def _post(client: ServiceClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    try:
        return client.post_json(path, body)
    except ServiceUnreachableError as exc:
        raise SimulationError(f"--through-service {exc}") from exc


def through_service(
    url: str,
    project: Project,
    events: pa.Table,
    request_names: list[str],
    run_tag: str,
    timeout: float,
) -> Answers:
    """POST the events in batches of at most ``serving.max_batch``, each entity once a batch.

    Raises:
        SimulationError: the service does not answer, or answers with an error other than
            404 (no online features) or 503 (a dependency down), which count as refused.
    """
    spec = project.spec
    path = "/predict_batch"
    entities = plain(events[spec.entity].to_pylist())
    columns = {n: plain(events[n].to_pylist()) for n in request_names}
    out = Answers()
    with ServiceClient(url, timeout=timeout) as client:
        for number, (lo, hi) in enumerate(_batches(entities, spec.serving.max_batch)):
            items = [
                {spec.entity: entities[i], **{n: columns[n][i] for n in request_names}}
                for i in range(lo, hi)
            ]
            body = {"request_id": f"{run_tag}-b{number}", "entities": items}
            status, answer = _post(client, path, body)
            out.answered_at.extend([datetime.now(UTC)] * (hi - lo))
            if status == 200:
                predictions = answer.get("predictions") or []
                out.answered += len(predictions)
                out.fallbacks += sum(1 for p in predictions if p.get("fallback"))
                if answer.get("model_version"):
                    out.versions.add(str(answer["model_version"]))
                continue
            if status in (404, 503):  # no online features (policy 'error'), or a dependency down
                out.refused += hi - lo
                continue
            raise SimulationError(
                f"--through-service {client.base_url}{path}: HTTP {status}: "
                f"{answer.get('error') or answer}"
            )
    return out


def restamp(events: pa.Table, project: Project, answered_at: list[datetime]) -> pa.Table:
    """Labels at the time the service answered, each keeping its generated delay."""
    import pyarrow as pa
    import pyarrow.compute as pc

    label = project.spec.label
    stamp = events[label.timestamp]
    new = pa.array(answered_at, type=stamp.type)
    out = events.set_column(events.column_names.index(label.timestamp), label.timestamp, new)
    if label.available_at and label.available_at in events.column_names:
        delay = pc.subtract(events[label.available_at], stamp)
        known = pc.add(new, delay)
        index = out.column_names.index(label.available_at)
        out = out.set_column(index, label.available_at, known.cast(stamp.type))
    return out


def service_version(url: str, timeout: float = 2.0) -> str | None:
    """The version the service at ``url`` reports serving (``modelops_model_info`` = 1 on
    ``/metrics``), None when it does not answer or is not ready (``/readyz``)."""
    with ServiceClient(url, timeout=timeout) as client:
        return client.served_version()
