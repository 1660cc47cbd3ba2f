"""Training sets, holdouts and references joined on Spark (the cluster profile).

The single-machine path (:mod:`modelops.services.datasets`) holds every joined row in pandas;
this one leaves them in parquet under ``settings.resolved_spark_output``, where the gate and the
monitor read them with Spark, and brings the driver only the data checks' aggregates, judged by
the same rules (:func:`modelops.core.datachecks.check_join`, ``check_availability``) with the
project's tolerances.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modelops.core import datachecks
from modelops.core.errors import ConfigError, FeatureStoreError
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo
from modelops.services.features import project_service

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame as SparkFrame

    from modelops.config.project import Project
    from modelops.config.settings import Settings
    from modelops.integrations.feast.spark_join import SparkJoin
    from modelops.services.datasets import TrainingSet

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def spark_output(settings: Settings, project: Project, name: str) -> str:
    """``<spark_output>/<project>/<name>``: where a joined set of the project is written."""
    if not _NAME.match(name):
        raise ConfigError(f"joined set name {name!r}: letters, digits, '_', '.', '-' only")
    return f"{settings.resolved_spark_output.rstrip('/')}/{project.spec.name}/{name}"


def join_on_spark(
    settings: Settings,
    project: Project,
    entities: SparkFrame | pd.DataFrame,
    name: str,
    *,
    trained_missing: dict[str, float] | None = None,
    store: Any = None,
) -> SparkJoin:
    """Join ``entities`` (entity key, UTC ``event_timestamp``, request fields, labels...) with
    the project's feature service on the settings' Spark, write the rows as parquet
    (:func:`spark_output`), and check them as the single-machine build does.

    Args:
        name: the set's name under the project's output folder, e.g. ``holdout``.
        trained_missing: per-feature missing shares recorded at training (see
            :func:`modelops.services.datasets.build_training_set`).

    Raises:
        DataError: a feature is missing too often, a row got no feature, or a view's rows were
            created after the events they serve (or its availability could not be checked).
        ConfigError: Spark cannot start (Java, pyspark or the master).
    """
    from modelops.integrations.spark.session import spark_session

    spark = spark_session(settings)
    frame = entities if hasattr(entities, "rdd") else spark.createDataFrame(entities)
    store = store or feast_io.open_store(feature_repo(settings))
    service = project_service(settings, project, store)
    result = feast_io.spark_historical_features(
        spark, store, service, frame, spark_output(settings, project, name)
    )
    spec = project.spec
    datachecks.check_join(
        result.report,
        tolerance=spec.data_checks.max_missing_share,
        trained=trained_missing,
        where=f"{name} join of '{spec.feature_service}' on Spark ({project.spec_file.parent.name})",
    )
    datachecks.check_availability(
        result.availability,
        tolerance=spec.data_checks.max_unavailable_share,
        where=f"'{spec.feature_service}' for {spec.name}",
    )
    return result


def build_on_spark(
    settings: Settings,
    store: Any,
    service: Any,
    project: Project,
    entity_frame: pd.DataFrame,
    windows: tuple[str, ...],
    request_fields: list[str],
) -> TrainingSet:
    """:func:`modelops.services.datasets.build_training_set`'s join in the cluster profile:
    Feast's Spark join of the labelled rows (with their ``_window``), its missing-feature
    reports per window and its availability results computed by Spark, then the rows read back
    for training, with the caller's own event times, assembled exactly as the single-machine
    build assembles them."""
    import numpy as np
    import pandas as pd
    from pyspark.sql import functions as F

    from modelops.integrations.feast.spark_join import spark_join_report
    from modelops.integrations.parquet import read_frame
    from modelops.integrations.spark.session import spark_session
    from modelops.services.datasets import assemble

    spark = spark_session(settings)
    rows = entity_frame.assign(**{feast_io.ROW_ID: np.arange(len(entity_frame))})
    output = spark_output(settings, project, f"training-{'-'.join(windows)}")
    result = feast_io.spark_historical_features(
        spark, store, service, spark.createDataFrame(rows), output
    )
    written = spark.read.parquet(result.path)
    stored = feast_io.batch_features(store, service)
    reports = {
        name: spark_join_report(written.where(F.col("_window") == name), stored) for name in windows
    }
    # the caller's own columns (event times to the nanosecond, types) with Spark's features
    # beside them in row order, as the single-machine join merges them back
    added = [c for c in written.columns if c not in rows.columns]
    spark_rows = read_frame(result.path, columns=[feast_io.ROW_ID, *added])
    spark_rows = spark_rows.sort_values(feast_io.ROW_ID, kind="stable").reset_index(drop=True)
    if not np.array_equal(spark_rows[feast_io.ROW_ID].to_numpy(), rows[feast_io.ROW_ID].to_numpy()):
        raise FeatureStoreError("the Spark join lost or added rows")
    joined = pd.concat(
        [entity_frame.reset_index(drop=True), spark_rows.drop(columns=feast_io.ROW_ID)], axis=1
    )
    features = feast_io.service_features(service)
    return assemble(
        project,
        joined,
        windows,
        features,
        request_fields,
        reports,
        result.availability,
    )
