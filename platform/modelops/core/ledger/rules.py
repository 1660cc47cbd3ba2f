"""The ledger's rules for moving a holder: what a transition must satisfy, and its refusals.

The database adapter stores and fetches; these decide what may be written and how a refusal is
worded. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelops.core.ledger.holders import shown
from modelops.core.ledger.records import TRANSITIONS, Holder, HolderChangedError, LedgerEntry


def check_append(entry: LedgerEntry) -> None:
    """Raise unless ``entry`` may be appended on its own (it moves no holder).

    Raises:
        ValueError: ``entry`` is a promote or rollback.
    """
    if entry.action in TRANSITIONS:
        raise ValueError(
            f"{entry.action} changes who holds the environment; record it with transition()"
        )


def check_transition(
    entry: LedgerEntry, expected: Holder, preceding: Sequence[LedgerEntry] = ()
) -> None:
    """Raise unless ``entry`` may move its environment from ``expected`` after ``preceding``.

    Raises:
        ValueError: ``entry`` is not a promote or rollback, has no ``to_version``, or its
            ``from_version`` differs from ``expected.version``; or one of ``preceding`` is a
            promote or rollback.
    """
    if entry.action not in TRANSITIONS:
        raise ValueError(f"transition() records {TRANSITIONS}, not {entry.action!r}")
    if not entry.to_version:
        raise ValueError(f"{entry.action} of {entry.project}/{entry.environment}: no to_version")
    if entry.from_version != expected.version:
        raise ValueError(
            f"{entry.action} of {entry.project}/{entry.environment}: from_version "
            f"{entry.from_version!r} differs from the expected holder {expected.version!r}"
        )
    for before in preceding:
        if before.action in TRANSITIONS:
            raise ValueError(
                f"transition(): a preceding {before.action} would move a holder without "
                "its compare-and-swap"
            )


def holder_changed(entry: LedgerEntry, expected: Holder, current: Holder) -> HolderChangedError:
    """The error of a transition that lost its compare-and-swap to ``current``."""
    return HolderChangedError(
        f"{entry.project}/{entry.environment} changed: {shown(expected.version)} is now "
        f"held by {shown(current.version)} (revision {current.revision}); validate against "
        "the new holder and retry",
        expected=expected,
        current=current,
    )


def lost_race_refusal(
    entry: LedgerEntry,
    expected: Holder,
    preceding: Sequence[LedgerEntry],
    current: Holder,
) -> LedgerEntry:
    """The refuse entry recorded for a transition that lost its race to ``current``.

    ``preceding`` (e.g. the approval) were rolled back with the lost transition; the refusal
    lists them as withdrawn.
    """
    return LedgerEntry(
        action="refuse",
        project=entry.project,
        environment=entry.environment,
        actor=entry.actor,
        reason=(
            f"{entry.action} of {shown(entry.to_version)} lost a race: "
            f"{entry.environment} is now held by {shown(current.version)} "
            f"(revision {current.revision}), not {shown(expected.version)} "
            f"(revision {expected.revision})"
        ),
        from_version=current.version,
        to_version=entry.to_version,
        verdict_id=entry.verdict_id,
        details={
            "lost_race": True,
            "attempted": entry.action,
            "expected": {
                "version": expected.version,
                "revision": expected.revision,
            },
            "current": {
                "version": current.version,
                "revision": current.revision,
            },
            "withdrawn": [
                {"action": e.action, "actor": e.actor, "reason": e.reason} for e in preceding
            ],
        },
    )
