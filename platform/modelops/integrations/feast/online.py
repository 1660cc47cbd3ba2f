"""Feast: a feature service's online values, read directly from the online store.

``FeatureStore.get_online_features`` re-resolves the service's references, builds a response
protobuf, converts it to Arrow or dicts for the on-demand views and back, on every call: about
five times the cost of the store read itself. :class:`DirectReader` resolves the service once
and then, per call, does only what the values need, each step with Feast's own code:

- entity keys: ``feast.type_map.python_values_to_proto_values`` with the entity's value type
  (what the SDK does with native entity values), keyed by each online store's own
  ``online_read`` (``serialize_entity_key`` with the repo's ``entity_key_serialization_version``;
  on Redis ``_redis_key`` and ``_mmh3`` field names, on SQLite the ``entity_key`` column);
- values: the store's ``ValueProto`` messages through ``feast_value_type_to_python_type`` with the
  field's declared type (what ``OnlineResponse.to_dict`` does);
- on-demand views in python mode: the view's own function (``PythonTransformation.udf``, as
  ``transform`` calls it) on the inputs the SDK hands it (source features, request fields and
  join key, each as its declared type gives it back), outputs as the view's declared types give
  them back; no pandas, no Arrow.

Only stores whose read path is tested for parity with the SDK (SQLite, Redis, exactly those
classes) and services the reader understands (one join key; python-mode, non-singleton on-demand
views without aggregations, not written online; no aliased or versioned projections) are read
directly; anything else gets :class:`SdkReader` (``get_online_features``), with the reason logged.

Like the SDK on its per-view path, a row past its view's TTL is returned as present: Feast 0.67
checks ``OUTSIDE_MAX_AGE`` only for precomputed feature vectors. Unlike the SDK on Redis, a key
the store does not hold is missing (the SDK reports its empty values as present), and request
fields take their declared type (the SDK types them by the first row's value).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)

# feast.protos.feast.serving.ServingService_pb2.FieldStatus
_NOT_FOUND = 3
_OUTSIDE_MAX_AGE = 4
DIRECT_STORES = (
    "feast.infra.online_stores.sqlite.SqliteOnlineStore",
    "feast.infra.online_stores.redis.RedisOnlineStore",
)


@dataclass(frozen=True)
class OnlineRows:
    """Values per feature name (one per row) and, per batch view, whether each row was found."""

    columns: dict[str, list[Any]]
    found: dict[str, list[bool]]


@dataclass(frozen=True)
class _View:
    view: Any  # feast.FeatureView
    features: tuple[str, ...]  # read from the store
    types: tuple[Any, ...]  # ValueType per feature


@dataclass(frozen=True)
class _OnDemand:
    udf: Any  # the view's function: dict of lists in, dict of lists out
    inputs: tuple[str, ...]  # source features it reads
    requests: tuple[tuple[str, Any], ...]  # request field and ValueType
    outputs: tuple[tuple[str, Any], ...]  # feature served and ValueType


class SdkReader:
    """``get_online_features`` of the service: any store, any on-demand view."""

    kind = "sdk"

    def __init__(
        self, store: FeatureStore, service: Any, views: Mapping[str, Sequence[str]]
    ) -> None:
        self._store = store
        self._service = service
        self._views = {name: tuple(features) for name, features in views.items()}

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRows:
        response = self._store.get_online_features(
            features=self._service, entity_rows=[dict(r) for r in rows]
        )
        columns = response.to_dict()
        proto = response.proto
        statuses = {
            name: result.statuses
            for name, result in zip(proto.metadata.feature_names.val, proto.results, strict=True)
        }
        found: dict[str, list[bool]] = {}
        for view, features in self._views.items():
            found[view] = [
                all(
                    statuses.get(f) is not None
                    and statuses[f][i] not in (_NOT_FOUND, _OUTSIDE_MAX_AGE)
                    for f in features
                )
                for i in range(len(rows))
            ]
        return OnlineRows(columns=columns, found=found)

    def probe(self, key: str, value: Any) -> None:
        for view, features in self._views.items():
            if features:
                self._store.get_online_features(
                    features=[f"{view}:{features[0]}"], entity_rows=[{key: value}]
                )
                return


_PLAIN = frozenset(("double_val", "float_val", "int64_val", "int32_val", "bool_val", "bytes_val"))


@functools.cache
def _feast_conversion() -> tuple[Any, Any]:
    from feast.type_map import feast_value_type_to_python_type
    from feast.value_type import ValueType

    return feast_value_type_to_python_type, ValueType.STRING


def _to_python(value: Any, value_type: Any) -> Any:
    """``feast_value_type_to_python_type``, with its identity cases (plain scalars, and strings
    of a ``STRING`` field) answered without the call."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    convert, string = _feast_conversion()
    if kind in _PLAIN or (kind == "string_val" and value_type is string):
        return getattr(value, kind)
    return convert(value, value_type)


# Python types whose round trip through a field's ValueProto is the identity, per ValueType name
_SAME = {"DOUBLE": float, "INT64": int, "STRING": str, "BOOL": bool}


def _as_declared(values: list[Any], value_type: Any) -> list[Any]:
    """``values`` as they come back from the field's ``ValueProto`` (what the SDK hands an
    on-demand view and returns from it): Feast's conversion, skipped when it is the identity
    (``None``, or exactly the field's Python type: ``float`` for ``Float64``, ...)."""
    from feast.type_map import python_values_to_proto_values

    same = _SAME.get(value_type.name)
    if same is not None and all(v is None or type(v) is same for v in values):
        return values
    return [_to_python(v, value_type) for v in python_values_to_proto_values(values, value_type)]


def _stored(timestamp: Any, values: Mapping[str, Any] | None) -> bool:
    """Whether ``online_read`` found a row. SQLite answers ``(None, None)`` for a key it does not
    hold; Redis answers an empty value per feature stamped 1970-01-01 (no ``_ts`` field), which
    the SDK then reports as present: a row of only empty values at the epoch is no row."""
    if values is None:
        return False
    if timestamp is None or timestamp.timestamp() != 0:
        return True
    return any(value.WhichOneof("val") is not None for value in values.values())


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class DirectReader:
    """The service's views read with the online store's own ``online_read``; see the module."""

    kind = "direct"

    def __init__(
        self,
        store: FeatureStore,
        join_key: str,
        key_type: Any,
        views: Sequence[_View],
        on_demand: Sequence[_OnDemand],
    ) -> None:
        self._config = store.config
        self._join_key = join_key
        self._key_type = key_type
        self._views = tuple(views)
        self._on_demand = tuple(on_demand)
        self._local = threading.local()  # one online store (one connection) per thread

    def _online_store(self) -> Any:
        online = getattr(self._local, "store", None)
        if online is None:
            from feast.infra.online_stores.helpers import get_online_store_from_config

            online = get_online_store_from_config(self._config.online_store)
            self._local.store = online
        return online

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRows:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values

        keys = [row[self._join_key] for row in rows]
        slot: dict[Any, int] = {}
        where = [slot.setdefault((type(k), k), len(slot)) for k in keys]
        unique: list[Any] = [None] * len(slot)
        for k, i in zip(keys, where, strict=True):
            unique[i] = k
        key_protos = python_values_to_proto_values(unique, self._key_type)
        entity_keys = [EntityKey(join_keys=[self._join_key], entity_values=[v]) for v in key_protos]
        online = self._online_store()
        empty = Value()
        columns: dict[str, list[Any]] = {}
        found: dict[str, list[bool]] = {}
        for spec in self._views:
            read = online.online_read(self._config, spec.view, entity_keys, list(spec.features))
            per_key = [values if _stored(ts, values) else None for ts, values in read]
            found[spec.view.name] = [per_key[i] is not None for i in where]
            for name, value_type in zip(spec.features, spec.types, strict=True):
                by_key = [
                    _to_python(values.get(name, empty), value_type) if values else None
                    for values in per_key
                ]
                columns[name] = [by_key[i] for i in where]
        if self._on_demand:
            keys_back = [_to_python(v, self._key_type) for v in key_protos]
            key_column = [keys_back[i] for i in where]
            for transform in self._on_demand:
                columns.update(_transform(transform, rows, columns, self._join_key, key_column))
        return OnlineRows(columns=columns, found=found)

    def probe(self, key: str, value: Any) -> None:
        """One stored feature of the first view for one key: raises when the store cannot
        answer (an absent key is an answer)."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values as to_protos

        del key
        entity = EntityKey(
            join_keys=[self._join_key], entity_values=to_protos([value], self._key_type)
        )
        spec = self._views[0]
        self._online_store().online_read(self._config, spec.view, [entity], [spec.features[0]])


def _transform(
    spec: _OnDemand,
    rows: Sequence[Mapping[str, Any]],
    columns: Mapping[str, list[Any]],
    join_key: str,
    key_column: list[Any],
) -> dict[str, list[Any]]:
    """One python-mode on-demand view, as ``_augment_response_with_on_demand_transforms`` runs
    it: the view's own function on its inputs in their declared types (``PythonTransformation.
    transform`` calls it the same way), its outputs through the view's schema."""
    inputs: dict[str, list[Any]] = {name: columns[name] for name in spec.inputs}
    for name, value_type in spec.requests:
        inputs[name] = _as_declared([row[name] for row in rows], value_type)
    inputs[join_key] = key_column
    outputs = spec.udf(inputs)
    result: dict[str, list[Any]] = {}
    for name, value_type in spec.outputs:
        values = outputs[name]
        result[name] = _as_declared(values if isinstance(values, list) else [values], value_type)
    return result


def online_reader(
    store: FeatureStore, service: FeatureService, views: Mapping[str, Sequence[str]]
) -> DirectReader | SdkReader:
    """The direct reader where it is known to agree with the SDK, else the SDK's own read.

    ``views``: the service's batch views and their features (a row is missing from a view
    when the store holds none for its key)."""
    direct, reason = _direct(store, service)
    if direct is None:
        log.info("online reads through the Feast SDK: %s", reason)
        return SdkReader(store, service, views)
    return direct


def _direct(store: FeatureStore, service: FeatureService) -> tuple[DirectReader | None, str]:
    from feast.infra.online_stores.helpers import get_online_store_from_config

    online = get_online_store_from_config(store.config.online_store)
    if _class_path(online) not in DIRECT_STORES:
        return None, f"no direct reader for the online store {_class_path(online)}"
    on_demand_names = {v.name for v in store.list_on_demand_feature_views()}
    batch: dict[str, list[str]] = {}
    on_demand: list[_OnDemand] = []
    for projection in service.feature_view_projections:
        if projection.name_alias or getattr(projection, "version_tag", None) is not None:
            return None, f"projection {projection.name} is aliased or versioned"
        if projection.name not in on_demand_names:
            batch.setdefault(projection.name, [])
            batch[projection.name] += [f.name for f in projection.features]
            continue
        odfv = store.get_on_demand_feature_view(projection.name)
        if (
            odfv.mode != "python"
            or odfv.singleton
            or odfv.aggregations
            or odfv.write_to_online_store
        ):
            return None, (
                f"on-demand view {odfv.name} is in {odfv.mode} mode"
                + (" (singleton)" if odfv.singleton else "")
                + (" with aggregations" if odfv.aggregations else "")
                + (" written online" if odfv.write_to_online_store else "")
            )
        inputs = []
        for source in odfv.source_feature_view_projections.values():
            if source.name_alias:
                return None, f"on-demand view {odfv.name} reads an aliased view"
            names = [f.name for f in source.features]
            batch.setdefault(source.name, [])
            batch[source.name] += [n for n in names if n not in batch[source.name]]
            inputs += names
        requests = tuple(
            (f.name, f.dtype.to_value_type())
            for source in odfv.source_request_sources.values()
            for f in source.schema
        )
        wanted = {f.name for f in projection.features}
        outputs = tuple(
            (f.name, f.dtype.to_value_type()) for f in odfv.features if f.name in wanted
        )
        udf = getattr(odfv.feature_transformation, "udf", None)
        if udf is None:
            return None, f"on-demand view {odfv.name} has no python function"
        on_demand.append(_OnDemand(udf, tuple(inputs), requests, outputs))
    views: list[_View] = []
    join_key: str | None = None
    key_type: Any = None
    for name, features in batch.items():
        view = store.get_feature_view(name)
        if len(view.entity_columns) != 1:
            return None, f"view {name} has {len(view.entity_columns)} join keys (direct: one)"
        column = view.entity_columns[0]
        if join_key not in (None, column.name):
            return None, f"views are keyed by {join_key} and {column.name} (direct: one key)"
        join_key, key_type = column.name, column.dtype.to_value_type()
        types = {f.name: f.dtype.to_value_type() for f in view.features}
        unique = tuple(dict.fromkeys(features))
        views.append(_View(view, unique, tuple(types[f] for f in unique)))
    if join_key is None:
        return None, "the service reads no batch view"
    return DirectReader(store, join_key, key_type, views, on_demand), ""
