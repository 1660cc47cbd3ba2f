"""Parquet: every file the platform writes, and the reading back of files Spark wrote.

Every writer goes through :func:`write_table`, :func:`write_frame` or :class:`TableWriter`,
which store timestamps as microseconds adjusted to UTC: Spark 4 refuses pandas' and pyarrow's
default nanosecond timestamps (``PARQUET_TYPE_ILLEGAL ... TIMESTAMP(NANOS)``) and reads naive
ones as ``TIMESTAMP_NTZ``. Nanoseconds are floored to the microsecond (the precision of every
offline store Feast joins on); naive times are taken as UTC, as Feast reads them.
:func:`read_frame` reads a file back with UTC-aware timestamps, whichever way it was written
(Spark's ``TIMESTAMP_NTZ`` and pandas' naive columns come back as UTC). A unit test fails on any
``to_parquet``/``write_table``/``ParquetWriter`` in the platform outside this module.

:func:`atomic_tables` streams chunks into several tables that land together, so memory stays
bounded and a failed run leaves the previous files untouched. The values come from the pure
generation toolkit :mod:`modelops.core.synthetic`; pyarrow is imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import DataError
from modelops.core.synthetic import GeneratedTable, to_datetime

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def spark_readable_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every timestamp field (top level) as microseconds in UTC."""
    import pyarrow as pa

    fields = [
        field.with_type(pa.timestamp("us", tz="UTC"))
        if pa.types.is_timestamp(field.type)
        else field
        for field in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def spark_readable(table: pa.Table) -> pa.Table:
    """``table`` with every timestamp column floored to the microsecond and adjusted to UTC
    (naive times are UTC; aware ones keep their instant)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_timestamp(kind) and (kind.unit != "us" or kind.tz != "UTC"):
            if kind.unit == "ns":
                column = pc.floor_temporal(column, unit="microsecond")
            utc = pa.timestamp(kind.unit, tz="UTC")
            column = column.cast(utc) if kind.tz is not None else pc.assume_timezone(column, "UTC")
            column = column.cast(pa.timestamp("us", tz="UTC"), safe=False)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=spark_readable_schema(table.schema))


def write_table(table: pa.Table, path: Path | str, **options: Any) -> None:
    """``pyarrow.parquet.write_table`` of :func:`spark_readable` ``(table)``."""
    import pyarrow.parquet as pq

    pq.write_table(spark_readable(table), path, **options)


def write_frame(frame: pd.DataFrame, path: Path | str, **options: Any) -> None:
    """A pandas frame (without its index) as parquet, timestamps as :func:`write_table` does."""
    import pyarrow as pa

    write_table(pa.Table.from_pandas(frame, preserve_index=False), path, **options)


def read_frame(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """A parquet file or directory (Spark's output) as pandas, every timestamp column
    ``datetime64[ns, UTC]``: naive ones (Spark's ``TIMESTAMP_NTZ``, pandas' naive columns)
    are taken as UTC."""
    import pandas as pd

    frame = pd.read_parquet(path, columns=columns)
    for name in frame.columns:
        dtype = frame[name].dtype
        if dtype.kind == "M":
            values = frame[name]
            if getattr(dtype, "tz", None) is None:
                values = values.dt.tz_localize("UTC")
            frame[name] = values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return frame


class TableWriter:
    """Streams chunks into ``<name>.parquet.tmp`` and tracks rows and the event-time range."""

    def __init__(self, out_dir: Path, name: str, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.name = name
        self.path = out_dir / f"{name}.parquet"
        self.tmp = out_dir / f"{name}.parquet.tmp"
        self.schema = spark_readable_schema(schema)  # values are microseconds already
        self.rows = 0
        self._min_us: int | None = None
        self._max_us: int | None = None
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, self.schema)

    def write(self, columns: dict[str, Any]) -> None:
        """Append one chunk; timestamps are int64 microseconds since the epoch."""
        import pyarrow as pa

        if self._writer is None:
            raise RuntimeError(f"{self.name}: writer already closed")
        events = columns["event_timestamp"]
        if len(events) == 0:
            return
        arrays = [pa.array(columns[field.name], type=field.type) for field in self.schema]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        low, high = int(events.min()), int(events.max())
        self._min_us = low if self._min_us is None else min(self._min_us, low)
        self._max_us = high if self._max_us is None else max(self._max_us, high)
        self.rows += len(events)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def table(self) -> GeneratedTable:
        if self._min_us is None or self._max_us is None:
            raise DataError(f"{self.name}: no rows generated; widen the window or add rows")
        return GeneratedTable(
            self.name, self.path, self.rows, to_datetime(self._min_us), to_datetime(self._max_us)
        )


@contextmanager
def atomic_tables(out_dir: Path, schemas: dict[str, pa.Schema]) -> Iterator[dict[str, TableWriter]]:
    """Writers for several tables that land together: all files are renamed into place only
    once every table is complete, and a failure leaves no temporary file behind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, TableWriter] = {}
    try:
        for name, schema in schemas.items():
            writers[name] = TableWriter(out_dir, name, schema)
        yield writers
        for writer in writers.values():
            writer.close()
            writer.table()
        for writer in writers.values():
            os.replace(writer.tmp, writer.path)
    finally:
        for writer in writers.values():
            writer.close()
            writer.tmp.unlink(missing_ok=True)
