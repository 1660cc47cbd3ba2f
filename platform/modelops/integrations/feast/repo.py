"""Feast: the feature repository (config, apply, source checks, materialization) and online
reads."""

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
    SourceColumns,
    check_source_columns,
)
from modelops.core.errors import FeatureStoreError, ServiceUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore


log = logging.getLogger(__name__)


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


def online_features(
    store: FeatureStore, service: FeatureService, rows: list[dict[str, Any]]
) -> pd.DataFrame:
    """The freshest feature values for ``rows`` (entity keys plus request fields)."""
    try:
        return store.get_online_features(features=service, entity_rows=rows).to_df()
    except Exception as exc:
        raise FeatureStoreError(f"online feature read failed: {exc}") from exc
