"""Parquet tables written in chunks, landing together: the files a project's ``data.py`` writes.

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
    import pyarrow as pa


class TableWriter:
    """Streams chunks into ``<name>.parquet.tmp`` and tracks rows and the event-time range."""

    def __init__(self, out_dir: Path, name: str, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.name = name
        self.path = out_dir / f"{name}.parquet"
        self.tmp = out_dir / f"{name}.parquet.tmp"
        self.schema = schema
        self.rows = 0
        self._min_us: int | None = None
        self._max_us: int | None = None
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, schema)

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
