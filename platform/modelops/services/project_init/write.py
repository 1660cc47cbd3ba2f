"""The output: the feature and label tables as Arrow tables, and every file written under a
temporary name and renamed into place, data first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.integrations.parquet import write_table
from modelops.services.project_init.columns import AVAILABLE, CREATED, EVENT
from modelops.services.project_init.features import Rows
from modelops.services.project_init.layout import Layout

if TYPE_CHECKING:
    import pyarrow as pa


def output_tables(join_key: str, label: str, rows: Rows) -> tuple[pa.Table, pa.Table]:
    """The feature table (entity, event and created time = event time, features) and the
    label table (entity, event time, label, ``label_available_at``), times in UTC microseconds.
    """
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    event_array = pa.array(rows.event_us, type=pa.int64()).cast(stamp)
    features_table = pa.table(
        {
            join_key: rows.entity,
            EVENT: event_array,
            CREATED: event_array,
            **rows.features,
        }
    )
    labels_table = pa.table(
        {
            join_key: rows.entity,
            EVENT: event_array,
            label: rows.label,
            AVAILABLE: pa.array(rows.known_us, type=pa.int64()).cast(stamp),
        }
    )
    return features_table, labels_table


def write(
    layout: Layout, features: pa.Table, labels: pa.Table, texts: Mapping[Path, str]
) -> list[Path]:
    """Every file written under a temporary name and renamed, data first; a behaviour test left
    by an earlier init with ``--monotone`` is removed when this one writes none."""
    import os

    import pyarrow as pa

    written = []
    for path, table in ((layout.features_table, features), (layout.labels_table, labels)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # dictionary pages only where they pay (text); numbers would be tried and dropped
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        write_table(table, partial, use_dictionary=strings)
        partial.replace(path)
        written.append(path)
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)
        written.append(path)
    if layout.behaviour_test.exists() and layout.behaviour_test not in written:
        layout.behaviour_test.unlink()
    return written
