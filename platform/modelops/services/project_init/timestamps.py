"""When each prediction is made and when its label becomes known, in UTC microseconds.

Microseconds are the precision Feast's DuckDB offline store joins exactly: event times are
floored, label availability times are ceiled (a label is never known earlier than the data
says), and the notes say how many values that changed. Times without a zone are read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.errors import DataError
from modelops.services.project_init.columns import Roles, to_numpy
from modelops.services.project_init.options import InitOptions, describe_delay

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

US_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class Times:
    event_us: np.ndarray  # when each prediction is made
    known_us: np.ndarray  # when its label becomes known
    delay_text: str  # how the label's availability was found, for project.yaml and the CLI


def read_times(
    table: pa.Table, roles: Roles, options: InitOptions, source: Path, notes: list[str]
) -> Times:
    """Event and label times of every row, from the columns or the options.

    Raises:
        DataError: a time column that cannot be read, or a label known before its prediction.
    """
    if roles.timestamp is not None:
        event_us, floored = floor_us(_times_ns(table, roles.timestamp, "--timestamp", source))
        if floored:
            notes.append(
                f"'{roles.timestamp}': {floored:,} time(s) had parts below a microsecond, "
                "floored (Feast's DuckDB store joins microseconds)"
            )
    else:
        assert options.synthesize_time is not None
        event_us = synthetic_times_us(table.num_rows, *options.synthesize_time)
    if roles.available_at is None:
        assert options.label_delay is not None
        delay = options.label_delay
        delay_us = delay.days * US_PER_DAY + delay.seconds * 1_000_000 + delay.microseconds
        text = f"event time + {describe_delay(delay)} (--label-delay)"
        return Times(event_us, event_us + delay_us, text)
    return Times(
        event_us,
        _available_us(table, roles.available_at, event_us, source, notes),
        f"from '{roles.available_at}'",
    )


def _available_us(
    table: pa.Table, column: str, event_us: np.ndarray, source: Path, notes: list[str]
) -> np.ndarray:
    import numpy as np

    known_us, ceiled = ceil_us(_times_ns(table, column, "--available-at", source))
    if ceiled:
        notes.append(
            f"'{column}': {ceiled:,} time(s) had parts below a microsecond, "
            "rounded up (a label is never known earlier than the data says)"
        )
    early = known_us < event_us
    if early.any():
        first = int(np.argmax(early))
        raise DataError(
            f"{source}: --available-at '{column}': {int(early.sum()):,} label(s) "
            f"become known before their prediction time (e.g. row {first + 1}); a label is "
            "learnt after the prediction"
        )
    return known_us


def floor_us(ns: np.ndarray) -> tuple[np.ndarray, int]:
    """Nanoseconds floored to microseconds, and how many values had a remainder."""
    import numpy as np

    remainder = np.mod(ns, 1000)
    return (ns - remainder) // 1000, int(np.count_nonzero(remainder))


def ceil_us(ns: np.ndarray) -> tuple[np.ndarray, int]:
    """Nanoseconds rounded up to microseconds, and how many values had a remainder."""
    import numpy as np

    remainder = np.mod(ns, 1000)
    return (ns - remainder) // 1000 + (remainder != 0), int(np.count_nonzero(remainder))


def _times_ns(table: pa.Table, column: str, option: str, source: Path) -> np.ndarray:
    """A column of times as int64 nanoseconds since the epoch, UTC (times without a zone are
    read as UTC).

    Raises:
        DataError: missing values, numbers, or text that is not a time (one example shown).
    """
    import pyarrow as pa

    values = table.column(column)
    where = f"{option} '{column}'"
    if values.null_count:
        raise DataError(f"{source}: {where}: {values.null_count} row(s) have no time")
    kind = values.type
    if not (
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    ):
        raise DataError(f"{source}: {where} holds {kind} values, not times")
    if pa.types.is_timestamp(kind):  # stored as UTC; a time without a zone is read as UTC
        factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[kind.unit]
        ticks = to_numpy(values.cast(pa.int64()))
        return ticks * factor
    if pa.types.is_date32(kind):
        days = to_numpy(values.cast(pa.int32())).astype("int64")
        return days * (US_PER_DAY * 1000)
    if pa.types.is_date64(kind):
        millis = to_numpy(values.cast(pa.int64()))
        return millis * 10**6
    return _parse_ns(values, where, source)


def _parse_ns(values: pa.ChunkedArray, where: str, source: Path) -> np.ndarray:
    """Text as times: ISO 8601 first, then whatever pandas can read."""
    import pandas as pd

    series = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
    try:
        parsed = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        try:
            parsed = pd.to_datetime(series, utc=True, format="mixed")
        except (ValueError, TypeError, OverflowError) as exc:
            bad = next(
                (v for v in series.head(10_000) if pd.isna(pd.to_datetime(v, errors="coerce"))),
                series.iloc[0],
            )
            raise DataError(f"{source}: {where}: cannot read {bad!r} as a time") from exc
    result: np.ndarray = parsed.dt.as_unit("ns").astype("int64").to_numpy()
    return result


def synthetic_times_us(rows: int, start: datetime, end: datetime) -> np.ndarray:
    """``rows`` times spread evenly from ``start`` to ``end`` (both included), in row order."""
    import numpy as np

    start_us = epoch_us(start)
    span = epoch_us(end) - start_us
    steps = max(rows - 1, 1)
    index = np.arange(rows, dtype=np.int64)
    quotient, remainder = divmod(span, steps)
    result: np.ndarray = start_us + index * quotient + (index * remainder) // steps
    return result


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch; a time without a zone is UTC."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def day(us: int) -> date:
    """The UTC day of a time in microseconds since the epoch."""
    return date(1970, 1, 1) + timedelta(days=us // US_PER_DAY)
