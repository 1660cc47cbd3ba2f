"""A small toolkit for a project's ``data.py``: seeded example tables with drift scenarios.

A project's ``data.py`` (the :class:`~modelops.core.plugins.DataModule` interface) simulates its
source and label tables; this module gives it what every generator needs:

* **arguments and scenarios**: :func:`generate` fills in the project's defaults, validates every
  argument (:class:`~modelops.core.errors.DataError` naming the option and its value), resolves
  ``drift_start`` and hands the generator a :class:`Window`;
* **windows**: :class:`Window` measures the event window in seconds from its first day;
* **randomness**: :func:`rng` gives an independent, reproducible stream per ``(seed, *stream)``;
* **columns**: :func:`categorical`, :func:`timestamp_type` and :func:`chunk_bounds` shape the
  chunks a generator writes with :func:`modelops.integrations.parquet.atomic_tables` (chunked
  parquet writing, outside this pure module).

Scenarios inject drift from ``drift_start`` (00:00 UTC; default: the first day of the last third
of the window, :func:`default_drift_start`). Events before it must be exactly those of the
healthy scenario with the same seed:

* ``healthy``: no drift.
* ``covariate-drift``: inputs shift; the way labels follow from inputs does not change.
* ``concept-drift``: inputs stay put; the way labels follow from them changes.

Nothing here does I/O, and numpy / pyarrow are imported inside the functions that need them.
The only files written are those a generator writes (through
:mod:`modelops.integrations.parquet`), inside the folder the platform passes to :func:`generate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from modelops.core.plugins import DataModule

SCENARIOS = ("healthy", "covariate-drift", "concept-drift")
MIN_ROWS = 100

SECOND_US = 1_000_000
DAY_S = 86_400
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class GeneratedTable:
    """One parquet file written by a generator; ``start``/``end`` bound its event_timestamp."""

    name: str
    path: Path
    rows: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class GenerationSummary:
    """What one :func:`generate` call wrote.

    ``drift_start`` is the day (00:00 UTC) from which the scenario's drift applies: events at or
    after it are drifted, earlier ones are exactly those of the healthy scenario with the same
    seed. It is ``None`` for the healthy scenario.
    """

    project: str
    scenario: str
    seed: int
    tables: tuple[GeneratedTable, ...]
    positive_rate: float
    drift_start: date | None = None


@dataclass(frozen=True)
class Window:
    """Event window ``[start 00:00:00, end 23:59:59]`` UTC, measured in seconds from its start."""

    start: date
    end: date
    drift_start: date | None

    @property
    def origin_us(self) -> int:
        """``start`` 00:00 UTC in microseconds since the epoch."""
        return (self.start - EPOCH).days * DAY_S * SECOND_US

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def last_second(self) -> int:
        return self.days * DAY_S - 1

    @property
    def drift_second(self) -> int | None:
        """First drifted second, or ``None`` when nothing drifts."""
        if self.drift_start is None:
            return None
        return (self.drift_start - self.start).days * DAY_S


def default_drift_start(start: date, end: date) -> date:
    """The first day of the last third of ``[start, end]``."""
    days = (end - start).days + 1
    return start + timedelta(days=-(-2 * days // 3))


def validate(
    scenario: str,
    rows: int,
    start: date,
    end: date,
    seed: int,
    drift_start: date | None,
) -> None:
    """Raise :class:`DataError` naming the first bad argument and its value."""
    if scenario not in SCENARIOS:
        raise DataError(
            f"--scenario {scenario}: unknown scenario (available: {', '.join(SCENARIOS)})"
        )
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < MIN_ROWS:
        raise DataError(f"--rows {rows}: at least {MIN_ROWS} rows are needed")
    if end <= start:
        raise DataError(f"--end {end}: must be after --start {start}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"--seed {seed}: must be a non-negative integer")
    if drift_start is not None and scenario != "healthy" and not start < drift_start <= end:
        raise DataError(
            f"--drift-start {drift_start}: must fall after --start {start} and by --end {end}"
        )


def generate(
    module: DataModule,
    project: str,
    out_dir: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    rows: int | None = None,
    scenario: str = "healthy",
    seed: int = 42,
    drift_start: date | None = None,
) -> GenerationSummary:
    """Run ``module``'s generator: write ``project``'s tables into ``out_dir`` (created if missing).

    Args:
        module: The project's ``data.py`` (a :class:`~modelops.core.plugins.DataModule`).
        project: The project's name, recorded in the summary.
        out_dir: Folder for the parquet files; existing files of the same name are replaced
            atomically, and only once every table of the project is complete.
        start: First day of events (UTC); default ``module.DEFAULT_WINDOW``.
        end: Last day of events, inclusive; default ``module.DEFAULT_WINDOW``.
        rows: Rows of the label table; default ``module.DEFAULT_ROWS``, at least :data:`MIN_ROWS`.
        scenario: One of :data:`SCENARIOS`.
        seed: Same seed and arguments, byte-identical files.
        drift_start: Day the drift begins; ignored for ``healthy``; default
            :func:`default_drift_start`. Returned in the summary.

    Raises:
        DataError: An argument is out of range; the message names it and its value.
    """
    default_start, default_end = module.DEFAULT_WINDOW
    start = default_start if start is None else start
    end = default_end if end is None else end
    rows = module.DEFAULT_ROWS if rows is None else rows
    validate(scenario, rows, start, end, seed, drift_start)
    if scenario == "healthy":
        drift_start = None
    elif drift_start is None:
        drift_start = default_drift_start(start, end)
    window = Window(start, end, drift_start)
    tables, positive_rate = module.generate(Path(out_dir), window, rows, scenario, seed)
    return GenerationSummary(project, scenario, seed, tables, positive_rate, drift_start)


def rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator per ``(seed, *stream)``, so chunks never share random draws."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def chunk_bounds(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` bounds of consecutive chunks of at most ``size`` out of ``n``."""
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def categorical(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Integer codes as a plain string column."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names)).cast(pa.string())


def timestamp_type() -> pa.DataType:
    """The type of every timestamp column: tz-aware UTC microseconds."""
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC")


def to_datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
