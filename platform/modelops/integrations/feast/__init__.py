"""Feast, behind one adapter: the feature repository and its definitions (:mod:`.repo`,
:mod:`.definitions`), the point-in-time join (:mod:`.join`; on Spark, :mod:`.spark_join`) and
the online read of a feature
service (:mod:`.online`). Callers import from here."""

from __future__ import annotations

from modelops.integrations.feast.definitions import (
    TypedField,
    batch_features,
    definitions_digest,
    entity_field,
    feature_service,
    join_inputs_digest,
    service_batch_features,
    service_features,
    service_request_fields,
    service_request_schema,
)
from modelops.integrations.feast.join import (
    JOIN_CHUNK_ROWS,
    availability_violations,
    historical_features,
)
from modelops.integrations.feast.online import (
    DirectReader,
    OnlineRows,
    SdkReader,
    online_reader,
)
from modelops.integrations.feast.repo import (
    FeatureRepo,
    MaterializedView,
    apply,
    check_sources,
    defined_feature_services,
    materialize,
    online_features,
    open_store,
)
from modelops.integrations.feast.spark_join import (
    ROW_ID,
    SparkJoin,
    spark_historical_features,
)

__all__ = [
    "JOIN_CHUNK_ROWS",
    "ROW_ID",
    "DirectReader",
    "FeatureRepo",
    "MaterializedView",
    "OnlineRows",
    "SdkReader",
    "SparkJoin",
    "TypedField",
    "apply",
    "availability_violations",
    "batch_features",
    "check_sources",
    "defined_feature_services",
    "definitions_digest",
    "entity_field",
    "feature_service",
    "historical_features",
    "join_inputs_digest",
    "materialize",
    "online_features",
    "online_reader",
    "open_store",
    "service_batch_features",
    "service_features",
    "service_request_fields",
    "service_request_schema",
    "spark_historical_features",
]
