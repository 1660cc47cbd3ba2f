"""The prediction log: every prediction a service makes, written off the request path.

Writer: :class:`PredictionLog` takes records on a bounded buffer (``submit`` never blocks and
wakes no thread but once per batch: a full buffer drops the record and counts it) and a
background thread writes them in batches, every ``flush_rows`` records or ``flush_seconds``,
whichever comes first; ``close`` (the service's shutdown, SIGTERM) writes what is left. A
record that carries a shadow model is scored by that model on the same thread, so a shadow costs
the response nothing.

Sinks, chosen by the target:

- a directory: parquet files partitioned by date, ``<dir>/date=YYYY-MM-DD/part-*.parquet``
  (one file per write and date; hive partitioning, so any parquet reader filters by date);
- a SQLAlchemy URL (``postgresql+psycopg://...``): rows appended to the table
  ``modelops_prediction_log``, created on first use.

Readers live beside this module, in :mod:`modelops.serving.log_reader`: the rows of a time range
as a DataFrame (:func:`~modelops.serving.log_reader.read_prediction_log`) or as Arrow columns with
the JSON decoded in Arrow (:func:`~modelops.serving.log_reader.read_log`, what monitoring reads).

It lives here rather than in ``modelops.services`` because the Bento imports it: a service image
carries the serving package and nothing of the platform's CLI or ledger.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_core import to_json

if TYPE_CHECKING:
    from modelops.core.scorer import Scorer
    from modelops.serving.policy import DecisionPolicy

log = logging.getLogger(__name__)

TABLE = "modelops_prediction_log"
COLUMNS = (
    "request_id",
    "logged_at",
    "project",
    "environment",
    "model_version",
    "endpoint",
    "entity",
    "request",
    "features",
    "score",
    "decision",
    "fallback",
    "shadow_version",
    "shadow_score",
    "shadow_decision",
    "latency_ms",
    "out_of_range",
)
# Columns added after the first release of the table: a sink adds them to an older table.
ADDED_COLUMNS = {"out_of_range": "TEXT"}
JSON_COLUMNS = ("entity", "request", "features")


@dataclass
class PredictionRecord:
    """One prediction. ``entity``, ``request`` and ``features`` are stored as JSON text."""

    request_id: str
    logged_at: datetime
    project: str
    model_version: str
    entity: dict[str, Any]
    decision: str
    score: float | None = None
    features: dict[str, Any] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False
    environment: str | None = None
    endpoint: str = "predict"
    shadow_version: str | None = None
    shadow_score: float | None = None
    shadow_decision: str | None = None
    latency_ms: float | None = None
    out_of_range: str | None = None  # features outside their training range, comma-separated

    def row(self) -> dict[str, Any]:
        """The record as a log row: a shallow read of the fields (``dataclasses.asdict`` deep-
        copied every dict, 21 % of a batch's CPU), the JSON columns serialised."""
        values = {name: getattr(self, name) for name in _RECORD_FIELDS}
        for name in JSON_COLUMNS:
            values[name] = None if values[name] is None else _json(values[name])
        return values


_RECORD_FIELDS = tuple(f.name for f in fields(PredictionRecord))


def _json(value: dict[str, Any]) -> str:
    """Compact JSON by pydantic's serialiser (Rust): ``json.dumps`` was 40 % of the writer's
    time; a value it cannot serialise is written as its ``str``, NaN as ``NaN`` (as before)."""
    return to_json(value, fallback=str).decode()


class Shadow(Protocol):
    """What the writer needs of a shadow model (``modelops.serving.predictor.ServedModel``)."""

    @property
    def version(self) -> str: ...

    @property
    def scorer(self) -> Scorer: ...

    @property
    def policy(self) -> DecisionPolicy: ...


class Sink(Protocol):
    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("logged_at", pa.timestamp("us", tz="UTC")),
            ("project", pa.string()),
            ("environment", pa.string()),
            ("model_version", pa.string()),
            ("endpoint", pa.string()),
            ("entity", pa.string()),
            ("request", pa.string()),
            ("features", pa.string()),
            ("score", pa.float64()),
            ("decision", pa.string()),
            ("fallback", pa.bool_()),
            ("shadow_version", pa.string()),
            ("shadow_score", pa.float64()),
            ("shadow_decision", pa.string()),
            ("latency_ms", pa.float64()),
            ("out_of_range", pa.string()),
        ]
    )


class ParquetSink:
    """Parquet files under ``<directory>/date=YYYY-MM-DD/``, one per write and date."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._schema = _arrow_schema()
        self._prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0
        self._folders: set[Path] = set()

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        from modelops.integrations import parquet

        by_date: dict[date, list[dict[str, Any]]] = {}
        for row in rows:
            by_date.setdefault(row["logged_at"].astimezone(UTC).date(), []).append(row)
        for day, day_rows in sorted(by_date.items()):
            folder = self.directory / f"date={day.isoformat()}"
            if folder not in self._folders or not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                self._folders.add(folder)
            table = pa.Table.from_pylist(day_rows, schema=self._schema)
            self._sequence += 1
            name = f"part-{time.time_ns()}-{self._prefix}-{self._sequence:06d}.parquet"
            tmp = folder / f".{name}.tmp"
            parquet.write_table(table, tmp)  # microseconds, UTC: Spark reads the log
            tmp.replace(folder / name)  # readers never see a half-written file

    def close(self) -> None:
        return None


def _table(metadata: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        TABLE,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64)),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("request", sa.Text),
        sa.Column("features", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("decision", sa.String(64), nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("shadow_version", sa.String(64)),
        sa.Column("shadow_score", sa.Float),
        sa.Column("shadow_decision", sa.String(64)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("out_of_range", sa.Text),
        sa.Index(f"ix_{TABLE}_project_logged_at", "project", "logged_at"),
    )


class SqlSink:
    """Rows appended to ``modelops_prediction_log`` in one transaction per write."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(url, pool_pre_ping=True)
        metadata = sa.MetaData()
        self._table = _table(metadata)
        try:
            metadata.create_all(self._engine, checkfirst=True)
        except sa.exc.DatabaseError:  # another worker created it first
            if not sa.inspect(self._engine).has_table(TABLE):
                raise
        add_columns(self._engine)

    def write(self, rows: list[dict[str, Any]]) -> None:
        with self._engine.begin() as connection:
            connection.execute(self._table.insert(), rows)

    def close(self) -> None:
        self._engine.dispose()


def add_columns(engine: Any) -> None:
    """Add the columns of :data:`ADDED_COLUMNS` an older table lacks (nullable: old rows null)."""
    import sqlalchemy as sa

    present = {c["name"] for c in sa.inspect(engine).get_columns(TABLE)}
    for name, kind in ADDED_COLUMNS.items():
        if name in present:
            continue
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f"ALTER TABLE {TABLE} ADD COLUMN {name} {kind}"))
        except sa.exc.DatabaseError:  # another worker added it first
            columns = {c["name"] for c in sa.inspect(engine).get_columns(TABLE)}
            if name not in columns:
                raise


def open_sink(target: str) -> Sink:
    """A SQL sink for a SQLAlchemy URL, a parquet sink for anything else (a directory)."""
    if "://" in target:
        return SqlSink(target)
    return ParquetSink(Path(target))


@dataclass
class LogStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    writes: int = 0
    wakeups: int = 0  # times the writer thread woke: per batch or timer, never per record


class PredictionLog:
    """Records appended to a bounded buffer and one thread writing them in batches.

    ``submit`` is an append to a deque under no lock the writer holds, and wakes the writer
    only when a full batch (``flush_rows``) is waiting: a thread woken per request (what a
    ``queue.Queue`` does) costs a context switch and a GIL hand-over on every request, which on
    a busy machine preempts the thread answering the request while it holds the GIL. Otherwise
    the writer wakes on its timer, every ``flush_seconds``.

    Args:
        sink: where batches go (:func:`open_sink`).
        flush_rows: write as soon as this many records wait.
        flush_seconds: write waiting records at least this often.
        max_queue: records waiting at most; more are dropped (and counted), never waited for.
        on_rows: called with ``("written" | "dropped" | "failed", count)`` for metrics.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        on_rows: Callable[[str, int], None] | None = None,
    ) -> None:
        self._sink = sink
        self._flush_rows = max(1, flush_rows)
        self._flush_seconds = flush_seconds
        self._max_queue = max(1, max_queue)
        self._pending: deque[tuple[PredictionRecord, Shadow | None]] = deque()
        self._flushes: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._on_rows = on_rows or (lambda outcome, count: None)
        self.stats = LogStats()
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, record: PredictionRecord, shadow: Shadow | None = None) -> bool:
        """Queue one record; False (and counted as dropped) when the buffer is full or closed."""
        if self._closed or len(self._pending) >= self._max_queue:
            self._dropped(1)
            return False
        self._pending.append((record, shadow))
        with self._lock:
            self.stats.submitted += 1
        if len(self._pending) >= self._flush_rows and not self._wake.is_set():
            self._wake.set()
        return True

    def submit_many(self, records: Sequence[PredictionRecord], shadow: Shadow | None = None) -> int:
        return sum(self.submit(record, shadow) for record in records)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        if not self._thread.is_alive():
            return not self._pending
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the thread and close the sink."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("prediction log: rows still being written at shutdown may be lost")
        self._sink.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _dropped(self, count: int) -> None:
        with self._lock:
            self.stats.dropped += count
        self._on_rows("dropped", count)

    def _run(self) -> None:
        deadline: float | None = None
        while True:
            wait = self._flush_seconds if deadline is None else deadline - time.monotonic()
            timed_out = not self._wake.wait(max(0.0, wait))
            self._wake.clear()
            with self._lock:
                self.stats.wakeups += 1
            stopping = self._stopping
            flushes = [self._flushes.popleft() for _ in range(len(self._flushes))]
            overdue = deadline is not None and time.monotonic() >= deadline
            self._drain(everything=stopping or bool(flushes) or timed_out or overdue)
            for done in flushes:
                done.set()
            if stopping:
                return
            deadline = time.monotonic() + self._flush_seconds if self._pending else None

    def _drain(self, everything: bool) -> None:
        """Write full batches; with ``everything``, the rest too."""
        pending = self._pending
        while len(pending) >= self._flush_rows or (everything and pending):
            count = min(len(pending), self._flush_rows)
            self._write([pending.popleft() for _ in range(count)])

    def _write(self, batch: list[tuple[PredictionRecord, Shadow | None]]) -> None:
        if not batch:
            return
        _score_shadows(batch)
        rows = [record.row() for record, _ in batch]
        try:
            self._sink.write(rows)
        except Exception:
            log.exception("prediction log: writing %d rows failed; they are lost", len(rows))
            with self._lock:
                self.stats.failed += len(rows)
            self._on_rows("failed", len(rows))
            return
        with self._lock:
            self.stats.written += len(rows)
            self.stats.writes += 1
        self._on_rows("written", len(rows))


def _score_shadows(batch: list[tuple[PredictionRecord, Shadow | None]]) -> None:
    """Fill in the shadow score and decision of every record that carries a shadow model,
    one ``score_rows`` call per shadow model."""
    groups: dict[int, tuple[Shadow, list[PredictionRecord]]] = {}
    for record, shadow in batch:
        if shadow is not None and record.features is not None:
            groups.setdefault(id(shadow), (shadow, []))[1].append(record)
    for shadow, records in groups.values():
        for record in records:
            record.shadow_version = shadow.version
        try:
            scores = shadow.scorer.score_rows([r.features or {} for r in records])
        except Exception as exc:
            log.warning("prediction log: shadow v%s could not score: %s", shadow.version, exc)
            continue
        for record, score in zip(records, scores, strict=True):
            value = float(score)
            record.shadow_score = value
            try:
                record.shadow_decision = shadow.policy.decide(value)
            except Exception:
                record.shadow_decision = None
