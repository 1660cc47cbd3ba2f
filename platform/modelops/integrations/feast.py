"""Feast: the feature repository, point-in-time training sets and online reads."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelops.core.datachecks import (
    AvailabilityResult,
    SourceColumns,
    availability_found,
    availability_precheck,
    availability_unreadable,
    check_source_columns,
    describe_keys,
)
from modelops.core.errors import FeatureStoreError, ServiceUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore


log = logging.getLogger(__name__)

_ROW_ID = "__modelops_row"
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")


@dataclass(frozen=True)
class FeatureRepo:
    """Where the repository is and how to fill in its ``feature_store.yaml``."""

    path: Path
    config_file: Path
    variables: Mapping[str, str]


@dataclass(frozen=True)
class MaterializedView:
    name: str
    start: datetime
    end: datetime


def _render_config(repo: FeatureRepo) -> dict[str, Any]:
    if not repo.config_file.is_file():
        raise FeatureStoreError(f"{repo.config_file}: Feast configuration not found")
    text = repo.config_file.read_text()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in repo.variables:
            raise FeatureStoreError(f"{repo.config_file}: unknown variable ${{{name}}}")
        return repo.variables[name]

    try:
        raw = yaml.safe_load(_VARIABLE.sub(substitute, text))
    except yaml.YAMLError as exc:
        raise FeatureStoreError(f"{repo.config_file}: not valid YAML") from exc
    if not isinstance(raw, dict):
        raise FeatureStoreError(f"{repo.config_file}: expected a mapping")
    return raw


def open_store(repo: FeatureRepo) -> FeatureStore:
    """A ``FeatureStore`` configured from the repo's yaml with platform paths filled in."""
    from feast import FeatureStore, RepoConfig
    from pydantic import ValidationError

    raw = _render_config(repo)
    registry = raw.get("registry")
    registry_path = registry if isinstance(registry, str) else None
    online = raw.get("online_store") or {}
    for local in (registry_path, online.get("path") if online.get("type") == "sqlite" else None):
        if local and "://" not in local:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
    try:
        config = RepoConfig(repo_path=repo.path, **raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise FeatureStoreError(f"{repo.config_file}: field '{field}': {first['msg']}") from exc
    return FeatureStore(repo_path=str(repo.path), config=config)


def _forget_repo_modules(repo_path: Path) -> None:
    """Drop the repo's definition modules from the import cache. Feast imports them by plain
    name (``<project>_features``), so a cached module would shadow an edited file, or the
    same-named file of another repository."""
    root = repo_path.resolve()
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if location and Path(location).resolve().is_relative_to(root):
            del sys.modules[name]


@contextlib.contextmanager
def _importable(repo_path: Path) -> Iterator[None]:
    """Let Feast import the repo's modules (it resolves them against the working directory),
    freshly from the files as they are now: no cached module, and no bytecode written (a
    ``.pyc`` is trusted by source mtime and size, so an edit within the same second that keeps
    the size, such as a TTL of 62 days changed to 93, would be read from stale bytecode)."""
    _forget_repo_modules(repo_path)
    sys.path.insert(0, str(repo_path))
    no_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        with contextlib.chdir(repo_path):
            yield
    finally:
        sys.dont_write_bytecode = no_bytecode
        sys.path.remove(str(repo_path))
        _forget_repo_modules(repo_path)


def apply(repo: FeatureRepo) -> list[str]:
    """Register every object defined in the repo; delete registered ones no longer defined.

    Returns:
        Names of the objects applied, e.g. ``FeatureService <project>_v1``.
    """
    from feast.repo_operations import extract_objects_for_apply_delete

    store = open_store(repo)
    contents = _parse(repo)
    check_sources(repo.path, contents)
    try:
        to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
            store.project, store.registry, contents
        )
        store.apply(to_apply, objects_to_delete=to_delete, partial=False)
    except Exception as exc:
        raise _explain(exc, repo) from exc
    return sorted(
        f"{type(obj).__name__} {obj.name}" for obj in to_apply if not obj.name.startswith("__")
    )


def _parse(repo: FeatureRepo) -> Any:
    """The objects the repo's definition files declare (Feast's ``RepoContents``)."""
    from feast.repo_operations import parse_repo

    with _importable(repo.path):
        try:
            return parse_repo(repo.path)
        except Exception as exc:
            raise FeatureStoreError(
                f"{repo.path}: feature definitions fail to load: {exc}"
            ) from exc


def defined_feature_services(repo: FeatureRepo) -> list[str]:
    """Names of the feature services the repo's files define (applied or not), sorted."""
    return sorted(s.name for s in _parse(repo).feature_services)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _source_columns(path: Path, view: Any) -> list[str] | None:
    """Column names of a local source, from the parquet footer or the CSV header (no data is
    read); None for formats that are not checked (Delta, ...)."""
    file_format = type(getattr(view.batch_source, "file_format", None)).__name__
    try:
        if path.suffix.lower() == ".csv":
            import csv

            with path.open(newline="", encoding="utf-8") as handle:
                return next(csv.reader(handle), [])
        if file_format not in ("ParquetFormat", "NoneType"):
            return None
        if path.is_dir():
            import pyarrow.dataset as ds

            return list(ds.dataset(str(path), format="parquet").schema.names)
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception as exc:
        raise FeatureStoreError(
            f"{_shown(path)}: source of feature view '{view.name}' is unreadable: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc


def _declared_columns(view: Any, join_keys: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, role) of every column a feature view reads from its batch source: entity join
    keys, event and created timestamps, then the declared fields."""
    source = view.batch_source
    declared = [(join_keys[e], "entity join key") for e in view.entities if e in join_keys]
    declared += [(field.name, "entity join key") for field in view.entity_columns]
    declared += [
        (column, role)
        for column, role in (
            (source.timestamp_field, "timestamp field"),
            (source.created_timestamp_column, "created timestamp column"),
        )
        if column
    ]
    declared += [(field.name, "") for field in view.features]
    unique: dict[str, str] = {}
    for name, role in declared:
        unique.setdefault(name, role)
    return list(unique.items())


def check_sources(repo_path: Path, contents: Any) -> None:
    """Every column a feature view declares (fields, entity join keys, timestamp fields) exists
    in its local source file; Feast only finds out when a join fails.

    Reads the parquet schema or the CSV header, never the data. A source that does not exist
    yet is a warning (materialize skips such views); remote sources are not checked. The check
    itself is :func:`modelops.core.datachecks.check_source_columns`.

    Raises:
        FeatureStoreError: naming the file, the missing column, the feature view and the
            columns the file has.
    """
    check_source_columns(_sources_columns(repo_path, contents))


def _sources_columns(repo_path: Path, contents: Any) -> Iterator[SourceColumns]:
    """What each feature view with a readable local source reads from it, and the file's
    columns, one view at a time."""
    join_keys = {e.name: e.join_key for e in contents.entities if not e.name.startswith("__")}
    for view in [*contents.feature_views, *contents.stream_feature_views]:
        path = _local_source(repo_path, view)
        if path is None:
            continue
        if not path.exists():
            log.warning(
                "%s: source of feature view '%s' does not exist yet; its columns are checked "
                "once it does",
                _shown(path),
                view.name,
            )
            continue
        columns = _source_columns(path, view)
        if columns is None:
            continue
        mapping = getattr(view.batch_source, "field_mapping", None) or {}
        yield SourceColumns(
            source=_shown(path),
            view=view.name,
            declared=_declared_columns(view, join_keys),
            renamed={new: old for old, new in mapping.items()},
            columns=columns,
        )


def _explain(exc: Exception, repo: FeatureRepo) -> Exception:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if any(word in text.lower() for word in ("connection refused", "could not connect", "timeout")):
        return ServiceUnavailableError(f"feature store ({repo.config_file.name}): {text}")
    return FeatureStoreError(f"feature store ({repo.config_file.name}): {text}")


@contextlib.contextmanager
def _feast_output_to_log() -> Iterator[None]:
    """Feast prints progress to stdout; keep it for ``--verbose`` logs instead."""
    import io

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.debug("feast: %s", line.strip())


def _local_source(repo_path: Path, view: Any) -> Path | None:
    """The local file behind a view's batch source (relative paths start at the repo); None
    for views without one and for remote sources (``s3://`` ...)."""
    source = getattr(view, "batch_source", None)
    path = getattr(source, "path", None)
    if not isinstance(path, str) or "://" in path:
        return None
    return Path(path) if Path(path).is_absolute() else repo_path / path


def materialize(repo: FeatureRepo, end: datetime) -> list[MaterializedView]:
    """Incrementally load online features up to ``end``.

    Each view resumes where its last materialization ended; the first run starts at
    ``end - ttl`` (Feast would start at ``now - ttl``, which skips history such as backfills).
    A view whose local parquet source does not exist yet (a project whose data was never
    generated or ingested) is skipped with a warning rather than failing the others.
    """
    store = open_store(repo)
    done: list[MaterializedView] = []
    try:
        views = [fv for fv in store.list_feature_views() if fv.online]
        if not views:
            raise FeatureStoreError("no feature views registered; run 'modelops features apply'")
        for view in views:
            source = _local_source(repo.path, view)
            if source is not None and not source.exists():
                log.warning("skipped %s: its source %s does not exist yet", view.name, source)
                continue
            start = view.most_recent_end_time or end - (view.ttl or timedelta(days=365))
            if start >= end:
                continue
            with _feast_output_to_log(), contextlib.chdir(repo.path):
                store.materialize(start_date=start, end_date=end, feature_views=[view.name])
            done.append(MaterializedView(view.name, start, end))
    except FeatureStoreError:
        raise
    except Exception as exc:
        raise _explain(exc, repo) from exc
    return done


def feature_service(store: FeatureStore, name: str) -> FeatureService:
    """The registered feature service, or a clear error listing the ones that exist."""
    try:
        return store.get_feature_service(name)
    except Exception as exc:
        if type(exc).__name__ != "FeatureServiceNotFoundException":
            raise FeatureStoreError(f"feature registry unreadable: {exc}") from exc
        known = ", ".join(sorted(s.name for s in store.list_feature_services())) or "none"
        raise FeatureStoreError(
            f"feature service '{name}' is not in the Feast registry (registered: {known}); "
            "run 'modelops features apply'"
        ) from exc


def service_features(service: FeatureService) -> list[str]:
    """Output column names of a feature service, in its order."""
    return [
        feature.name
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


@dataclass(frozen=True)
class TypedField:
    """A field as the Feast registry declares it: ``type`` is Feast's type name (INT64, ...)."""

    name: str
    type: str
    description: str = ""


def _type_name(value: Any) -> str:
    return str(getattr(value, "name", None) or value)


def entity_field(store: FeatureStore, join_key: str) -> TypedField | None:
    """The registered entity whose join key is ``join_key``, typed; None if there is none."""
    for entity in store.list_entities():
        if entity.join_key == join_key:
            return TypedField(join_key, _type_name(entity.value_type), entity.description or "")
    return None


def service_request_schema(store: FeatureStore, service: FeatureService) -> list[TypedField]:
    """Request-time fields the service's on-demand views need from the caller, typed, each once
    in the order the views declare them."""
    found: dict[str, TypedField] = {}
    for projection in service.feature_view_projections:
        try:
            odfv = store.get_on_demand_feature_view(projection.name)
        except Exception:
            continue
        for source in odfv.source_request_sources.values():
            for f in source.schema:
                found.setdefault(
                    f.name, TypedField(f.name, _type_name(f.dtype), f.description or "")
                )
    return list(found.values())


def service_request_fields(store: FeatureStore, service: FeatureService) -> list[str]:
    """Request-time fields the service's on-demand views need from the caller."""
    return [f.name for f in service_request_schema(store, service)]


def service_batch_features(
    store: FeatureStore, service: FeatureService
) -> dict[str, tuple[str, ...]]:
    """Feature names the service reads from each of its (not on-demand) feature views."""
    on_demand = {v.name for v in store.list_on_demand_feature_views()}
    return {
        p.name: tuple(f.name for f in p.features)
        for p in service.feature_view_projections
        if p.name not in on_demand
    }


def _strip_volatile(message: Any) -> None:
    """Clear what changes between two reads of one definition: ``meta`` (timestamps stamped when
    the proto is built) and pickled function bodies (their source, ``body_text``, stays)."""
    for field, value in message.ListFields():
        if field.name == "meta" or (field.name == "body" and field.type == field.TYPE_BYTES):
            message.ClearField(field.name)
        elif field.type == field.TYPE_MESSAGE:
            if hasattr(value, "ListFields"):
                _strip_volatile(value)
                continue
            items = value.values() if hasattr(value, "values") else value  # map or repeated
            for item in items:
                if hasattr(item, "ListFields"):
                    _strip_volatile(item)


def join_inputs_digest(
    store: FeatureStore, service: FeatureService, entity_frame: pd.DataFrame
) -> str | None:
    """SHA-256 of everything a point-in-time join reads, or None when that cannot be known.

    Covers the Feast version and offline store, the entity rows, the definition (spec) of every
    view in the service and the bytes of each view's parquet source. Equal digests mean
    :func:`historical_features` would return the same frame, so a caller may reuse an earlier
    result. None when a source is not a local file.
    """
    import hashlib

    import pandas as pd
    from feast import __version__ as feast_version

    engine = f"feast {feast_version}, offline store {store.config.offline_store.type}"
    digest = hashlib.sha256(engine.encode())
    digest.update("|".join(map(str, entity_frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(entity_frame, index=False).to_numpy().tobytes())
    for projection in service.feature_view_projections:
        selected = projection.to_proto()
        _strip_volatile(selected)  # its batch source carries build-time meta too
        digest.update(selected.SerializeToString(deterministic=True))
        view: Any
        try:
            view = store.get_feature_view(projection.name)
        except Exception:
            try:
                view = store.get_on_demand_feature_view(projection.name)
            except Exception:
                return None
        spec = view.to_proto().spec
        _strip_volatile(spec)
        digest.update(spec.SerializeToString(deterministic=True))
        if getattr(view, "batch_source", None) is None:
            continue  # on-demand views: their spec (with the function's source) is all they read
        local = _local_source(Path(store.repo_path), view)
        if local is None or not local.is_file():
            return None
        with local.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def batch_features(store: FeatureStore, service: FeatureService) -> list[str]:
    """Output names of the service's features read from feature views (not computed on demand),
    in the service's order: the ones a point-in-time join can leave missing."""
    return [
        feature.name
        for projection, _ in _batch_views_of(store, service)
        for feature in projection.features
    ]


def _batch_views_of(store: FeatureStore, service: FeatureService) -> list[tuple[Any, Any]]:
    """(projection, feature view) of every view in the service that is not on demand."""
    try:
        on_demand = {v.name for v in store.list_on_demand_feature_views()}
    except Exception as exc:
        raise FeatureStoreError(f"feature registry unreadable: {exc}") from exc
    views = []
    for projection in service.feature_view_projections:
        if projection.name in on_demand:
            continue
        try:
            views.append((projection, store.get_feature_view(projection.name)))
        except Exception as exc:
            raise FeatureStoreError(
                f"feature service '{service.name}': feature view '{projection.name}' is not in "
                "the Feast registry; run 'modelops features apply'"
            ) from exc
    return views


@dataclass(frozen=True)
class _BatchView:
    """What a point-in-time join reads from one feature view's batch source."""

    name: str
    keys: dict[str, str]  # source column -> entity frame column
    source: Path | None  # local parquet file; None for remote or non-parquet sources
    timestamp: str
    created: str | None
    ttl_ns: int | None  # None: no TTL (Feast treats 0 the same way)


def _batch_views(store: FeatureStore, service: FeatureService) -> list[_BatchView]:
    repo_path = Path(store.repo_path)
    views = []
    for projection, view in _batch_views_of(store, service):
        source = view.batch_source
        renamed = {new: old for old, new in (getattr(source, "field_mapping", None) or {}).items()}
        join_keys = projection.join_key_map or {c.name: c.name for c in view.entity_columns}
        local = _local_source(repo_path, view)
        file_format = type(getattr(source, "file_format", None)).__name__
        parquet = file_format == "ParquetFormat" or (
            file_format == "NoneType" and local is not None and local.suffix == ".parquet"
        )
        ttl = view.ttl
        views.append(
            _BatchView(
                name=view.name,
                keys={renamed.get(k, k): v for k, v in join_keys.items()},
                source=local if parquet else None,
                timestamp=source.timestamp_field,
                created=source.created_timestamp_column or None,
                ttl_ns=ttl // timedelta(microseconds=1) * 1_000 if ttl else None,
            )
        )
    return views


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
    """
    import numpy as np
    import pyarrow as pa

    if len(entities) <= JOIN_CHUNK_ROWS:
        return store.get_historical_features(entity_df=entities, features=service).to_df()
    times = entities["event_timestamp"]
    order = np.argsort(
        times.astype("int64").to_numpy() if times.dtype.kind == "M" else np.arange(len(entities)),
        kind="stable",
    )
    tables = []
    for start in range(0, len(order), JOIN_CHUNK_ROWS):
        chunk = entities.take(order[start : start + JOIN_CHUNK_ROWS]).reset_index(drop=True)
        tables.append(store.get_historical_features(entity_df=chunk, features=service).to_arrow())
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
            )
            if known is not None:
                results.append(known)
                continue
            assert source is not None
            try:
                affected, example, example_created = _created_after_event(connection, view)
            except Exception as exc:
                results.append(availability_unreadable(view.name, rows, source, exc))
                continue
            found = None
            if affected:
                found = (int(example), int(event_ns[example]), int(example_created))
            results.append(
                availability_found(
                    view.name, entity_frame, view.keys.values(), int(affected), found
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


def online_features(
    store: FeatureStore, service: FeatureService, rows: list[dict[str, Any]]
) -> pd.DataFrame:
    """The freshest feature values for ``rows`` (entity keys plus request fields)."""
    try:
        return store.get_online_features(features=service, entity_rows=rows).to_df()
    except Exception as exc:
        raise FeatureStoreError(f"online feature read failed: {exc}") from exc


def definitions_digest(store: FeatureStore, service: FeatureService) -> dict[str, str]:
    """SHA-256 per view of what defines the service's features: each view's schema, source,
    TTL and (on-demand) transformation source, without the data and without build-time
    metadata. Equal digests mean the same rows give the same features."""
    import hashlib

    digests: dict[str, str] = {}
    for projection in service.feature_view_projections:
        view: Any
        try:
            view = store.get_feature_view(projection.name)
        except Exception:
            try:
                view = store.get_on_demand_feature_view(projection.name)
            except Exception as exc:
                raise FeatureStoreError(
                    f"feature service '{service.name}': view '{projection.name}' is not "
                    "registered; run 'modelops features apply'"
                ) from exc
        spec = view.to_proto().spec
        _strip_volatile(spec)
        for volatile in ("description", "tags", "owner"):
            if volatile in {f.name for f, _ in spec.ListFields()}:
                spec.ClearField(volatile)
        selected = projection.to_proto()
        _strip_volatile(selected)
        digest = hashlib.sha256(selected.SerializeToString(deterministic=True))
        digest.update(spec.SerializeToString(deterministic=True))
        digests[projection.name] = digest.hexdigest()
    return digests
