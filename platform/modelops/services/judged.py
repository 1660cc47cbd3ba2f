"""What a decision about an environment is judged on, read once and consistently.

An automatic move (the monitor's rollback, its retraining's promotion, a promotion a verdict's
policy makes) is a compare-and-swap on this: the decision captures a :class:`Snapshot` when it
judges, and the move passes its :class:`~modelops.core.promotion.Expectation` to
:func:`modelops.services.promote.promote` or :func:`~modelops.services.promote.rollback`, which
refuse it (and record the refusal) when the environment has moved since. The rule and its
wording are :func:`modelops.core.promotion.judgement_changed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelops.core import promotion as rules
from modelops.core.errors import ModelopsError
from modelops.core.ledger import TRANSITIONS, past_holders
from modelops.integrations.database import (
    Holder,
    HolderChangedError,
    Ledger,
    LedgerEntry,
    RecordedEntry,
)

_ATTEMPTS = 5


class PromotionRefusedError(ModelopsError):
    """The promotion or rollback broke a rule; recorded in the ledger as a refusal."""


@dataclass(frozen=True)
class Snapshot:
    """An environment's holder (with its revision) and every move that put holders there.

    Consistent: the holder is the last move's version and its revision counts the moves, so
    ``holder`` is the compare-and-swap's expected value for exactly this history.
    """

    environment: str
    holder: Holder
    moves: tuple[RecordedEntry, ...]

    @property
    def last_move(self) -> RecordedEntry | None:
        return self.moves[-1] if self.moves else None

    @property
    def head(self) -> str:
        last = self.last_move
        return rules.move_head(last.seq, last.hash) if last else rules.NO_MOVE_HEAD

    @property
    def expectation(self) -> rules.Expectation:
        return rules.Expectation(self.holder.version, self.head)

    @property
    def earlier_holders(self) -> list[str]:
        """Versions that held the environment before its holder, most recent first: where a
        rollback decided on this snapshot returns to."""
        return [v for v in past_holders(self.moves) if v != self.holder.version]


def snapshot(ledger: Ledger, project: str, environment: str) -> Snapshot:
    """The holder and the moves of (project, environment), consistent with each other.

    Raises:
        ModelopsError: the holder table and the ledger's moves disagree (an out-of-band edit),
            or they kept changing while being read.
    """
    for attempt in range(_ATTEMPTS):
        holder = ledger.holder(project, environment)
        moves = tuple(e for e in ledger.entries(project, environment) if e.action in TRANSITIONS)
        last = moves[-1].to_version if moves else None
        if len(moves) == holder.revision and last == holder.version:
            return Snapshot(environment, holder, moves)
        if len(moves) > holder.revision and attempt + 1 < _ATTEMPTS:
            continue  # a move landed between the two reads: read again
        break
    raise ModelopsError(
        f"{project} {environment}: the holder table says "
        f"{'v' + holder.version if holder.version else 'nothing'} (revision {holder.revision}) "
        f"but the ledger records {len(moves)} move(s) ending at {'v' + last if last else 'nothing'}"
        "; nothing is decided on it: run 'modelops history --verify'"
    )


def before_entry(ledger: Ledger, project: str, environment: str, seq: int) -> rules.Expectation:
    """The holder and move head of (project, environment) just before ledger entry ``seq``
    (e.g. the verdict a promotion policy acts on)."""
    moves = [
        e for e in ledger.entries(project, environment) if e.action in TRANSITIONS and e.seq < seq
    ]
    if not moves:
        return rules.Expectation(None, rules.NO_MOVE_HEAD)
    return rules.Expectation(moves[-1].to_version, rules.move_head(moves[-1].seq, moves[-1].hash))


def verdict_judged(
    ledger: Ledger, project: str, verdict_id: str, environment: str
) -> rules.Expectation:
    """What verdict ``verdict_id`` was judged on: the holder it compared with, at the move head
    its ledger entry follows. A move made from the verdict is refused once the environment
    moved since.

    Raises:
        PromotionRefusedError: the verdict is not in the ledger (nothing to act on).
    """
    recorded = [
        e
        for e in ledger.entries(project, environment)
        if e.action == "validate" and e.verdict_id == verdict_id
    ]
    if not recorded:
        raise PromotionRefusedError(
            f"verdict {verdict_id} is not recorded in the ledger; no move is made from it"
        )
    entry = recorded[-1]
    return rules.Expectation(
        entry.from_version, before_entry(ledger, project, environment, entry.seq).head
    )


# --- moves decided on a judged state ----------------------------------------------------------


def refuse(
    ledger: Ledger,
    project: str,
    environment: str,
    actor: str,
    version: str | None,
    holder: Holder,
    reason: str,
    *,
    attempted: str = "promote",
    details: dict[str, Any] | None = None,
) -> PromotionRefusedError:
    """Record the refusal of a promotion (or rollback) of ``version``; the error to raise."""
    ledger.append(
        LedgerEntry(
            action="refuse",
            project=project,
            environment=environment,
            actor=actor,
            reason=reason,
            from_version=holder.version,
            to_version=version,
            details=dict(details or {}),
        )
    )
    if attempted == "rollback":
        to = f" to v{version}" if version else ""
        return PromotionRefusedError(f"rollback of {environment}{to} refused: {reason}")
    return PromotionRefusedError(f"promotion of v{version} to {environment} refused: {reason}")


def _judgement_refused(
    ledger: Ledger,
    entry: LedgerEntry,
    now: Snapshot,
    expect: rules.Expectation,
    reason: str,
) -> PromotionRefusedError:
    details = {
        "attempted": entry.action,
        "judged": {"holder": expect.holder, "head": expect.head},
        "current": {"holder": now.holder.version, "head": now.head},
    }
    return refuse(
        ledger,
        entry.project,
        entry.environment,
        entry.actor,
        entry.to_version,
        now.holder,
        reason,
        attempted=entry.action,
        details=details,
    )


def holder_for_move(
    ledger: Ledger,
    project: str,
    environment: str,
    actor: str,
    version: str | None,
    expect: rules.Expectation | None,
    *,
    attempted: str = "promote",
) -> tuple[Holder, Snapshot | None]:
    """The holder a move starts from: read now, or, for a move decided on ``expect``, the
    environment's state now (with its moves) if it is still the judged one.

    Raises:
        PromotionRefusedError: the environment moved since ``expect`` (the refusal, naming both
            states, is recorded first).
    """
    if expect is None:
        return ledger.holder(project, environment), None
    now = snapshot(ledger, project, environment)
    changed = rules.judgement_changed(environment, expect, now.expectation)
    if changed is not None:
        attempt = LedgerEntry(attempted, project, environment, actor, to_version=version)
        raise _judgement_refused(ledger, attempt, now, expect, changed)
    return now.holder, now


def swap(
    ledger: Ledger,
    entry: LedgerEntry,
    holder: Holder,
    expect: rules.Expectation | None,
    preceding: Sequence[LedgerEntry] = (),
) -> RecordedEntry:
    """The ledger's compare-and-swap of ``entry`` from ``holder`` (with ``preceding``, e.g. the
    approval, in the same transaction). A move decided on ``expect`` that loses the race is
    refused naming the judged and the current state; any other lost race gets the ledger's own
    refusal."""
    if expect is None:
        return ledger.transition(
            entry, expected=holder, preceding=preceding, refuse_on_conflict=True
        )
    try:
        return ledger.transition(entry, expected=holder, preceding=preceding)
    except HolderChangedError:
        now = snapshot(ledger, entry.project, entry.environment)
        reason = rules.judgement_changed(entry.environment, expect, now.expectation)
        raise _judgement_refused(
            ledger,
            entry,
            now,
            expect,
            reason or f"{entry.environment} moved while the {entry.action} was written",
        ) from None
