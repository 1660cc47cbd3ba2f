"""The platform's Spark session on local[2]: cached, UTC, and mapInPandas runs this Python."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from modelops.config.settings import Settings
from modelops.integrations.spark.session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration


def test_the_session_is_cached_utc_and_its_workers_run_this_python(spark: SparkSession) -> None:
    assert spark_session(Settings(spark_master="local[2]")) is spark
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"

    def executables(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import sys as worker_sys

        for batch in batches:
            yield pd.DataFrame({"python": [worker_sys.executable] * len(batch)})

    rows = spark.range(0, 10, numPartitions=2).mapInPandas(executables, "python string")
    assert {row.python for row in rows.collect()} == {sys.executable}


def test_moto_serves_s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    client.create_bucket(Bucket="fixture-check")
    client.put_object(Bucket="fixture-check", Key="a/b", Body=b"\x00bytes")
    assert client.get_object(Bucket="fixture-check", Key="a/b")["Body"].read() == b"\x00bytes"
