"""Feast: the point-in-time join of training sets and holdouts (DuckDB over the batch views' parquet
sources, in chunks) and the availability check of the rows it picked."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from modelops.core.datachecks import (
    AvailabilityResult,
    availability_found,
    availability_precheck,
    availability_unreadable,
    describe_keys,
)
from modelops.core.errors import FeatureStoreError
from modelops.integrations.feast.definitions import _batch_views, _BatchView
from modelops.integrations.feast.on_demand import apply_views, join_plan

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore


log = logging.getLogger(__name__)


_ROW_ID = "__modelops_row"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb() -> Any:
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC, as Feast reads them
    return connection


def _event_ns(entity_frame: pd.DataFrame) -> Any:
    """The entity rows' event times as int64 nanoseconds since the epoch (UTC)."""
    import pandas as pd

    try:
        events = pd.to_datetime(entity_frame["event_timestamp"], utc=True)
    except KeyError as exc:
        raise FeatureStoreError("entity rows: no 'event_timestamp' column") from exc
    missing = int(events.isna().sum())
    if missing:
        raise FeatureStoreError(f"entity rows: {missing} rows have no event_timestamp")
    return events.dt.as_unit("ns").astype("int64").to_numpy()


def _entities_table(
    connection: Any, entity_frame: pd.DataFrame, views: list[_BatchView], event_ns: Any
) -> None:
    """Register the entity keys, row numbers and event nanoseconds as ``__entities``."""
    import numpy as np
    import pandas as pd

    columns: dict[str, Any] = {"__row": np.arange(len(entity_frame)), "__e": event_ns}
    for view in views:
        for column in view.keys.values():
            if column not in entity_frame.columns:
                raise FeatureStoreError(
                    f"entity rows: no column '{column}', the join key of feature view '{view.name}'"
                )
            columns[column] = entity_frame[column].to_numpy()
    connection.register("__entities", pd.DataFrame(columns))


def _on_keys(view: _BatchView, right: str) -> str:
    return " AND ".join(
        f"e.{_ident(ent)} = {right}.{_ident(src)}" for src, ent in view.keys.items()
    )


def _whole_microseconds(connection: Any, view: _BatchView) -> bool:
    """True when Feast's DuckDB store reads the view's event times without rounding: stored in
    seconds, milliseconds or microseconds, or in nanoseconds that are all whole microseconds.
    Remote sources cannot be inspected and are assumed to be whole microseconds."""
    import pyarrow.parquet as pq

    if view.source is None or not view.source.is_file():
        return True
    schema = pq.read_schema(view.source)
    if schema.get_field_index(view.timestamp) < 0:
        return False  # the exact path names the file and column
    if getattr(schema.field(view.timestamp).type, "unit", None) in ("s", "ms", "us"):
        return True
    try:
        sub_us = connection.execute(
            f"SELECT count(*) FROM read_parquet({_literal(str(view.source))}) "
            f"WHERE epoch_ns({_ident(view.timestamp)}) % 1000 <> 0"
        ).fetchall()[0][0]
    except Exception:
        return False
    return int(sub_us) == 0


_FAR = 2**62  # microseconds: an unbounded end of an interval


def _exact_interval(connection: Any, view: _BatchView, event_ns: Any) -> tuple[Any, Any]:
    """Per entity row, the microsecond entity times at which Feast's join picks exactly the row
    a nanosecond comparison picks (the latest event time <= the event, unless older than TTL).

    Feast's DuckDB store compares microseconds: it casts the source's event times to
    ``TIMESTAMPTZ`` (rounding nanoseconds) and needs entity times in microseconds. With ``r`` that
    cast, ``f`` the row to pick and ``n`` the next later row of the same entity, the entity time
    ``t`` must satisfy ``r(f) <= t < r(n)`` and ``t <= r(f) + ttl`` (or, when ``f`` has expired,
    ``r(f) + ttl < t < r(n)``; with no ``f``, ``t < r(n)``). Returns ``(low, high)`` arrays; an
    empty interval (``low > high``) means two of the view's rows are closer than Feast can tell
    apart around that event.
    """
    import numpy as np

    ts = _ident(view.timestamp)
    keys = ", ".join(f"{_ident(src)}" for src in view.keys)
    times = connection.execute(
        f"""
        WITH src AS (
            SELECT DISTINCT {keys}, epoch_ns({ts}) AS __f,
                epoch_us(CAST({ts} AS TIMESTAMPTZ)) AS __r
            FROM read_parquet({_literal(str(view.source))}) WHERE {ts} IS NOT NULL
        ),
        times AS (
            SELECT *, coalesce(__r = lag(__r) OVER (PARTITION BY {keys} ORDER BY __f), false)
                AS __merged
            FROM src
        )
        SELECT b.__f, b.__r, b.__merged, n.__r AS __next
        FROM __entities e
        ASOF LEFT JOIN times b ON {_on_keys(view, "b")} AND e.__e >= b.__f
        ASOF LEFT JOIN times n ON {_on_keys(view, "n")} AND e.__e < n.__f
        ORDER BY e.__row
        """
    ).df()
    found = times["__f"].notna().to_numpy()
    picked_ns = times["__f"].fillna(0).to_numpy(dtype=np.int64)
    picked_us = times["__r"].fillna(0).to_numpy(dtype=np.int64)
    next_us = times["__next"].fillna(_FAR + 1).to_numpy(dtype=np.int64)
    if view.ttl_ns is None:
        alive = found
        ttl_us = _FAR
    else:
        alive = found & (picked_ns + view.ttl_ns >= event_ns)
        ttl_us = view.ttl_ns // 1_000
    low = np.where(alive, picked_us, np.where(found, picked_us + ttl_us + 1, -_FAR))
    high = np.minimum(np.where(alive, picked_us + ttl_us, _FAR), next_us - 1)
    # The picked row rounds to the same microsecond as the one before it: Feast sees a tie.
    merged = alive & times["__merged"].fillna(False).to_numpy(dtype=bool)
    return np.where(merged, _FAR, low), high


def _join_times(
    store: FeatureStore, service: FeatureService, entity_frame: pd.DataFrame
) -> pd.Series:
    """Entity times, in microseconds, that make Feast's join pick what a nanosecond join would.

    Offline stores keep microseconds. Flooring the event time is exact whenever the feature
    rows are whole microseconds (a row at ``f <= e`` is also ``<= floor(e)``), which is always
    the case for sources stored in s, ms or us. Sources with sub-microsecond event times are
    rounded by DuckDB when Feast reads them, so for those each event gets the microsecond at
    which Feast's comparison agrees with the exact one (see :func:`_exact_interval`); when no
    microsecond does, the join fails naming the file and column rather than losing or leaking
    a row.
    """
    import numpy as np
    import pandas as pd

    event_ns = _event_ns(entity_frame)
    floor_us = event_ns // 1_000

    def as_timestamps(us: Any) -> pd.Series:
        values = pd.Series(us.astype("datetime64[us]"), index=entity_frame.index)
        return values.dt.tz_localize("UTC")

    if store.config.offline_store.type != "duckdb" or len(entity_frame) == 0:
        return as_timestamps(floor_us)
    views = _batch_views(store, service)
    connection = _duckdb()
    try:
        exact = not (event_ns % 1_000).any()
        if exact and all(_whole_microseconds(connection, v) for v in views):
            return as_timestamps(floor_us)
        _entities_table(connection, entity_frame, views, event_ns)
        low = np.full(len(entity_frame), -_FAR, dtype=np.int64)
        high = np.full(len(entity_frame), _FAR, dtype=np.int64)
        for view in views:
            if view.source is None or not view.source.is_file():
                view_low, view_high = floor_us, floor_us  # cannot inspect: as Feast reads it
            else:
                try:
                    view_low, view_high = _exact_interval(connection, view, event_ns)
                except Exception as exc:
                    raise FeatureStoreError(
                        f"{view.source}: column '{view.timestamp}' unreadable for the "
                        f"point-in-time join: {str(exc).splitlines()[0]}"
                    ) from exc
            low, high = np.maximum(low, view_low), np.minimum(high, view_high)
            clash = np.flatnonzero(low > high)
            if clash.size:
                key = describe_keys(entity_frame, int(clash[0]), view.keys.values())
                raise FeatureStoreError(
                    f"{view.source or view.name}: column '{view.timestamp}' holds rows that "
                    f"Feast's DuckDB offline store (microsecond precision) cannot tell apart "
                    f"around {clash.size} event(s), e.g. {key} at "
                    f"{pd.Timestamp(int(event_ns[clash[0]]), tz='UTC').isoformat()}; store "
                    "event times at microsecond precision (pandas: .dt.floor('us'))"
                )
        return as_timestamps(np.clip(floor_us, low, high))
    finally:
        connection.close()


JOIN_CHUNK_ROWS = 150_000
"""Entity rows per Feast point-in-time join. Feast's DuckDB store pairs every entity row with
every feature row of its entity inside the TTL before keeping the latest, so a join's memory
grows with the rows joined at once: a first validation on 1,087,918 payments peaked at 5.6 GiB
joining them at once (5,000,000 were stopped at 20 GiB), and at 2.1 GiB joining 150,000 at a
time, in about the same time (5,000,000: 7.7 GiB; see docs/benchmarks.md)."""


def _joined_in_chunks(
    store: FeatureStore, service: FeatureService, entities: pd.DataFrame
) -> pd.DataFrame:
    """``get_historical_features(entities).to_df()``, joined :data:`JOIN_CHUNK_ROWS` entity rows
    at a time in event-time order (so that each join reads the feature rows of a short period).

    Each entity row's features depend on its own keys and time only (Feast keeps, per distinct
    keys and time, the latest feature row within the TTL), so joining in chunks picks the same
    rows. The chunks' Arrow tables are concatenated before the one conversion to pandas
    ``to_df`` makes, so the frame's types are those of a single join; rows come back in no
    particular order, as from one join.

    Python-mode on-demand views are applied to each chunk by :mod:`.on_demand` (their own
    function on their own inputs, not on the whole table converted to Python as Feast does);
    Feast joins their source features.
    """
    import numpy as np
    import pyarrow as pa

    plan = join_plan(store, service)
    features: Any = service if plan.features is None else plan.features

    def joined(chunk: pd.DataFrame) -> pa.Table:
        table = store.get_historical_features(entity_df=chunk, features=features).to_arrow()
        return apply_views(plan, table)

    if len(entities) <= JOIN_CHUNK_ROWS:
        return joined(entities).to_pandas().reset_index(drop=True)
    times = entities["event_timestamp"]
    order = np.argsort(
        times.astype("int64").to_numpy() if times.dtype.kind == "M" else np.arange(len(entities)),
        kind="stable",
    )
    tables = []
    for start in range(0, len(order), JOIN_CHUNK_ROWS):
        chunk = entities.take(order[start : start + JOIN_CHUNK_ROWS]).reset_index(drop=True)
        tables.append(joined(chunk))
        del chunk
    table = pa.concat_tables(tables, promote_options="permissive")
    del tables
    return table.to_pandas().reset_index(drop=True)


def historical_features(
    store: FeatureStore, service: FeatureService, entity_frame: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time join: each row gets feature values as of its ``event_timestamp``.

    A feature row is visible to an event when its event time is at or before the event's (to
    the nanosecond) and within the view's TTL, whatever precision either side is stored in:
    Feast's offline store compares microseconds, so the entity times handed to it are chosen to
    give the same answer (see :func:`_join_times`). The rows come back with the caller's own
    ``event_timestamp`` values.

    Rows are joined :data:`JOIN_CHUNK_ROWS` at a time (the same rows as one join, far less
    memory). Every entity row comes back exactly once. Some Feast offline stores (``file``)
    drop a row whose entity has feature rows but none within the view's TTL; such rows are
    restored here with missing features (what Feast returns for an entity it has never seen),
    so a training set never silently loses labelled events, whichever offline store is
    configured.

    Raises:
        FeatureStoreError: the join failed, or a source holds event times closer together than
            the offline store can tell apart around an event (named with file and column).
    """
    rows = entity_frame.assign(**{_ROW_ID: range(len(entity_frame))})
    entities = rows.assign(event_timestamp=_join_times(store, service, entity_frame))
    try:
        # The DuckDB offline store (ibis) resolves file sources against the working directory.
        with contextlib.chdir(store.repo_path):
            joined = _joined_in_chunks(store, service, entities)
    except Exception as exc:
        raise FeatureStoreError(f"building the training set failed: {exc}") from exc
    if joined[_ROW_ID].duplicated().any():
        raise FeatureStoreError("point-in-time join returned duplicate rows for one event")
    feature_columns = [c for c in joined.columns if c not in entities.columns]
    restored = rows.merge(joined[[_ROW_ID, *feature_columns]], on=_ROW_ID, how="left")
    dropped = len(entities) - len(joined)
    if dropped:
        log.warning("%d rows had only expired feature values; kept with missing features", dropped)
    return restored.drop(columns=_ROW_ID)


def availability_violations(
    store: FeatureStore, service: FeatureService, entity_frame: pd.DataFrame
) -> list[AvailabilityResult]:
    """Per feature view of the service: entity rows joined with a feature row that did not exist
    yet at the event time (its ``created_timestamp`` is later than the event), which Feast does
    not check.

    The joined row is the one Feast picks: the latest event time at or before the entity's,
    within the view's TTL, ties broken by the latest created time. Views without a created
    column are available when their event time says (checked, nothing affected); views whose
    source is not a local parquet file cannot be checked (``checked=False``, with the reason).
    DuckDB counts the affected rows; :mod:`modelops.core.datachecks` words the results.

    Args:
        entity_frame: the entity key columns and a tz-aware ``event_timestamp``.
    """
    views = _batch_views(store, service)
    rows = len(entity_frame)
    event_ns = _event_ns(entity_frame)
    results: list[AvailabilityResult] = []
    connection = _duckdb()
    try:
        _entities_table(connection, entity_frame, views, event_ns)
        for view in views:
            source = None if view.source is None else str(view.source)
            known = availability_precheck(
                view.name,
                rows,
                has_created=bool(view.created),
                source=source,
                source_exists=view.source is not None and view.source.is_file(),
                columns=view.features,
            )
            if known is not None:
                results.append(known)
                continue
            assert source is not None
            try:
                affected, example, example_created = _created_after_event(connection, view)
            except Exception as exc:
                results.append(availability_unreadable(view.name, rows, source, exc, view.features))
                continue
            found = None
            if affected:
                found = (int(example), int(event_ns[example]), int(example_created))
            results.append(
                availability_found(
                    view.name, entity_frame, view.keys.values(), int(affected), found, view.features
                )
            )
    finally:
        connection.close()
    return results


def _created_after_event(connection: Any, view: _BatchView) -> tuple[Any, Any, Any]:
    """Entity rows whose point-in-time joined row of ``view`` was created after their event
    time: how many, the first one's position, and that joined row's created time (ns)."""
    assert view.created is not None and view.source is not None
    ts, created = _ident(view.timestamp), _ident(view.created)
    keys = ", ".join(_ident(src) for src in view.keys)
    expired = "" if view.ttl_ns is None else f"AND s.__f + {view.ttl_ns} >= e.__e"
    row = connection.execute(
        f"""
        WITH src AS (
            SELECT {keys}, epoch_ns({ts}) AS __f, max(epoch_ns({created})) AS __c
            FROM read_parquet({_literal(str(view.source))})
            WHERE {ts} IS NOT NULL GROUP BY ALL
        )
        SELECT count(*), min(e.__row), arg_min(s.__c, e.__row)
        FROM __entities e
        ASOF JOIN src s ON {_on_keys(view, "s")} AND e.__e >= s.__f
        WHERE s.__c > e.__e {expired}
        """
    ).fetchall()[0]
    return row[0], row[1], row[2]
