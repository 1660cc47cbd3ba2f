"""The feature repo joins features as of each event: a later value never reaches an earlier row."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _write_empty_fraud_source(data: Path) -> None:
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


def _store(workspace: Settings, monthly: list[dict[str, object]], unit: str = "us") -> Any:
    """A registered repo whose credit source holds ``monthly``, timestamps stored in ``unit``."""
    data = workspace.data_dir
    data.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(monthly)
    for column in ("event_timestamp", "created_timestamp"):
        frame[column] = frame[column].astype(f"datetime64[{unit}, UTC]")
    frame.to_parquet(data / "credit_company_monthly.parquet")
    _write_empty_fraud_source(data)
    features.apply(workspace)
    return feast_io.open_store(feature_repo(workspace))


@pytest.fixture
def store_with_history(workspace: Settings) -> object:
    return _store(
        workspace,
        [
            _monthly_row(1, "2024-01-31 23:59:59", 10_000.0, 0),
            _monthly_row(1, "2024-02-29 23:59:59", 99_999.0, 31),  # written after the application
            _monthly_row(2, "2023-06-30 23:59:59", 5_000.0, 3),  # older than the 62-day TTL
        ],
    )


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

    from modelops.services.datasets import prune_join_cache

    for age in range(5):
        join = tmp_path / f"{age}.parquet"
        join.write_bytes(b"x")
        os.utime(join, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    deleted = prune_join_cache(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["2.parquet", "3.parquet", "4.parquet"]
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["0.parquet", "1.parquet"]


# --- timestamp precision ----------------------------------------------------------------------

TTL = pd.Timedelta(days=62)  # of company_monthly_financials in feature_repo/


def _row_at(company: int, at: pd.Timestamp, inflow: float) -> dict[str, object]:
    """A monthly row stamped (and created) at ``at``, to the nanosecond."""
    return {**_monthly_row(company, "2024-01-01", inflow, 0), "event_timestamp": at} | {
        "created_timestamp": at
    }


def _join(store: Any, companies: list[int], times: list[pd.Timestamp]) -> pd.DataFrame:
    service = feast_io.feature_service(store, "credit_risk_v1")
    entities = pd.DataFrame(
        {
            "company_id": companies,
            "event_timestamp": pd.Series(times, dtype="datetime64[ns, UTC]"),
            "requested_amount": 1_000.0,
        }
    )
    joined = feast_io.historical_features(store, service, entities)
    pd.testing.assert_series_equal(joined["event_timestamp"], entities["event_timestamp"])
    return joined


def test_sub_microsecond_event_times_join_the_row_stamped_at_the_same_instant(
    workspace: Settings,
) -> None:
    """The reported bug: times from ``pd.date_range(..., periods=n)`` left about half the rows
    without features, because DuckDB rounded the source's nanoseconds up past the event."""
    times = list(pd.date_range(_ts("2024-01-01"), _ts("2024-03-01"), periods=200))
    assert sum(t.nanosecond >= 500 for t in times) > 50  # rounds up to a later microsecond
    companies = list(range(1, 201))
    store = _store(
        workspace, [_row_at(c, t, float(c)) for c, t in zip(companies, times, strict=True)], "ns"
    )
    joined = _join(store, companies, times)
    assert joined["inflow_total"].tolist() == [float(c) for c in companies]


@pytest.mark.parametrize("nanoseconds", [0, 400, 600, 999])
def test_a_feature_row_one_nanosecond_after_the_event_is_never_joined(
    workspace: Settings, nanoseconds: int
) -> None:
    event = _ts("2024-02-15 12:00:00") + pd.Timedelta(nanoseconds, "ns")
    later = event + pd.Timedelta(1, "ns")
    store = _store(
        workspace,
        [
            _row_at(1, event - pd.Timedelta(days=1), 1.0),
            _row_at(1, later, 2.0),  # exists 1 ns after the event
            _row_at(2, later, 3.0),
            _row_at(3, event, 4.0),  # exactly at the event
        ],
        "ns",
    )
    joined = _join(store, [1, 2, 3], [event, event, event])
    assert joined["inflow_total"].tolist()[0] == 1.0
    assert pd.isna(joined["inflow_total"][1])
    assert joined["inflow_total"].tolist()[2] == 4.0


def test_rows_closer_than_a_microsecond_around_an_event_fail_naming_file_and_column(
    workspace: Settings,
) -> None:
    from modelops.core.errors import FeatureStoreError

    event = _ts("2024-02-15 12:00:00") + pd.Timedelta(400, "ns")
    store = _store(
        workspace,
        [_row_at(1, event, 1.0), _row_at(1, event + pd.Timedelta(1, "ns"), 2.0)],
        "ns",
    )
    with pytest.raises(
        FeatureStoreError,
        match=r"credit_company_monthly\.parquet: column 'event_timestamp' .*company_id=1 at "
        r"2024-02-15T12:00:00\.000000400",
    ):
        _join(store, [1], [event])


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_every_source_precision_joins_exactly_to_the_nanosecond(
    workspace: Settings, unit: str
) -> None:
    row = _ts("2024-02-15 12:00:00")
    old = _ts("2023-12-01 08:00:00")
    store = _store(
        workspace,
        [_row_at(1, row - pd.Timedelta(days=1), 1.0), _row_at(1, row, 2.0), _row_at(2, old, 3.0)],
        unit,
    )
    ns = pd.Timedelta(1, "ns")
    joined = _join(
        store,
        [1, 1, 1, 1, 2, 2],
        [row - ns, row, row + ns, row + pd.Timedelta(999, "ns"), old + TTL, old + TTL + ns],
    )
    values = joined["inflow_total"].tolist()
    assert values[:4] == [1.0, 2.0, 2.0, 2.0]  # 1 ns before the row: the day-old one
    assert values[4] == 3.0  # exactly TTL old: still visible
    assert pd.isna(values[5])  # 1 ns older than the TTL: expired


# --- availability -----------------------------------------------------------------------------


def _entities(rows: list[tuple[int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "company_id": [c for c, _ in rows],
            "event_timestamp": [_ts(t) for _, t in rows],
        }
    )


AVAILABILITY_EVENTS = [
    (1, "2024-02-01 00:30"),  # Jan row (event Jan 31 23:59:59) is created Feb 1 23:59:59
    (1, "2024-02-15"),  # Jan row exists by then
    (1, "2024-03-01 00:00"),  # Feb row created Mar 1 23:59:59
    (2, "2024-02-15"),  # only row beyond the TTL: nothing joined
    (3, "2024-02-15"),  # no rows at all
    (4, "2024-02-02"),  # a correction of the Jan row is created Feb 5; Feast picks it
]


def _leaky_rows() -> list[dict[str, object]]:
    correction = _monthly_row(4, "2024-01-31 23:59:59", 2.0, 0)
    return [
        _monthly_row(1, "2024-01-31 23:59:59", 10_000.0, 0),
        _monthly_row(1, "2024-02-29 23:59:59", 99_999.0, 31),
        _monthly_row(2, "2023-06-30 23:59:59", 5_000.0, 3),
        _monthly_row(4, "2024-01-31 23:59:59", 1.0, 0) | {"created_timestamp": _ts("2024-02-01")},
        correction | {"created_timestamp": _ts("2024-02-05")},
    ]


def test_availability_counts_rows_joined_with_a_feature_row_created_after_the_event(
    workspace: Settings,
) -> None:
    from modelops.core.datachecks import AvailabilityResult

    store = _store(workspace, _leaky_rows())
    service = feast_io.feature_service(store, "credit_risk_v1")
    results = feast_io.availability_violations(store, service, _entities(AVAILABILITY_EVENTS))
    assert len(results) == 1  # the on-demand view reads no source
    result = results[0]
    assert isinstance(result, AvailabilityResult)
    assert (result.view, result.checked, result.affected_rows, result.rows) == (
        "company_monthly_financials",
        True,
        3,
        6,
    )
    assert "company_id=1 at 2024-02-01T00:30:00+00:00" in result.reason
    assert "created at 2024-02-01T23:59:59+00:00" in result.reason
    # the message names the columns the service reads from the late view, not the view alone
    assert result.columns and "negative_balance_days" in result.columns
    assert result.named().startswith("feature view 'company_monthly_financials' (columns ")


def test_availability_is_clean_when_rows_are_stamped_when_they_became_available(
    workspace: Settings,
) -> None:
    rows = [r | {"event_timestamp": r["created_timestamp"]} for r in _leaky_rows()]
    store = _store(workspace, rows)
    service = feast_io.feature_service(store, "credit_risk_v1")
    results = feast_io.availability_violations(store, service, _entities(AVAILABILITY_EVENTS))
    assert [(r.view, r.checked, r.affected_rows, r.rows) for r in results] == [
        ("company_monthly_financials", True, 0, 6)
    ]


def _rewrite_definitions(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    # Feast imports the definitions by module name: drop the copy an earlier test imported.
    monkeypatch.delitem(sys.modules, "credit_risk_features", raising=False)
    definitions = workspace.resolved_feature_repo / "credit_risk_features.py"
    text = definitions.read_text()
    assert old in text
    definitions.write_text(text.replace(old, new))


def test_availability_without_created_column_is_the_event_time(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rewrite_definitions(
        workspace, monkeypatch, 'created_timestamp_column="created_timestamp",', ""
    )
    store = _store(workspace, _leaky_rows())
    service = feast_io.feature_service(store, "credit_risk_v1")
    results = feast_io.availability_violations(store, service, _entities(AVAILABILITY_EVENTS))
    assert [(r.checked, r.affected_rows, r.reason) for r in results] == [
        (True, 0, "no created_timestamp column: availability equals event time")
    ]


def test_availability_of_a_remote_source_is_not_checked(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rewrite_definitions(
        workspace,
        monkeypatch,
        'path="data/credit_company_monthly.parquet"',
        'path="s3://bucket/credit_company_monthly.parquet"',
    )
    store = _store(workspace, _leaky_rows())
    service = feast_io.feature_service(store, "credit_risk_v1")
    results = feast_io.availability_violations(store, service, _entities(AVAILABILITY_EVENTS))
    assert [(r.checked, r.affected_rows) for r in results] == [(False, 0)]
    assert "not a local parquet file" in results[0].reason


def test_availability_needs_the_entity_key(store_with_history: object) -> None:
    from modelops.core.errors import FeatureStoreError

    store: Any = store_with_history
    service = feast_io.feature_service(store, "credit_risk_v1")
    entities = _entities([(1, "2024-02-15")]).rename(columns={"company_id": "company"})
    with pytest.raises(FeatureStoreError, match=r"no column 'company_id'.*company_monthly"):
        feast_io.availability_violations(store, service, entities)


def test_batch_features_leave_out_on_demand_outputs(store_with_history: object) -> None:
    store: Any = store_with_history
    service = feast_io.feature_service(store, "credit_risk_v1")
    stored = feast_io.batch_features(store, service)
    assert stored[0] == "inflow_total" and "sector" in stored
    assert "requested_to_inflow" not in stored
    assert set(stored) < set(feast_io.service_features(service))


# --- joining in chunks ------------------------------------------------------------------------


def test_joining_in_chunks_gives_the_single_join_row_for_row(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    base = _ts("2024-01-01")
    monthly = [
        _row_at(c, base + pd.Timedelta(int(rng.integers(0, 90 * 86_400 * 10**9)), "ns"), c + k)
        for c in range(1, 31)
        for k in range(4)
    ]
    monthly.append(_row_at(40, _ts("2023-01-01"), 40.0))  # expired for every event below
    store = _store(workspace, monthly, "ns")
    service = feast_io.feature_service(store, "credit_risk_v1")
    companies = [int(c) for c in rng.integers(1, 45, 300)]  # 31 to 39 and 41 to 44: unknown
    times = [
        base + pd.Timedelta(int(rng.integers(0, 120 * 86_400 * 10**9)), "ns") for _ in companies
    ]
    companies += [5, 5, 40]  # a repeated event (it may land in two chunks), an expired one
    times += [times[0], times[0], _ts("2024-02-01")]
    entities = pd.DataFrame(
        {
            "company_id": companies,
            "event_timestamp": pd.Series(times, dtype="datetime64[ns, UTC]"),
            "requested_amount": rng.uniform(1_000, 50_000, len(companies)),
        }
    )
    monkeypatch.setattr(feast_io.join, "JOIN_CHUNK_ROWS", 10**9)
    whole = feast_io.historical_features(store, service, entities)
    monkeypatch.setattr(feast_io.join, "JOIN_CHUNK_ROWS", 7)
    calls = 0
    original = store.get_historical_features

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "get_historical_features", counted)
    chunked = feast_io.historical_features(store, service, entities)
    assert calls == -(-len(entities) // 7)
    pd.testing.assert_frame_equal(chunked, whole)
    assert whole["inflow_total"].notna().sum() > 100 and whole["inflow_total"].isna().sum() > 10
    assert pd.isna(whole["inflow_total"].iloc[-1])  # the expired one kept, without features
