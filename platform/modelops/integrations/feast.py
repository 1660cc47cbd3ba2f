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


@contextlib.contextmanager
def _importable(repo_path: Path) -> Iterator[None]:
    """Let Feast import the repo's modules (it resolves them against the working directory)."""
    sys.path.insert(0, str(repo_path))
    try:
        with contextlib.chdir(repo_path):
            yield
    finally:
        sys.path.remove(str(repo_path))


def apply(repo: FeatureRepo) -> list[str]:
    """Register every object defined in the repo; delete registered ones no longer defined.

    Returns:
        Names of the objects applied, e.g. ``FeatureService credit_risk_v1``.
    """
    from feast.repo_operations import extract_objects_for_apply_delete, parse_repo

    store = open_store(repo)
    with _importable(repo.path):
        try:
            contents = parse_repo(repo.path)
        except Exception as exc:
            raise FeatureStoreError(
                f"{repo.path}: feature definitions fail to load: {exc}"
            ) from exc
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


def service_request_fields(store: FeatureStore, service: FeatureService) -> list[str]:
    """Request-time fields the service's on-demand views need from the caller."""
    fields: list[str] = []
    for projection in service.feature_view_projections:
        try:
            odfv = store.get_on_demand_feature_view(projection.name)
        except Exception:
            continue
        for source in odfv.source_request_sources.values():
            fields.extend(f.name for f in source.schema if f.name not in fields)
    return fields


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
        digest.update(projection.to_proto().SerializeToString(deterministic=True))
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


def historical_features(
    store: FeatureStore, service: FeatureService, entity_frame: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time join: each row gets feature values as of its ``event_timestamp``.

    Every entity row comes back exactly once. Some Feast offline stores (``file``) drop a row
    whose entity has feature rows but none within the view's TTL; such rows are restored here
    with missing features (what Feast returns for an entity it has never seen), so a training set
    never silently loses labelled events, whichever offline store is configured.
    """
    # Offline stores keep microseconds; flooring moves an event earlier, never later, so no
    # feature value from after the event can be joined.
    entities = entity_frame.assign(
        **{
            _ROW_ID: range(len(entity_frame)),
            "event_timestamp": entity_frame["event_timestamp"].dt.floor("us"),
        }
    )
    try:
        # The DuckDB offline store (ibis) resolves file sources against the working directory.
        with contextlib.chdir(store.repo_path):
            job = store.get_historical_features(entity_df=entities, features=service)
            joined = job.to_df()
    except Exception as exc:
        raise FeatureStoreError(f"building the training set failed: {exc}") from exc
    if joined[_ROW_ID].duplicated().any():
        raise FeatureStoreError("point-in-time join returned duplicate rows for one event")
    feature_columns = [c for c in joined.columns if c not in entities.columns]
    restored = entities.merge(joined[[_ROW_ID, *feature_columns]], on=_ROW_ID, how="left")
    dropped = len(entities) - len(joined)
    if dropped:
        log.warning("%d rows had only expired feature values; kept with missing features", dropped)
    return restored.drop(columns=_ROW_ID)


def online_features(
    store: FeatureStore, service: FeatureService, rows: list[dict[str, Any]]
) -> pd.DataFrame:
    """The freshest feature values for ``rows`` (entity keys plus request fields)."""
    try:
        return store.get_online_features(features=service, entity_rows=rows).to_df()
    except Exception as exc:
        raise FeatureStoreError(f"online feature read failed: {exc}") from exc
