"""Who holds each environment, derived from the promote and rollback entries.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from modelops.core.ledger.records import TRANSITIONS, Holder, RecordedEntry


class _Transition(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def from_version(self) -> str | None: ...
    @property
    def to_version(self) -> str | None: ...


def shown(version: str | None) -> str:
    if version is None:
        return "(nobody)"
    return version if version.startswith("v") else f"v{version}"


class HolderReplay:
    """Who holds each (project, environment) after the transitions fed so far, in seq order.

    A holder's revision is the number of transitions of its environment, exactly as the holder
    table counts them. A transition whose ``from_version`` is not the holder at that point is a
    problem (the ledger's compare-and-swap never writes one).
    """

    def __init__(self) -> None:
        self.holders: dict[tuple[str, str], Holder] = {}
        self.problems: list[str] = []

    def feed(self, entry: _Transition) -> None:
        if entry.action not in TRANSITIONS:
            return
        pair = (entry.project, entry.environment)
        before = self.holders.get(pair, Holder(None, 0))
        if entry.from_version != before.version:
            self.problems.append(
                f"entry {entry.seq}: {entry.action} of {pair[0]}/{pair[1]} from "
                f"{shown(entry.from_version)}, but the ledger's holder was {shown(before.version)}"
            )
        self.holders[pair] = Holder(entry.to_version, before.revision + 1)


def replay_holders(entries: Iterable[_Transition]) -> dict[tuple[str, str], Holder]:
    """The holder of every (project, environment) that ever had a transition."""
    replay = HolderReplay()
    for entry in entries:
        replay.feed(entry)
    return replay.holders


def compare_holders(
    table: Mapping[tuple[str, str], Holder], replayed: Mapping[tuple[str, str], Holder]
) -> list[str]:
    """One problem per (project, environment) where the holder table and the ledger differ."""
    problems = []
    for pair in sorted(set(table) | set(replayed)):
        stored, derived = table.get(pair, Holder(None, 0)), replayed.get(pair, Holder(None, 0))
        if stored != derived:
            problems.append(
                f"holder of {pair[0]}/{pair[1]}: modelops_environment says "
                f"{shown(stored.version)} (revision {stored.revision}), the ledger says "
                f"{shown(derived.version)} (revision {derived.revision}) (edited?)"
            )
    return problems


def holder_at(transitions: Iterable[RecordedEntry], at: datetime) -> str | None:
    """The version that held an environment at ``at`` (inclusive), None if nobody.

    ``transitions``: the environment's promote and rollback entries in seq order (iterated only
    after ``at`` is checked); an entry recorded exactly at ``at`` counts.

    Raises:
        ValueError: ``at`` is naive.
    """
    if at.tzinfo is None:
        raise ValueError("holder_at() needs a timezone-aware datetime")
    held: str | None = None
    for entry in transitions:
        if entry.at > at:
            break
        held = entry.to_version
    return held


def past_holders(transitions: Iterable[RecordedEntry]) -> list[str]:
    """Distinct versions the ``transitions`` (seq order) moved in, most recent first."""
    seen: list[str] = []
    for entry in reversed(list(transitions)):
        if entry.to_version is not None and entry.to_version not in seen:
            seen.append(entry.to_version)
    return seen
