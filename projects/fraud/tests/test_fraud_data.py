"""fraud's example data (data.py): the column contract, determinism, realism, drift and
learnability. Runs with ``make test``; the toolkit's own tests are in tests/unit/test_datagen.py,
the contract checks every project shares in modelops.testing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from modelops.core import synthetic
from modelops.core.synthetic import SCENARIOS, GenerationSummary
from modelops.testing import Generated, contract, holdout_auc, project_data_of
from modelops.testing import drift_timestamp as _drift_timestamp

FRAUD = project_data_of(__file__)
PROJECT, data = FRAUD.project, FRAUD.data

TS = "timestamp[us, tz=UTC]"
SCHEMAS = {
    "fraud_account_activity": {
        "account_id": "int64",
        "event_timestamp": TS,
        "created_timestamp": TS,
        "txn_count_1h": "int64",
        "txn_amount_1h": "double",
        "txn_count_24h": "int64",
        "txn_amount_24h": "double",
        "txn_count_7d": "int64",
        "txn_amount_7d": "double",
        "distinct_merchants_24h": "int64",
        "account_age_days": "int64",
    },
    "fraud_transactions": {
        "transaction_id": "int64",
        "account_id": "int64",
        "event_timestamp": TS,
        "amount": "double",
        "merchant_category": "string",
        "hour_of_day": "int64",
        "is_fraud": "int64",
        "label_available_at": TS,
    },
}
FRAUD_ROWS = 200_000


def _generate(out_dir: Path, rows: int | None = None, **kw: object) -> GenerationSummary:
    return FRAUD.generate(out_dir, rows, **kw)


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    return FRAUD.scenarios(tmp_path_factory.mktemp("fraud"), FRAUD_ROWS)


def _fraud_training_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Payments joined point-in-time with the account snapshot taken just before them."""
    activity = tables["fraud_account_activity"].drop(columns="created_timestamp")
    frame = pd.merge_asof(
        tables["fraud_transactions"].sort_values("event_timestamp"),
        activity.rename(columns={"event_timestamp": "snapshot"}).sort_values("snapshot"),
        left_on="event_timestamp",
        right_on="snapshot",
        by="account_id",
        direction="backward",
    )
    average = frame["txn_amount_7d"] / frame["txn_count_7d"].clip(lower=1)
    frame["amount_to_avg_7d"] = np.where(frame["txn_count_7d"] > 0, frame["amount"] / average, -1)
    frame["merchant_category"] = frame["merchant_category"].astype("category")
    return frame


# --- contract ---------------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    window, rows = data.DEFAULT_WINDOW, data.DEFAULT_ROWS
    assert window == (date(2025, 7, 1), date(2025, 12, 31))
    assert rows == 200_000
    assert synthetic.default_drift_start(*data.DEFAULT_WINDOW) == date(2025, 11, 1)


def test_columns_and_types_are_the_feature_store_contract(fraud: dict[str, Generated]) -> None:
    contract.assert_tables_match_schemas(fraud["healthy"][0], SCHEMAS)


def test_the_label_table_and_columns_are_those_project_yaml_names() -> None:
    contract.assert_label_columns_in(PROJECT, SCHEMAS)


def test_summary_matches_the_files(fraud: dict[str, Generated]) -> None:
    contract.assert_summary_matches_files(PROJECT, fraud["healthy"], FRAUD_ROWS)
    default = synthetic.default_drift_start(*data.DEFAULT_WINDOW)
    assert fraud["concept-drift"][0].drift_start == default


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    contract.assert_seed_decides_the_bytes(FRAUD, tmp_path, "concept-drift")


def test_failed_run_leaves_previous_files_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = _generate(tmp_path, 2_000)
    before = {t.path: t.path.read_bytes() for t in summary.tables}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(data, "rolling_activity", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _generate(tmp_path, 2_000, seed=1)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


# --- realism and drift --------------------------------------------------------------------------


def _brute_force_activity(payments: pd.DataFrame) -> pd.DataFrame:
    """Aggregates of one account, payment by payment, over strictly earlier payments."""
    rows = []
    times = payments["event_timestamp"].to_numpy()
    amounts = payments["amount"].to_numpy()
    for t in times:
        row = {}
        for label, window in (("1h", "1h"), ("24h", "24h"), ("7d", "7D")):
            earlier = (times < t) & (times >= t - pd.Timedelta(window))
            row[f"txn_count_{label}"] = int(earlier.sum())
            row[f"txn_amount_{label}"] = float(amounts[earlier].sum())
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fraud_activity_is_a_rolling_aggregate_of_earlier_payments(
    scenario: str,
    fraud: dict[str, Generated],
) -> None:
    tables = fraud[scenario][1]
    payments, activity = tables["fraud_transactions"], tables["fraud_account_activity"]
    assert len(payments) == len(activity)
    assert (activity["created_timestamp"] == activity["event_timestamp"]).all()
    frame = _fraud_training_frame(tables)
    assert (frame["event_timestamp"] - frame["snapshot"] == pd.Timedelta(seconds=1)).all()
    assert (frame["hour_of_day"] == frame["event_timestamp"].dt.hour).all()
    assert (frame["account_age_days"] >= 0).all()

    counts = payments["account_id"].value_counts()
    busiest = counts.index[0]
    defrauded = payments.loc[payments["is_fraud"] == 1, "account_id"].value_counts().index[0]
    accounts = [busiest, defrauded, counts.index[len(counts) // 2]]
    for account in accounts:
        mine = frame[frame["account_id"] == account].sort_values("event_timestamp")
        expected = _brute_force_activity(mine)
        for column in expected:
            np.testing.assert_allclose(mine[column].to_numpy(), expected[column].to_numpy())
        assert (mine["distinct_merchants_24h"] <= mine["txn_count_24h"]).all()
        assert ((mine["distinct_merchants_24h"] == 0) == (mine["txn_count_24h"] == 0)).all()
    assert frame.loc[frame["account_id"] == busiest, "txn_count_1h"].max() >= 2


def test_fraud_distinct_merchants_against_brute_force() -> None:
    account = np.zeros(9, dtype=np.int64)
    second = np.array([0, 10, 20, 3_600, 50_000, 86_400, 86_410, 90_000, 200_000])
    merchant = np.array([1, 2, 1, 3, 2, 4, 1, 1, 5])
    cents = np.arange(1, 10) * 100
    activity = data.rolling_activity(account, second, cents, merchant)
    day = [(second < t) & (second >= t - 86_400) for t in second]
    assert activity.distinct_merchants_24h.tolist() == [len(set(merchant[w])) for w in day]
    assert activity.distinct_merchants_24h.tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 0]
    assert activity.count_24h.tolist() == [int(w.sum()) for w in day]
    assert activity.count_1h.tolist() == [0, 1, 2, 3, 0, 0, 1, 2, 0]
    assert activity.amount_7d.tolist()[-1] == sum(range(1, 9))


def test_fraud_payments_of_an_account_are_spaced_so_snapshots_never_overlap() -> None:
    account = np.array([0, 0, 0, 1, 1, 1, 1])
    second = np.array([5, 5, 6, 97, 99, 100, 100])
    assert data._spaced_out(account, second, 100).tolist() == [5, 7, 9, 94, 96, 98, 100]


def test_fraud_rates_labels_and_rhythms(
    fraud: dict[str, Generated],
) -> None:
    summary, tables = fraud["healthy"]
    payments = tables["fraud_transactions"]
    assert 0.003 <= summary.positive_rate <= 0.008
    assert payments["transaction_id"].is_unique
    delay = payments["label_available_at"] - payments["event_timestamp"]
    assert delay.between(pd.Timedelta(days=2), pd.Timedelta(days=30)).all()
    assert delay[payments["is_fraud"] == 1].min() < pd.Timedelta(days=15)
    per_account = payments["account_id"].value_counts()
    assert FRAUD_ROWS // 50 * 0.9 <= len(per_account) <= FRAUD_ROWS // 50
    assert per_account.quantile(0.99) > 5 * per_account.median()
    night = payments["hour_of_day"] < 6
    assert night.mean() < 0.05
    assert payments["is_fraud"][night].mean() > 3 * payments["is_fraud"][~night].mean()
    weekend = payments["event_timestamp"].dt.dayofweek >= 5
    restaurants = payments["merchant_category"] == "restaurants"
    assert weekend[restaurants].mean() > weekend[~restaurants].mean()
    by_category = payments.groupby("merchant_category")["is_fraud"].mean()
    assert by_category["electronics"] > 5 * by_category["grocery"]
    frame = _fraud_training_frame(tables)
    fraud_rows, genuine = frame[frame["is_fraud"] == 1], frame[frame["is_fraud"] == 0]
    assert fraud_rows["txn_count_1h"].mean() > 3 * genuine["txn_count_1h"].mean()
    assert fraud_rows["amount_to_avg_7d"].median() > genuine["amount_to_avg_7d"].median()


def test_fraud_is_learnable_but_not_trivially(
    fraud: dict[str, Generated],
) -> None:
    frame = _fraud_training_frame(fraud["healthy"][1])
    features = list(SCHEMAS["fraud_account_activity"])[3:]
    features += ["amount", "merchant_category", "hour_of_day", "amount_to_avg_7d"]
    auc = holdout_auc(frame, features, "is_fraud")
    assert 0.85 <= auc <= 0.95, auc


def test_fraud_before_drift_is_the_healthy_data(
    fraud: dict[str, Generated],
) -> None:
    healthy = fraud["healthy"][1]
    key = ["account_id", "event_timestamp"]
    for scenario in ("covariate-drift", "concept-drift"):
        summary, tables = fraud[scenario]
        drift = _drift_timestamp(summary)
        for name in ("fraud_transactions", "fraud_account_activity"):
            ours, theirs = (
                t[t["event_timestamp"] < drift - pd.Timedelta(seconds=1)]
                .sort_values(key)
                .reset_index(drop=True)
                for t in (tables[name], healthy[name])
            )
            pd.testing.assert_frame_equal(ours, theirs)


def test_fraud_covariate_drift_shifts_amounts_categories_and_hours(
    fraud: dict[str, Generated],
) -> None:
    summary, tables = fraud["covariate-drift"]
    drift = _drift_timestamp(summary)
    payments = tables["fraud_transactions"]
    base = fraud["healthy"][1]["fraud_transactions"]
    ours, theirs = (
        payments[payments["event_timestamp"] >= drift],
        base[base["event_timestamp"] >= drift],
    )
    assert ours["amount"].mean() / theirs["amount"].mean() == pytest.approx(1.4, abs=0.1)
    online = "online_retail"
    assert (ours["merchant_category"] == online).mean() > (
        theirs["merchant_category"] == online
    ).mean() + 0.15
    assert ours["hour_of_day"].mean() > theirs["hour_of_day"].mean() + 0.4
    assert 0.003 <= ours["is_fraud"].mean() <= 0.008


def test_fraud_concept_drift_hides_fraud_in_normal_looking_payments(
    fraud: dict[str, Generated],
) -> None:
    summary, tables = fraud["concept-drift"]
    drift = _drift_timestamp(summary)
    frame = _fraud_training_frame(tables)
    before, after = (
        frame[frame["event_timestamp"] < drift],
        frame[frame["event_timestamp"] >= drift],
    )

    def night_share_of_fraud(part: pd.DataFrame) -> float:
        return float((part.loc[part["is_fraud"] == 1, "hour_of_day"] < 6).mean())

    def amount_lift(part: pd.DataFrame) -> float:
        return float(
            part.loc[part["is_fraud"] == 1, "amount_to_avg_7d"].median()
            / part.loc[part["is_fraud"] == 0, "amount_to_avg_7d"].median()
        )

    def strongest_signal(part: pd.DataFrame) -> str:
        signals = ["distinct_merchants_24h", "txn_count_1h", "amount", "amount_to_avg_7d"]
        return max(signals, key=lambda c: roc_auc_score(part["is_fraud"], part[c]))

    assert night_share_of_fraud(before) > 0.15 > 0.08 > night_share_of_fraud(after)
    assert amount_lift(before) > 1.4 > 1.25 > amount_lift(after)
    assert strongest_signal(before) != "distinct_merchants_24h"
    # hours, categories and amounts no longer help; bursts at new merchants still do
    assert strongest_signal(after) in ("distinct_merchants_24h", "txn_count_1h")
    assert roc_auc_score(after["is_fraud"], after["distinct_merchants_24h"]) > 0.65
    assert abs(after["amount"].mean() / before["amount"].mean() - 1) < 0.05
    assert abs(after["hour_of_day"].mean() - before["hour_of_day"].mean()) < 0.3
    assert 0.003 <= after["is_fraud"].mean() <= 0.008


def test_window_and_drift_start_arguments_are_honoured(tmp_path: Path) -> None:
    window = {"start": date(2024, 3, 1), "end": date(2024, 3, 20)}
    summary = _generate(
        tmp_path, 2_000, scenario="covariate-drift", drift_start=date(2024, 3, 10), **window
    )
    assert summary.drift_start == date(2024, 3, 10)
    payments = pd.read_parquet(summary.tables[1].path)
    assert payments["event_timestamp"].min() >= pd.Timestamp("2024-03-01", tz="UTC")
    assert payments["event_timestamp"].max() < pd.Timestamp("2024-03-21", tz="UTC")
    base = pd.read_parquet(_generate(tmp_path / "h", 2_000, **window).tables[1].path)
    late = pd.Timestamp("2024-03-10", tz="UTC")
    drifted_mean = payments.loc[payments["event_timestamp"] >= late, "amount"].mean()
    assert drifted_mean > 1.2 * base.loc[base["event_timestamp"] >= late, "amount"].mean()
