"""Every parquet file the platform writes stores timestamps as microseconds in UTC (Spark 4
refuses nanoseconds and reads naive times as TIMESTAMP_NTZ), and reading back gives UTC."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelops.integrations.parquet import read_frame, spark_readable, write_frame, write_table

PLATFORM = Path(__file__).resolve().parents[2] / "platform" / "modelops"
WRITERS = {"to_parquet", "write_table", "ParquetWriter", "write_to_dataset", "write_dataset"}


def _writer_calls(path: Path, root: Path = PLATFORM.parent) -> list[str]:
    """``pq.write_table(...)``, ``frame.to_parquet(...)``...: parquet writes not made through
    modelops.integrations.parquet (called by attribute on another object than ``parquet``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            through_module = isinstance(owner, ast.Name) and owner.id == "parquet"
            if node.func.attr in WRITERS and not through_module:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_parquet_writer_of_the_platform_goes_through_the_parquet_module() -> None:
    own = PLATFORM / "integrations" / "parquet.py"
    bypasses = [
        call
        for path in sorted(PLATFORM.rglob("*.py"))
        if path != own
        for call in _writer_calls(path)
    ]
    assert bypasses == []


def test_the_check_sees_a_writer_that_bypasses_the_module(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "def f(frame, pq, t):\n    frame.to_parquet('x')\n    pq.write_table(t, 'y')\n"
    )
    sneaky.write_text(
        sneaky.read_text() + "def g(parquet, frame):\n    parquet.write_frame(frame, 'z')\n"
    )
    assert [call.rsplit(":", 1)[1] for call in _writer_calls(sneaky, tmp_path)] == ["2", "3"]


def test_nanoseconds_are_floored_to_microseconds_and_naive_times_are_utc(tmp_path: Path) -> None:
    ns = [1_700_000_000_123_456_789, -1_001, 0]  # -1001 ns floors to -2 us, not -1
    frame = pd.DataFrame(
        {
            "aware": pd.to_datetime(ns, unit="ns", utc=True),
            "naive": pd.to_datetime(ns, unit="ns"),
            "berlin": pd.to_datetime(ns, unit="ns", utc=True).tz_convert("Europe/Berlin"),
            "value": [1.0, None, 3.0],
        }
    )
    path = tmp_path / "t.parquet"
    write_frame(frame, path)
    schema = pq.read_schema(path)
    for name in ("aware", "naive", "berlin"):
        assert schema.field(name).type == pa.timestamp("us", tz="UTC"), name
    back = read_frame(path)
    expected = pd.to_datetime([n // 1_000 * 1_000 for n in ns], unit="ns", utc=True)
    for name in ("aware", "naive", "berlin"):
        assert back[name].dtype == "datetime64[ns, UTC]"
        assert back[name].tolist() == expected.tolist(), name
    assert back["value"].isna().tolist() == [False, True, False]


def test_a_table_already_in_microseconds_utc_is_unchanged() -> None:
    table = pa.table({"t": pa.array([1, 2], pa.timestamp("us", tz="UTC")), "x": [1, 2]})
    assert spark_readable(table).equals(table)


def test_read_frame_takes_spark_naive_timestamps_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "ntz.parquet"
    pq.write_table(pa.table({"t": pa.array([5_000_000], pa.timestamp("us"))}), path)
    assert read_frame(path)["t"].tolist() == [pd.Timestamp(5, unit="s", tz="UTC")]


@pytest.mark.parametrize("options", [{}, {"use_dictionary": ["s"]}])
def test_write_table_passes_options(tmp_path: Path, options: dict[str, object]) -> None:
    path = tmp_path / "o.parquet"
    write_table(pa.table({"s": ["a", "b"]}), path, **options)
    assert pq.read_table(path)["s"].to_pylist() == ["a", "b"]
