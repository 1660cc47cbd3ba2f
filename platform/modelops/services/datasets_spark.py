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
from modelops.core.errors import ConfigError
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo
from modelops.services.features import project_service

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame as SparkFrame

    from modelops.config.project import Project
    from modelops.config.settings import Settings
    from modelops.integrations.feast.spark_join import SparkJoin

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
