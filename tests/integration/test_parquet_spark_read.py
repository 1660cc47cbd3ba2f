"""Spark reads every parquet file the platform writes, with the same instants.

The files are whatever the writers leave after running on seeded data (every ``*.parquet``
under the folders they write to, found afterwards, not listed by hand): the projects' generated
sources and labels (``data generate``), the cached training set of a join, and the prediction
log. Each must have its timestamps as microseconds adjusted to UTC (Spark 4 refuses nanoseconds
and reads naive times as TIMESTAMP_NTZ), and Spark must read the same rows and instants as
pyarrow does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelops.config.project import load_project
from modelops.config.settings import Settings, load_settings
from modelops.services import data, datasets, features
from modelops.serving.prediction_log import COLUMNS, open_sink
from support import copy_workspace

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration


def _prediction_rows(count: int) -> list[dict[str, object]]:
    start = datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=UTC)
    rows = []
    for i in range(count):
        row: dict[str, object] = dict.fromkeys(COLUMNS)
        row |= {
            "request_id": f"r-{i}",
            "logged_at": start + timedelta(seconds=i, microseconds=7 * i),
            "project": "credit_risk",
            "environment": "dev",
            "model_version": "1",
            "score": i / count,
            "fallback": False,
            "latency_ms": 1.5,
        }
        rows.append(row)
    return rows


@pytest.fixture
def written(tmp_path: Path) -> list[Path]:
    """Run the writers on seeded data; every parquet file they left."""
    settings: Settings = load_settings(copy_workspace(tmp_path / "repo"))
    data.generate(settings, rows=1500, seed=9)
    features.apply(settings)
    project = load_project(settings.resolved_projects_dir, "credit_risk")
    cache = tmp_path / "join-cache"
    datasets.build_training_set(
        settings,
        project,
        datetime(2027, 1, 1, tzinfo=UTC),
        windows=("holdout",),
        join_cache=cache,
    )
    log = tmp_path / "predictions"
    sink = open_sink(str(log))
    sink.write(_prediction_rows(50))
    found = sorted(
        path
        for folder in (settings.data_dir, cache, log)
        for path in folder.rglob("*.parquet")
        if path.is_file()
    )
    assert {p.parent for p in found} >= {settings.data_dir, cache}
    assert any(p.is_relative_to(log) for p in found)
    return found


def test_spark_reads_every_file_the_platform_writes(
    spark: SparkSession, written: list[Path]
) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    assert len(written) >= 5
    for path in written:
        table = pq.read_table(path)
        times = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        for name in times:
            assert table.schema.field(name).type == pa.timestamp("us", tz="UTC"), (path, name)
        frame = spark.read.parquet(str(path))
        assert frame.count() == table.num_rows, path
        for name in times:
            assert isinstance(frame.schema[name].dataType, TimestampType), (path, name)
            micros = [
                row[0]
                for row in frame.select(F.unix_micros(name)).orderBy(F.unix_micros(name)).collect()
            ]
            expected = sorted(
                table.column(name).cast(pa.int64()).to_pylist(),
                key=lambda v: (v is None, v or 0),
            )
            assert sorted(micros, key=lambda v: (v is None, v or 0)) == expected, (path, name)
