"""What to do with versions a ``train`` left half-registered.

A train registers its baseline, then its candidate, then closes the pair with cross tags. Each
version is created carrying a *registration marker* (which train, since when) that the train
removes once the pair is closed. A marker still present after the grace period means the train
died mid-registration, on whatever host it ran: the pair is completed when both versions exist,
and a version without its partner is deleted. Pure logic: the MLflow adapter reads the versions
and carries out the plan.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelops.core import tags as tag_keys

GRACE = timedelta(hours=1)
"""How long a registration may stay open before a later train or ``models sync`` closes it.

Registering a pair takes seconds (hashing two artifacts); an hour leaves a slow artifact store
and a concurrent train on another machine alone.
"""


@dataclass(frozen=True)
class Marker:
    """``modelops.registration_pending``: the train that is registering a version."""

    train_id: str
    started: datetime

    def text(self) -> str:
        return json.dumps(
            {"train": self.train_id, "started": self.started.astimezone(UTC).isoformat()},
            sort_keys=True,
        )


def read_marker(text: str) -> Marker:
    """The marker written by :meth:`Marker.text`.

    Raises:
        ValueError: not a marker (edited by hand, or written by something else).
    """
    try:
        data = json.loads(text)
        started = datetime.fromisoformat(str(data["started"]))
        train_id = str(data["train"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"unreadable registration marker {text[:80]!r}") from exc
    if started.tzinfo is None or not train_id:
        raise ValueError(f"unreadable registration marker {text[:80]!r}")
    return Marker(train_id, started)


@dataclass(frozen=True)
class Registered:
    """One registered version as the plan needs it."""

    version: str
    tags: Mapping[str, str]
    aliases: tuple[str, ...] = ()


@dataclass
class Plan:
    """What to do: ``pair`` is ``(baseline, candidate)``; ``clear`` lists versions whose marker
    is removed; ``notes`` are versions left alone, each with its reason in one line."""

    delete: list[str] = field(default_factory=list)
    pair: list[tuple[str, str]] = field(default_factory=list)
    clear: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan(
    versions: Iterable[Registered],
    now: datetime,
    grace: timedelta = GRACE,
    gone: Collection[str] = (),
) -> Plan:
    """Close every registration whose marker is older than ``grace``, or whose train is known
    to be ``gone`` (version numbers whose process the caller saw dead).

    Versions are grouped by the train that marked them. A group holding the baseline and its
    candidate is completed (cross tag, markers removed); any other group never finished and
    its versions are deleted, except a version that carries an alias, which is reported and
    kept. An unreadable marker is reported and its version kept: deleting needs evidence.
    """
    result = Plan()
    trains: dict[str, list[Registered]] = {}
    closing: set[str] = set()
    for version in versions:
        text = version.tags.get(tag_keys.REGISTRATION_PENDING)
        if text is None:
            continue
        try:
            marker = read_marker(text)
        except ValueError as exc:
            result.notes.append(f"v{version.version}: {exc}; left alone")
            continue
        trains.setdefault(marker.train_id, []).append(version)
        if now - marker.started >= grace or version.version in gone:
            closing.add(marker.train_id)
    for train_id in sorted(closing):
        _close(trains[train_id], result)
    return result


def _close(group: list[Registered], result: Plan) -> None:
    by_role = {v.tags.get(tag_keys.ROLE): v for v in group}
    baseline, candidate = by_role.get("baseline"), by_role.get("candidate")
    if (
        baseline is not None
        and candidate is not None
        and candidate.tags.get(tag_keys.BASELINE_VERSION) == baseline.version
        and len(group) == 2
    ):
        if baseline.tags.get(tag_keys.CANDIDATE_VERSION) != candidate.version:
            result.pair.append((baseline.version, candidate.version))
        result.clear.extend([baseline.version, candidate.version])
        return
    for version in sorted(group, key=lambda v: int(v.version)):
        if version.aliases:
            result.notes.append(
                f"v{version.version}: registration never completed but alias "
                f"{', '.join(version.aliases)} points at it; left alone"
            )
        else:
            result.delete.append(version.version)
