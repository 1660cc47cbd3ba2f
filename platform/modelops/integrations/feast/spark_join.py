"""Feast: the point-in-time join on Spark (the cluster profile), written as parquet, and the
join's data checks (missing features, availability) computed by Spark aggregations.

The join is Feast's own: :class:`SparkOfflineStore` over the service's feature views, whose
parquet batch sources are read as ``SparkSource`` s of the same files for the join (the repo's
definitions stay ``FileSource`` s, which the DuckDB store of the other profiles reads).
Python-mode on-demand views are applied by :mod:`.on_demand` inside ``mapInArrow``, batch by
batch on the executors, exactly as the single-machine join applies them. The driver never holds
rows: it receives the parquet location, counts and one example row per check.

Event times are microseconds in Spark; an entity time is floored to the microsecond, which
picks the same feature rows as a nanosecond comparison whenever the sources' event times are
whole microseconds (the platform's parquet writers store microseconds, see
:mod:`modelops.integrations.parquet`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.core.datachecks import (
    AvailabilityResult,
    JoinReport,
    availability_precheck,
    availability_unreadable,
)
from modelops.core.errors import FeatureStoreError
from modelops.integrations.feast.definitions import _batch_views, _batch_views_of, _BatchView
from modelops.integrations.feast.on_demand import apply_views, join_plan

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

ROW_ID = "__modelops_row"
"""Column identifying each entity row: the output keeps it, so a consumer can put rows back in
the caller's order or join them with the caller's own columns."""


@dataclass(frozen=True)
class SparkJoin:
    """Where the joined rows are and what the checks found (aggregates only)."""

    path: str  # parquet directory (local or s3a://)
    rows: int
    report: JoinReport
    availability: list[AvailabilityResult]


def _spark_sourced(store: FeatureStore, service: FeatureService) -> list[Any]:
    """The service's batch feature views with their parquet sources as ``SparkSource`` s of
    the same files (absolute paths), for Feast's Spark offline store."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    views = []
    for (projection, view), batch in zip(
        _batch_views_of(store, service), _batch_views(store, service), strict=True
    ):
        source = view.batch_source
        if isinstance(source, SparkSource):
            views.append(view)
            continue
        path = getattr(source, "path", None)
        if not path:
            raise FeatureStoreError(
                f"feature view '{view.name}': its batch source has no path Spark can read"
            )
        spark_path = str(batch.source) if batch.source is not None else str(path)
        spark_path = spark_path.replace("s3://", "s3a://", 1)
        twin = copy.copy(view)
        twin.batch_source = SparkSource(
            name=source.name,
            path=spark_path,
            file_format="parquet",
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column or None,
            field_mapping=dict(getattr(source, "field_mapping", None) or {}),
        )
        twin.projection = projection
        views.append(twin)
    return views


def _spark_config(store: FeatureStore) -> Any:
    """The store's config with Feast's Spark offline store (its own when already spark)."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        SparkOfflineStoreConfig,
    )

    if store.config.offline_store.type == "spark":
        return store.config
    config = store.config.model_copy()
    config._offline_store = SparkOfflineStoreConfig(type="spark")  # type: ignore[assignment]
    return config


def _refs(store: FeatureStore, service: FeatureService) -> list[str]:
    plan = join_plan(store, service)
    if plan.features is not None:
        return plan.features
    on_demand = {v.name for v in store.list_on_demand_feature_views()}
    if any(p.name in on_demand for p in service.feature_view_projections):
        raise FeatureStoreError(
            f"feature service '{service.name}': its on-demand views are applied by Feast, which "
            "the Spark join does not do; use python-mode on-demand views"
        )
    return [
        f"{p.name_to_use()}:{f.name}" for p in service.feature_view_projections for f in p.features
    ]


def _with_views(store: FeatureStore, service: FeatureService, joined: SparkFrame) -> SparkFrame:
    """``joined`` with the service's python-mode on-demand views applied batch by batch, their
    outputs typed as the views declare them (a batch whose outputs are all missing would
    otherwise infer Arrow's null type)."""
    import pyarrow as pa
    from feast.type_map import feast_value_type_to_pa
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    plan = join_plan(store, service)
    if not plan.views:
        return joined
    fields = list(to_arrow_schema(joined.schema, timezone="UTC"))
    for own in plan.views:
        for feature in own.view.features:
            if feature.name in own.outputs:
                arrow_type = feast_value_type_to_pa(feature.dtype.to_value_type())
                fields.append(pa.field(feature.name, arrow_type))
    target = pa.schema(fields)
    schema = from_arrow_schema(target, prefer_timestamp_ntz=False)

    def transform(batches: Any) -> Any:
        for batch in batches:
            table = apply_views(plan, pa.Table.from_batches([batch]))
            yield from table.select(target.names).cast(target).to_batches()

    return joined.mapInArrow(transform, schema)


def spark_historical_features(
    spark: SparkSession,
    store: FeatureStore,
    service: FeatureService,
    entities: SparkFrame,
    output: str,
) -> SparkJoin:
    """Point-in-time join of ``entities`` (a Spark frame with the entity keys, a UTC
    ``event_timestamp`` and any other columns, e.g. labels) with the service's features on
    Spark, written as parquet to ``output`` (overwritten), with its data checks.

    Every entity row comes back exactly once, with the feature values as of its event time
    (latest feature row at or before it, within the view's TTL; missing beyond it), plus the
    column :data:`ROW_ID`.

    Raises:
        FeatureStoreError: the join failed, or returned a row twice.
    """
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore
    from pyspark.sql import functions as F

    if "event_timestamp" not in entities.columns:
        raise FeatureStoreError("entity rows: no 'event_timestamp' column")
    numbered = _numbered(entities)
    try:
        job = SparkOfflineStore.get_historical_features(
            config=_spark_config(store),
            feature_views=_spark_sourced(store, service),
            feature_refs=_refs(store, service),
            entity_df=numbered,
            registry=store.registry,
            project=store.project,
            full_feature_names=False,
        )
        joined = _with_views(store, service, job.to_spark_df())  # type: ignore[attr-defined]
        joined.write.mode("overwrite").parquet(output)
    except FeatureStoreError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatureStoreError(f"building the training set on Spark failed: {first}") from exc
    written = spark.read.parquet(output)
    counts = _first(written.agg(F.count("*").alias("rows"), F.countDistinct(ROW_ID).alias("ids")))
    rows = int(counts["rows"])
    if rows != int(counts["ids"]):
        raise FeatureStoreError("point-in-time join returned duplicate rows for one event")
    report = spark_join_report(written, _batch_feature_names(store, service))
    availability = spark_availability(spark, store, service, numbered)
    return SparkJoin(output, rows, report, availability)


def _numbered(entities: SparkFrame) -> SparkFrame:
    """``entities`` with a unique :data:`ROW_ID` increasing in their order (the caller's own
    when present). Spark's ids are stable for a frame read from files or made from pandas;
    give your own for a frame whose partitioning is not deterministic."""
    from pyspark.sql import functions as F

    if ROW_ID in entities.columns:
        return entities
    return entities.withColumn(ROW_ID, F.monotonically_increasing_id())


def _batch_feature_names(store: FeatureStore, service: FeatureService) -> list[str]:
    return [
        f.name for projection, _ in _batch_views_of(store, service) for f in projection.features
    ]


def spark_join_report(joined: SparkFrame, features: list[str]) -> JoinReport:
    """:func:`modelops.core.datachecks.join_report` of a Spark frame, by one aggregation: the
    missing share of each feature and the rows that got none (one described, the lowest
    :data:`ROW_ID`)."""
    from pyspark.sql import functions as F

    present = [F.col(f).isNotNull() if f in joined.columns else F.lit(False) for f in features]
    anything = F.greatest(*present) if len(present) > 1 else (present[0] if present else None)
    aggregates = [F.count("*").alias("__rows")]
    aggregates += [F.sum(p.cast("long")).alias(f"__n{i}") for i, p in enumerate(present)]
    if anything is not None:
        lost = ~anything
        aggregates += [
            F.sum(lost.cast("long")).alias("__lost"),
            F.min(F.when(lost, F.col(ROW_ID))).alias("__example"),
        ]
    totals = _first(joined.agg(*aggregates))
    rows = int(totals["__rows"])
    missing = {
        f: (1.0 - int(totals[f"__n{i}"] or 0) / rows) if rows else 0.0
        for i, f in enumerate(features)
    }
    lost_rows = int(totals["__lost"] or 0) if anything is not None else 0
    example = ""
    if lost_rows:
        row = _first(
            joined.where(F.col(ROW_ID) == totals["__example"]).withColumn(
                "__us", F.unix_micros("event_timestamp")
            )
        )
        keys = [f"{c}={row[c]!r}" for c in joined.columns if c.endswith("_id")]
        shown = ", ".join(keys) or f"row {totals['__example']}"
        example = f"{shown} at {_iso(row['__us'])}"
    return JoinReport(rows, missing, lost_rows, example)


def spark_availability(
    spark: SparkSession, store: FeatureStore, service: FeatureService, entities: SparkFrame
) -> list[AvailabilityResult]:
    """:func:`modelops.integrations.feast.join.availability_violations` on Spark: per feature
    view, the entity rows whose point-in-time joined row (latest event time at or before the
    event, within the TTL, ties broken by the latest created time) was created after the
    event. Counted by Spark; only the count and one example reach the driver."""
    rows = entities.count()
    results: list[AvailabilityResult] = []
    for view in _batch_views(store, service):
        source = None if view.source is None else str(view.source)
        known = availability_precheck(
            view.name,
            rows,
            has_created=bool(view.created),
            source=source,
            source_exists=view.source is not None and view.source.exists(),
            columns=view.features,
        )
        if known is not None:
            results.append(known)
            continue
        assert source is not None
        try:
            results.append(_view_availability(spark, view, source, entities, rows))
        except Exception as exc:
            results.append(availability_unreadable(view.name, rows, source, exc, view.features))
    return results


def _view_availability(
    spark: SparkSession, view: _BatchView, source: str, entities: SparkFrame, rows: int
) -> AvailabilityResult:
    from pyspark.sql import functions as F

    assert view.created is not None
    src = spark.read.parquet(source)
    keys = list(view.keys)
    per_time = (
        src.where(F.col(view.timestamp).isNotNull())
        .groupBy(
            *[F.col(k).alias(f"__k{i}") for i, k in enumerate(keys)],
            F.col(view.timestamp).alias("__f"),
        )
        .agg(F.max(view.created).alias("__c"))
    )
    entity = entities.select(
        F.col(ROW_ID),
        F.col("event_timestamp").alias("__e"),
        *[F.col(v) for v in view.keys.values()],
    )
    on = [entity[column] == per_time[f"__k{i}"] for i, column in enumerate(view.keys.values())]
    on.append(per_time["__f"] <= entity["__e"])
    candidates = entity.join(per_time, on, "inner")
    # the joined row: the latest event time at or before the event (its created time is the
    # latest one at that time, as Feast breaks ties)
    picked = candidates.groupBy(ROW_ID, "__e").agg(
        F.max_by(F.struct("__f", "__c"), "__f").alias("p")
    )
    picked = picked.select(ROW_ID, "__e", F.col("p.__f").alias("__f"), F.col("p.__c").alias("__c"))
    if view.ttl_ns is not None:
        ttl_us = view.ttl_ns // 1_000
        picked = picked.where(F.unix_micros("__f") + ttl_us >= F.unix_micros("__e"))
    late = picked.where(F.col("__c") > F.col("__e"))
    found = _first(
        late.agg(
            F.count("*").alias("n"),
            F.min_by(
                F.struct(
                    F.col(ROW_ID),
                    F.unix_micros("__e").alias("__e"),
                    F.unix_micros("__c").alias("__c"),
                ),
                ROW_ID,
            ).alias("x"),
        )
    )
    affected = int(found["n"])
    reason = ""
    if affected:
        example = found["x"]
        key_row = _first(entities.where(F.col(ROW_ID) == example[ROW_ID]))
        key = ", ".join(f"{c}={key_row[c]!r}" for c in view.keys.values())
        reason = (
            f"e.g. {key} at {_iso(example['__e'])} was joined with a row created at "
            f"{_iso(example['__c'])}"
        )
    return AvailabilityResult(view.name, True, affected, rows, reason, view.features)


def _iso(micros: int) -> str:
    """A time Spark gave as microseconds since the epoch (``unix_micros``: no dependence on the
    driver's local time zone, which Spark uses when it hands out a timestamp), in ISO 8601 UTC."""
    import pandas as pd

    return pd.Timestamp(int(micros) * 1_000, tz="UTC").isoformat()


def _first(frame: SparkFrame) -> Any:
    """The first row of a frame that has one (an aggregation always does)."""
    row = frame.first()
    if row is None:
        raise FeatureStoreError("a Spark aggregation returned no row")
    return row
