"""The point-in-time join on Spark equals the DuckDB join, row for row and value for value, on
seeded awkward data: ties in event time broken by created time, rows beyond the TTL, entities
with no history, missing values, feature rows created after the events they would serve. So do
its data checks (missing shares, rows without features, availability)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from modelops.config.settings import Settings
from modelops.core import datachecks
from modelops.integrations import feast as feast_io
from modelops.integrations.feast.spark_join import ROW_ID, spark_historical_features
from modelops.services import features
from modelops.services.context import feature_repo

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration

_FEATURES = {
    "inflow_total": "float64",
    "outflow_total": "float64",
    "balance_mean": "float64",
    "balance_min": "float64",
    "balance_volatility": "float64",
    "negative_balance_days": "int64",
    "revenue_trend": "float64",
    "company_age_months": "int64",
    "sector": "object",
}


def _monthly(rng: np.random.Generator) -> pd.DataFrame:
    """Monthly rows of 30 companies, some months skipped (gaps beyond the 62-day TTL), a few
    rows sharing an event time with different created times, some values missing, and some
    created weeks after their event time."""
    rows = []
    months = pd.date_range("2023-01-31 23:59:59", periods=18, freq="ME", tz="UTC")
    for company in range(1, 31):
        for month in months:
            if rng.random() < 0.2:
                continue  # gaps: some entity events find only expired rows
            created = month + pd.Timedelta(hours=int(rng.integers(1, 24 * 40)))
            copies = 2 if rng.random() < 0.08 else 1  # a restatement at the same event time
            for copy in range(copies):
                inflow = float(rng.normal(50_000, 15_000))
                rows.append(
                    {
                        "company_id": company,
                        "event_timestamp": month,
                        "created_timestamp": created + pd.Timedelta(days=3 * copy),
                        "inflow_total": np.nan if rng.random() < 0.05 else inflow,
                        "outflow_total": inflow * float(rng.uniform(0.6, 1.1)),
                        "balance_mean": float(rng.normal(10_000, 3_000)),
                        "balance_min": float(rng.normal(-500, 300)),
                        "balance_volatility": float(rng.gamma(2.0, 500.0)),
                        "negative_balance_days": int(rng.integers(0, 10)),
                        "revenue_trend": float(rng.normal(0, 0.1)),
                        "company_age_months": int(rng.integers(6, 200)),
                        "sector": str(rng.choice(["retail", "services", "manufacturing"])),
                    }
                )
    frame = pd.DataFrame(rows)
    for column in ("event_timestamp", "created_timestamp"):
        frame[column] = frame[column].astype("datetime64[us, UTC]")
    return frame


def _entities(rng: np.random.Generator, count: int) -> pd.DataFrame:
    start = pd.Timestamp("2023-01-15", tz="UTC").value // 1_000
    end = pd.Timestamp("2024-09-30", tz="UTC").value // 1_000
    micros = rng.integers(start, end, size=count)
    return pd.DataFrame(
        {
            "company_id": rng.integers(1, 36, size=count),  # 31..35 have no history at all
            "event_timestamp": pd.to_datetime(micros, unit="us", utc=True),
            "requested_amount": rng.uniform(1_000, 200_000, size=count).round(2),
            "label": rng.integers(0, 2, size=count),
        }
    )


def _write_empty_fraud_source(data: Path) -> None:
    columns = [
        "account_id",
        "event_timestamp",
        "created_timestamp",
        "txn_count_1h",
        "txn_amount_1h",
        "txn_count_24h",
        "txn_amount_24h",
        "txn_count_7d",
        "txn_amount_7d",
        "distinct_merchants_24h",
        "account_age_days",
    ]
    pd.DataFrame(columns=columns).astype(
        {"event_timestamp": "datetime64[us, UTC]", "created_timestamp": "datetime64[us, UTC]"}
    ).to_parquet(data / "fraud_account_activity.parquet")


@pytest.fixture
def credit_store(workspace: Settings) -> Any:
    rng = np.random.default_rng(20)
    data = workspace.data_dir
    data.mkdir(parents=True, exist_ok=True)
    _monthly(rng).to_parquet(data / "credit_company_monthly.parquet", index=False)
    _write_empty_fraud_source(data)
    features.apply(workspace)
    return feast_io.open_store(feature_repo(workspace))


def _comparable(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    for column in columns:
        if column in _FEATURES and _FEATURES[column] != "object":
            out[column] = out[column].astype("float64")  # int with missing values: float or Int64
    return out.reset_index(drop=True)


def test_the_spark_join_equals_the_duckdb_join(
    spark: SparkSession, credit_store: Any, tmp_path: Path
) -> None:
    store = credit_store
    service = feast_io.feature_service(store, "credit_risk_v1")
    entities = _entities(np.random.default_rng(7), 600)

    duck = feast_io.historical_features(store, service, entities)
    duck_availability = feast_io.availability_violations(
        store, service, entities[["company_id", "event_timestamp"]]
    )
    batch = feast_io.batch_features(store, service)
    duck_report = datachecks.join_report(duck, batch)

    frame = spark.createDataFrame(entities.assign(**{ROW_ID: np.arange(len(entities))}))
    output = str(tmp_path / "joined")
    result = spark_historical_features(spark, store, service, frame, output)

    joined = pd.read_parquet(output).sort_values(ROW_ID).reset_index(drop=True)
    assert joined[ROW_ID].tolist() == list(range(len(entities)))
    columns = [
        "company_id",
        "event_timestamp",
        "requested_amount",
        "label",
        *_FEATURES,
        "requested_to_inflow",
    ]
    pd.testing.assert_frame_equal(
        _comparable(joined, columns), _comparable(duck, columns), check_exact=True
    )
    # the seeded data exercises what the join must get right
    assert 0 < joined["inflow_total"].isna().mean() < 0.5
    assert joined.loc[joined["company_id"] > 30, "inflow_total"].isna().all()

    assert result.rows == len(entities)
    assert result.report == duck_report
    assert result.report.rows_without_features > 0
    assert result.availability == duck_availability
    assert any(a.affected_rows for a in result.availability)


def test_the_checks_of_a_spark_join_fail_as_the_single_machine_ones_do(
    spark: SparkSession, credit_store: Any, workspace: Settings
) -> None:
    """The seeded rows break the project's data checks: the build on Spark refuses them with
    the single-machine build's message, after writing the rows where it says."""
    from modelops.core.errors import DataError
    from modelops.services.context import project as load_project
    from modelops.services.datasets_spark import join_on_spark, spark_output

    project = load_project(workspace, "credit_risk")
    checks = project.spec.data_checks
    entities = _entities(np.random.default_rng(11), 300)
    service = feast_io.feature_service(credit_store, "credit_risk_v1")
    duck = feast_io.historical_features(credit_store, service, entities)
    report = datachecks.join_report(duck, feast_io.batch_features(credit_store, service))
    availability = feast_io.availability_violations(
        credit_store, service, entities[["company_id", "event_timestamp"]]
    )
    with pytest.raises(DataError) as expected:
        datachecks.check_join(report, tolerance=checks.max_missing_share, trained=None, where="x")
        datachecks.check_availability(
            availability, tolerance=checks.max_unavailable_share, where="x"
        )
    with pytest.raises(DataError) as refused:
        join_on_spark(workspace, project, entities, "holdout", store=credit_store)
    assert str(refused.value).split(": ", 1)[1] == str(expected.value).split(": ", 1)[1]
    output = spark_output(workspace, project, "holdout")
    assert output == str(workspace.resolved_state_dir / "spark" / "credit_risk" / "holdout")
    assert len(pd.read_parquet(output)) == len(entities)


def test_a_training_set_built_on_spark_equals_the_single_machine_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    """``build_training_set`` in the cluster profile (join and checks on Spark) gives the
    embedded profile's training set: the same rows, values, types, fingerprints and checks."""
    from datetime import UTC, datetime

    from modelops.config.settings import load_settings
    from modelops.services import data, datasets
    from modelops.services.context import project as load_project
    from support import copy_workspace

    embedded = load_settings(copy_workspace(tmp_path / "repo"))
    data.generate(embedded, ["credit_risk"], rows=1500, seed=13)
    features.apply(embedded)
    cluster = embedded.model_copy(update={"profile": "cluster"})
    store = feast_io.open_store(feature_repo(embedded))
    project = load_project(embedded, "credit_risk")
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    windows = ("train", "holdout")

    single = datasets.build_training_set(embedded, project, as_of, windows=windows, store=store)
    spread = datasets.build_training_set(cluster, project, as_of, windows=windows, store=store)

    assert Path(cluster.resolved_spark_output, "credit_risk", "training-train-holdout").is_dir()
    for name in windows:
        pd.testing.assert_frame_equal(spread.frames[name], single.frames[name], check_exact=True)
    assert spread.fingerprints == single.fingerprints
    assert spread.joins == single.joins
    assert spread.availability == single.availability
    assert (spread.features, spread.request_fields) == (single.features, single.request_fields)
