"""The ledger's records and errors: what a caller asks to record, what was recorded, holders.

Pure data, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from modelops.core.errors import (
    ConcurrentChangeError,
    ConfigError,
    ModelopsError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    from modelops.core.ledger.checkpoint import Checkpoint

ACTIONS = (
    "validate",
    "promote",
    "approve",
    "refuse",
    "rollback",
    "retrain",
    "propose",
    "alert",
    "package",
    "image",
)
"""Every kind of entry: the gate, moves and approvals, what the monitor decided, the signed
release record of each package (details: :class:`modelops.core.release_record.ReleaseRecord`)
and the pushed image of a release (details: :class:`modelops.core.image_record.ImageRecord`)."""
TRANSITIONS = ("promote", "rollback")
GENESIS_HASH = "0" * 64


# ----------------------------------------------------------------------------- errors


class LedgerKeyError(ConfigError):
    """The configured ledger key does not fit the chain: missing, wrong, or not switched to."""


class LedgerIntegrityError(ModelopsError):
    """The stored ledger is damaged in a way that blocks the operation (e.g. no head row)."""

    exit_code = 1


class LedgerLockedError(ServiceUnavailableError):
    """Another writer held the ledger's lock longer than the configured lock timeout."""


class HolderChangedError(ConcurrentChangeError):
    """A transition lost its compare-and-swap: ``current`` holds the environment now.

    ``refusal`` is the refuse entry recorded for the loser, when the caller asked for one.
    """

    def __init__(
        self,
        message: str,
        *,
        expected: Holder,
        current: Holder,
        refusal: RecordedEntry | None = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.current = current
        self.refusal = refusal

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes despite keywords
        return (_holder_changed, (str(self), self.expected, self.current, self.refusal))


def _holder_changed(
    message: str, expected: Holder, current: Holder, refusal: RecordedEntry | None
) -> HolderChangedError:
    return HolderChangedError(message, expected=expected, current=current, refusal=refusal)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class LedgerEntry:
    """What a caller wants recorded.

    Raises:
        ValueError: ``action`` is not one of :data:`ACTIONS`, or ``details`` is not a JSON object.
    """

    action: str
    project: str
    environment: str
    actor: str
    reason: str = ""
    from_version: str | None = None
    to_version: str | None = None
    verdict_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown ledger action {self.action!r}; expected one of {ACTIONS}")
        if not isinstance(self.details, dict):
            raise ValueError(f"ledger details must be a dict, got {type(self.details).__name__}")
        try:
            canonical(self.details)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ledger details are not JSON-serialisable: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class RecordedEntry(LedgerEntry):
    """An entry as the ledger stored it."""

    seq: int
    at: datetime
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Holder:
    """Which version serves an environment; ``version`` None and ``revision`` 0 when never set."""

    version: str | None
    revision: int


@dataclass(frozen=True)
class Verification:
    """The result of a verification: one readable line per problem, naming the seq.

    ``anchor`` is ``"<seq>:<hash>"`` of the last entry checked: keep it somewhere the database's
    writers cannot reach and pass it to the next verify to detect truncation or a rewrite.
    ``keyed_from`` is the first HMAC-keyed seq (None: the chain is plain SHA-256).
    ``checkpoint`` (when ``ok``) is where the next verification may start from.
    """

    ok: bool
    checked: int
    problems: list[str]
    anchor: str = ""
    keyed_from: int | None = None
    checkpoint: Checkpoint | None = field(default=None, compare=False, repr=False)


class ChainRow(NamedTuple):
    """One stored row as the verifier reads it: ``at`` as canonical text, ``details`` as stored."""

    seq: int
    at: str
    action: str
    project: str
    environment: str
    actor: str
    reason: str
    from_version: str | None
    to_version: str | None
    verdict_id: str | None
    details: str
    prev_hash: str
    hash: str


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 as is, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
