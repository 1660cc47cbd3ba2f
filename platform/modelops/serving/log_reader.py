"""Reading the prediction log that :mod:`modelops.serving.prediction_log` writes.

- :func:`read_prediction_log`: the rows of a time range as a DataFrame, the entity key and the
  feature values expanded into columns (what people and the simulation look at);
- :func:`read_log`: the rows of a time range as an Arrow table of the columns asked for, the JSON
  columns kept as text, for :func:`decode_json` to decode in Arrow (what monitoring reads).

A directory is read as a hive-partitioned parquet dataset (``date=YYYY-MM-DD``), the date
partitions outside the range pruned before any file is opened; a SQLAlchemy URL is queried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ModelopsError
from modelops.serving.prediction_log import COLUMNS, TABLE, _arrow_schema, _table

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

WINDOW_COLUMNS = ("logged_at", "environment", "model_version", "score", "features")
"""What a drift window needs of the log (one column per feature once decoded)."""
LOOKBACK_COLUMNS = (
    "request_id",
    "logged_at",
    "environment",
    "model_version",
    "entity",
    "score",
    "shadow_version",
    "shadow_score",
)
"""What labels are joined to: no features, so a long look-back stays cheap (the request id
finds a row's features when they are needed)."""
PARTITION = "date"
"""The hive partition key of a log directory (``date=YYYY-MM-DD``)."""


class LogReadError(ModelopsError):
    """The prediction log cannot be read (a broken file, an unreachable database)."""


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype="object") for name in COLUMNS})


def _partitions(directory: Path, schema: pa.Schema | None = None) -> ds.Dataset | None:
    """The log directory as a dataset partitioned by ``date`` (text); None when it holds no
    file. Hidden files (a write in progress, ``.part-*.tmp``) are ignored."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not directory.is_dir():
        return None
    partitioning = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
    if schema is not None:
        schema = schema.append(pa.field(PARTITION, pa.string()))
    dataset = ds.dataset(directory, format="parquet", partitioning=partitioning, schema=schema)
    return dataset if dataset.files else None


def _in_range(start: datetime, end: datetime) -> ds.Expression:
    """Rows logged in ``[start, end)``, read only from the date partitions that can hold them."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    days = (ds.field(PARTITION) >= start.date().isoformat()) & (
        ds.field(PARTITION) <= end.date().isoformat()
    )
    logged = ds.field("logged_at")
    return days & (logged >= pa.scalar(start)) & (logged < pa.scalar(end))


def _read_parquet(directory: Path, start: datetime, end: datetime) -> pd.DataFrame:
    dataset = _partitions(directory, _arrow_schema())
    if dataset is None:
        return _empty_frame()
    return dataset.to_table(columns=list(COLUMNS), filter=_in_range(start, end)).to_pandas()


def _read_sql(url: str, start: datetime, end: datetime, project: str | None) -> pd.DataFrame:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table(TABLE):
            return _empty_frame()
        table = _table(sa.MetaData())
        present = {c["name"] for c in inspector.get_columns(TABLE)}
        query = sa.select(*(table.c[name] for name in COLUMNS if name in present)).where(
            table.c.logged_at >= start, table.c.logged_at < end
        )
        if project is not None:
            query = query.where(table.c.project == project)
        with engine.connect() as connection:
            frame = pd.read_sql(query.order_by(table.c.logged_at), connection)
    finally:
        engine.dispose()
    for name in COLUMNS:
        if name not in frame.columns:  # a table older than the column (ADDED_COLUMNS)
            frame[name] = None
    frame = frame[list(COLUMNS)]
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    return frame


def read_prediction_log(
    target: str | Path,
    start: datetime,
    end: datetime,
    *,
    project: str | None = None,
    expand: bool = True,
) -> pd.DataFrame:
    """Predictions logged in ``[start, end)`` (UTC; naive times are taken as UTC), oldest first.

    Args:
        target: the log's directory or SQLAlchemy URL (settings ``resolved_prediction_log``).
        project: only this project's rows.
        expand: add one column per entity key and per feature (from the JSON columns); a name
            that clashes with a log column gets the prefix ``feature.``.
    """
    import pandas as pd

    start, end = _as_utc(start), _as_utc(end)
    text = str(target)
    if "://" in text:
        frame = _read_sql(text, start, end, project)
    else:
        frame = _read_parquet(Path(text), start, end)
        if project is not None and len(frame):
            frame = frame[frame["project"] == project]
    frame = frame.sort_values("logged_at", kind="stable").reset_index(drop=True)
    if not expand or frame.empty:
        return frame
    expanded: dict[str, list[Any]] = {}
    for name in ("entity", "features"):
        parsed = [json.loads(v) if isinstance(v, str) else {} for v in frame[name]]
        keys = list(dict.fromkeys(k for values in parsed for k in values))
        for key in keys:
            column = key if key not in frame.columns and key not in expanded else f"feature.{key}"
            expanded[column] = [values.get(key) for values in parsed]
    return pd.concat([frame, pd.DataFrame(expanded, index=frame.index)], axis=1)


def _read_columns(
    directory: Path, start: datetime, end: datetime, project: str, columns: list[str]
) -> pa.Table:
    """``columns`` (those the files have) of ``project``'s rows in ``[start, end)``; the files'
    own types, no schema imposed (a file written with another schema is read as it is)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = _partitions(directory)
    if dataset is None:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    names = dataset.schema.names
    condition = _in_range(start, end)
    if "project" in names:
        condition = condition & (ds.field("project") == project)
    return dataset.to_table(columns=[c for c in columns if c in names], filter=condition)


def read_log(
    target: str,
    project: str,
    environment: str,
    start: datetime,
    end: datetime,
    *,
    columns: tuple[str, ...] = WINDOW_COLUMNS,
) -> pa.Table:
    """``project``'s predictions in ``environment`` (or without one) logged in ``[start, end)``,
    as an Arrow table of the log's ``columns``, oldest first.

    ``target``: a directory, read with pyarrow from its date partitions keeping the JSON columns
    as Arrow strings (decoded by :func:`decode_json`), or a SQL target, read through
    :func:`read_prediction_log`.

    Raises:
        LogReadError: a file or the database cannot be read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    start, end = _as_utc(start), _as_utc(end)
    wanted = list(dict.fromkeys([*columns, "logged_at", "environment"]))
    try:
        if "://" in target:
            frame = read_prediction_log(target, start, end, project=project, expand=False)
            table = pa.Table.from_pandas(
                frame[[c for c in wanted if c in frame.columns]], preserve_index=False
            )
        else:
            table = _read_columns(Path(target), start, end, project, wanted)
    except (OSError, pa.ArrowException) as exc:
        raise LogReadError(f"prediction log {target}: unreadable: {exc}") from exc
    if table.num_rows and "environment" in table.column_names:
        env = table["environment"]
        table = table.filter(pc.or_kleene(pc.equal(env, environment), pc.is_null(env)))
    if table.num_rows and "logged_at" in table.column_names:
        table = table.sort_by("logged_at")
    return table.select([c for c in columns if c in table.column_names])


def decode_json(column: Any, schema: pa.Schema | None = None) -> pa.Table:
    """One column per key of a column of JSON objects (null rows: every key null), decoded in
    Arrow: the objects are joined into newline-delimited JSON and parsed by
    ``pyarrow.json`` (``schema``: the types of the keys wanted; others are ignored). Falls back
    to Python's ``json`` when Arrow cannot parse them with that schema.

    Raises:
        LogReadError: the decoded table does not have one row per object.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    texts = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(texts) == 0:
        return pa.table({f.name: pa.array([], f.type) for f in (schema or [])})
    texts = pc.fill_null(texts.cast(pa.string()), "{}")
    lines = pc.binary_join_element_wise(texts, "", "\n").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    body = lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    options = pj.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore" if schema else "infer"
    )
    try:
        table = pj.read_json(
            pa.BufferReader(body),
            parse_options=options,
            read_options=pj.ReadOptions(block_size=32 << 20),
        )
    except pa.ArrowInvalid:  # not objects of these types: decode row by row, keep what is there
        table = _decode_rows(texts.to_pylist(), schema)
    if table.num_rows != len(texts):
        raise LogReadError(
            f"the prediction log's JSON decoded to {table.num_rows} rows, not {len(texts)}"
        )
    return table


def _decode_rows(texts: list[str | None], schema: pa.Schema | None) -> pa.Table:
    """Python's ``json``, one row at a time: a malformed row has no values; a value of another
    type than ``schema`` says makes its column text (the data checks name it)."""
    import pyarrow as pa

    parsed: list[dict[str, Any]] = []
    for text in texts:
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            value = {}
        parsed.append(value if isinstance(value, dict) else {})
    names = (
        [f.name for f in schema] if schema else list(dict.fromkeys(k for r in parsed for k in r))
    )
    columns: dict[str, Any] = {}
    for name in names:
        values = [row.get(name) for row in parsed]
        wanted = schema.field(name).type if schema else None
        try:
            columns[name] = pa.array(values, type=wanted)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(
                [None if v is None else str(v) for v in values], type=pa.string()
            )
    return pa.table(columns) if columns else pa.table({"_": pa.nulls(len(texts))}).drop(["_"])


__all__ = [
    "LOOKBACK_COLUMNS",
    "WINDOW_COLUMNS",
    "LogReadError",
    "decode_json",
    "read_log",
    "read_prediction_log",
]
