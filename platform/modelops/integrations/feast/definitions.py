"""Feast: what a feature service is made of (features, request fields, batch views, types) and
the digests that say when its definitions or inputs changed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import FeatureStoreError
from modelops.integrations.feast.repo import _local_source

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore


log = logging.getLogger(__name__)


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
    features: tuple[str, ...] = ()  # the columns the service reads from the view


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
                features=tuple(f.name for f in projection.features),
            )
        )
    return views


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
