"""The feature repo joins features as of each event: a later value never reaches an earlier row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from modelops.config.settings import Settings
from modelops.integrations import feast as feast_io
from modelops.services import features
from modelops.services.context import feature_repo


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _monthly_row(company: int, at: str, inflow: float, negative_days: int) -> dict[str, object]:
    return {
        "company_id": company,
        "event_timestamp": _ts(at),
        "created_timestamp": _ts(at) + pd.Timedelta(days=1),
        "inflow_total": inflow,
        "outflow_total": inflow * 0.9,
        "balance_mean": 1000.0,
        "balance_min": -50.0,
        "balance_volatility": 10.0,
        "negative_balance_days": negative_days,
        "revenue_trend": 0.0,
        "company_age_months": 24,
        "sector": "retail",
    }


@pytest.fixture
def store_with_history(workspace: Settings) -> object:
    data = workspace.data_dir
    data.mkdir(parents=True)
    pd.DataFrame(
        [
            _monthly_row(1, "2024-01-31 23:59:59", 10_000.0, 0),
            _monthly_row(1, "2024-02-29 23:59:59", 99_999.0, 31),  # written after the application
            _monthly_row(2, "2023-06-30 23:59:59", 5_000.0, 3),  # older than the 62-day TTL
        ]
    ).to_parquet(data / "credit_company_monthly.parquet")
    pd.DataFrame(
        columns=[
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
    ).astype(
        {"event_timestamp": "datetime64[us, UTC]", "created_timestamp": "datetime64[us, UTC]"}
    ).to_parquet(data / "fraud_account_activity.parquet")
    features.apply(workspace)
    return feast_io.open_store(feature_repo(workspace))


def test_feature_written_after_the_label_time_never_reaches_the_row(
    store_with_history: object,
) -> None:
    store = store_with_history
    service = feast_io.feature_service(store, "credit_risk_v1")  # type: ignore[arg-type]
    entities = pd.DataFrame(
        {
            "company_id": [1, 1, 2],
            "event_timestamp": [_ts("2024-02-15"), _ts("2024-03-10"), _ts("2024-02-15")],
            "requested_amount": [20_000.0, 20_000.0, 1_000.0],
        }
    )
    joined = feast_io.historical_features(store, service, entities)  # type: ignore[arg-type]
    joined = joined.sort_values(["company_id", "event_timestamp"]).reset_index(drop=True)

    before, after, stale = joined.iloc[0], joined.iloc[1], joined.iloc[2]
    assert before["inflow_total"] == 10_000.0
    assert before["negative_balance_days"] == 0
    assert before["requested_to_inflow"] == pytest.approx(2.0)  # on-demand, from the Jan value
    assert after["inflow_total"] == 99_999.0
    assert pd.isna(stale["inflow_total"])  # beyond the view's TTL: no value rather than a stale one


def test_online_store_serves_the_latest_value_after_materialize(
    workspace: Settings, store_with_history: object
) -> None:
    features.materialize(workspace, datetime(2024, 3, 31, tzinfo=UTC))
    store = feast_io.open_store(feature_repo(workspace))
    service = feast_io.feature_service(store, "credit_risk_v1")
    online = feast_io.online_features(store, service, [{"company_id": 1, "requested_amount": 5e4}])
    assert online.loc[0, "inflow_total"] == 99_999.0
    assert online.loc[0, "requested_to_inflow"] == pytest.approx(5e4 / 99_999.0)


def test_missing_feature_service_is_a_clear_error(store_with_history: object) -> None:
    from modelops.core.errors import FeatureStoreError

    with pytest.raises(
        FeatureStoreError,
        match=r"'churn_v1' is not in the Feast registry.*credit_risk_v1, fraud_v1",
    ):
        feast_io.feature_service(store_with_history, "churn_v1")  # type: ignore[arg-type]


def test_join_digest_changes_with_any_input_of_the_join(
    workspace: Settings, store_with_history: object
) -> None:
    store = store_with_history
    service = feast_io.feature_service(store, "credit_risk_v1")  # type: ignore[arg-type]
    entities = pd.DataFrame(
        {
            "company_id": [1, 2],
            "event_timestamp": [_ts("2024-02-15"), _ts("2024-02-15")],
            "requested_amount": [20_000.0, 1_000.0],
        }
    )
    digest = feast_io.join_inputs_digest(store, service, entities)  # type: ignore[arg-type]
    assert digest is not None
    assert digest == feast_io.join_inputs_digest(store, service, entities.copy())  # type: ignore[arg-type]

    other_rows = entities.assign(requested_amount=[20_000.0, 1_001.0])
    assert feast_io.join_inputs_digest(store, service, other_rows) != digest  # type: ignore[arg-type]

    source = workspace.data_dir / "credit_company_monthly.parquet"
    monthly = pd.read_parquet(source)
    monthly.loc[0, "inflow_total"] += 1.0  # a backfill corrects one value
    monthly.to_parquet(source)
    assert feast_io.join_inputs_digest(store, service, entities) != digest  # type: ignore[arg-type]

    source.unlink()
    assert feast_io.join_inputs_digest(store, service, entities) is None  # type: ignore[arg-type]


def test_join_cache_keeps_the_most_recent_joins(tmp_path: Path) -> None:
    import os

    from modelops.services.train import prune_join_cache

    for age in range(5):
        join = tmp_path / f"{age}.parquet"
        join.write_bytes(b"x")
        os.utime(join, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    deleted = prune_join_cache(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["2.parquet", "3.parquet", "4.parquet"]
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["0.parquet", "1.parquet"]
