"""Generated example data: the column contract, determinism, realism, drift and learnability."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from modelops.config.settings import Settings
from modelops.services import datagen
from modelops.services.datagen import credit_risk as credit_module
from modelops.services.datagen import fraud as fraud_module
from modelops.services.datagen._common import SECOND_US, Window, rng

TS = "timestamp[us, tz=UTC]"
SCHEMAS = {
    "credit_company_monthly": {
        "company_id": "int64",
        "event_timestamp": TS,
        "created_timestamp": TS,
        "inflow_total": "double",
        "outflow_total": "double",
        "balance_mean": "double",
        "balance_min": "double",
        "balance_volatility": "double",
        "negative_balance_days": "int64",
        "revenue_trend": "double",
        "company_age_months": "int64",
        "sector": "string",
    },
    "credit_applications": {
        "application_id": "int64",
        "company_id": "int64",
        "event_timestamp": TS,
        "requested_amount": "double",
        "default_12m": "int64",
        "label_available_at": TS,
    },
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
CREDIT_ROWS = 20_000
FRAUD_ROWS = 200_000


def _generate(
    root: Path, project: str, scenario: str = "healthy", rows: int | None = None, **kw: object
) -> tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]:
    default = CREDIT_ROWS if project == "credit_risk" else FRAUD_ROWS
    summary = datagen.generate(
        project, root / project / scenario, scenario=scenario, rows=rows or default, **kw
    )
    return summary, {t.name: pd.read_parquet(t.path) for t in summary.tables}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datagen")


@pytest.fixture(scope="module")
def credit(out: Path) -> dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]]:
    return {s: _generate(out, "credit_risk", s) for s in datagen.SCENARIOS}


@pytest.fixture(scope="module")
def fraud(out: Path) -> dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]]:
    return {s: _generate(out, "fraud", s) for s in datagen.SCENARIOS}


def _credit_training_frame(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Applications joined point-in-time with the latest monthly row at or before them (rows
    are stamped when they became available)."""
    monthly = tables["credit_company_monthly"].drop(columns="created_timestamp")
    frame = pd.merge_asof(
        tables["credit_applications"].sort_values("event_timestamp"),
        monthly.rename(columns={"event_timestamp": "row_timestamp"}).sort_values("row_timestamp"),
        left_on="event_timestamp",
        right_on="row_timestamp",
        by="company_id",
        direction="backward",
    )
    inflow = frame["inflow_total"].clip(lower=1.0)
    frame["requested_to_inflow"] = frame["requested_amount"] / inflow
    frame["net_cash_flow_ratio"] = (frame["inflow_total"] - frame["outflow_total"]) / inflow
    frame["sector"] = frame["sector"].astype("category")
    return frame


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


def _holdout_auc(frame: pd.DataFrame, features: list[str], label: str) -> float:
    """Fit on the earlier 60 % of events, score the later 40 %."""
    split = frame["event_timestamp"].quantile(0.6)
    train, test = frame[frame["event_timestamp"] < split], frame[frame["event_timestamp"] >= split]
    model = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, categorical_features="from_dtype", random_state=0
    ).fit(train[features], train[label])
    return float(roc_auc_score(test[label], model.predict_proba(test[features])[:, 1]))


def _month_ends(monthly: pd.DataFrame) -> pd.Series:
    """The last second of the month each monthly row summarises (it is stamped a day later)."""
    return monthly["event_timestamp"] - pd.Timedelta(days=1)


def _drift_timestamp(summary: datagen.GenerationSummary) -> pd.Timestamp:
    assert summary.drift_start is not None
    return pd.Timestamp(summary.drift_start, tz="UTC")


# --- contract ---------------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    assert datagen.default_window("credit_risk") == (date(2021, 1, 1), date(2025, 12, 31))
    assert datagen.default_window("fraud") == (date(2025, 7, 1), date(2025, 12, 31))
    assert datagen.default_rows("credit_risk") == 40_000
    assert datagen.default_rows("fraud") == 200_000
    assert datagen.drift_start_for(date(2025, 1, 1), date(2025, 6, 30)) == date(2025, 5, 2)
    assert datagen.drift_start_for(date(2021, 1, 1), date(2025, 12, 31)) == date(2024, 5, 3)
    assert datagen.drift_start_for(date(2025, 1, 1), date(2025, 1, 3)) == date(2025, 1, 3)


@pytest.mark.parametrize("project", datagen.PROJECTS)
def test_columns_and_types_are_the_feature_store_contract(
    project: str,
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    summary, _ = (credit if project == "credit_risk" else fraud)["healthy"]
    assert [t.name for t in summary.tables] == [n for n in SCHEMAS if n.startswith(project[:5])]
    for table in summary.tables:
        schema = pq.read_schema(table.path)
        assert {f.name: str(f.type) for f in schema} == SCHEMAS[table.name]
        assert schema.names == list(SCHEMAS[table.name])
        assert table.path == summary.tables[0].path.parent / f"{table.name}.parquet"
        assert not list(table.path.parent.glob("*.tmp"))


@pytest.mark.parametrize("project", datagen.PROJECTS)
def test_summary_matches_the_files(
    project: str,
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    generated = credit if project == "credit_risk" else fraud
    summary, tables = generated["healthy"]
    assert summary.project == project
    assert summary.drift_start is None
    label_table, label = (
        ("credit_applications", "default_12m")
        if project == "credit_risk"
        else ("fraud_transactions", "is_fraud")
    )
    assert len(tables[label_table]) == (CREDIT_ROWS if project == "credit_risk" else FRAUD_ROWS)
    assert summary.positive_rate == pytest.approx(tables[label_table][label].mean())
    for table in summary.tables:
        events = tables[table.name]["event_timestamp"]
        assert table.rows == len(events)
        assert table.start == events.min().to_pydatetime()
        assert table.end == events.max().to_pydatetime()
        assert table.start.tzinfo is not None
    start, end = datagen.default_window(project)
    assert generated["concept-drift"][0].drift_start == datagen.drift_start_for(start, end)


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    for project in datagen.PROJECTS:
        first = datagen.generate(project, tmp_path / "a", rows=3_000, seed=7)
        again = datagen.generate(project, tmp_path / "b", rows=3_000, seed=7)
        other = datagen.generate(project, tmp_path / "c", rows=3_000, seed=8)
        for a, b, c in zip(first.tables, again.tables, other.tables, strict=True):
            assert a.path.read_bytes() == b.path.read_bytes()
            assert not pd.read_parquet(a.path).equals(pd.read_parquet(c.path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": "churn"}, "--project churn"),
        ({"scenario": "chaos"}, "--scenario chaos"),
        ({"rows": 99}, "--rows 99"),
        ({"start": date(2025, 3, 1), "end": date(2025, 3, 1)}, "--end 2025-03-01"),
        ({"start": date(2025, 3, 1), "end": date(2025, 2, 1)}, "--end 2025-02-01"),
        ({"seed": -1}, "--seed -1"),
        (
            {"scenario": "concept-drift", "drift_start": date(2030, 1, 1)},
            "--drift-start 2030-01-01",
        ),
        (
            {"project": "credit_risk", "start": date(2025, 3, 2), "end": date(2025, 3, 31)},
            "--end 2025-03-31",
        ),
    ],
)
def test_bad_arguments_raise_value_error_naming_argument_and_value(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"project": "fraud", "rows": 1_000, **kwargs}
    project = args.pop("project")
    with pytest.raises(ValueError, match=message):
        datagen.generate(project, tmp_path, **args)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*"))


def test_failed_run_leaves_previous_files_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = datagen.generate("fraud", tmp_path, rows=2_000)
    before = {t.path: t.path.read_bytes() for t in summary.tables}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fraud_module, "rolling_activity", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        datagen.generate("fraud", tmp_path, rows=2_000, seed=1)
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


def test_import_stays_light() -> None:
    code = (
        "import sys, modelops.services; before = set(sys.modules); "
        "import modelops.services.datagen; "
        "print(sorted({'numpy', 'pandas', 'pyarrow'} & (set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- credit_risk --------------------------------------------------------------------------------


def test_credit_monthly_rows_are_month_ends_per_company(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    monthly = credit["healthy"][1]["credit_company_monthly"]
    events = monthly["event_timestamp"]
    # Stamped when available: the day after the month ends, at the same second.
    month_ends = _month_ends(monthly)
    assert (month_ends.dt.is_month_end & (events.dt.strftime("%H:%M:%S") == "23:59:59")).all()
    assert (events.dt.day == 1).all()
    assert (monthly["created_timestamp"] == events).all()
    assert not monthly.duplicated(["company_id", "event_timestamp"]).any()
    assert monthly["company_id"].nunique() == CREDIT_ROWS // 4
    assert (monthly.groupby("company_id")["sector"].nunique() == 1).all()
    ordered = monthly.sort_values(["company_id", "event_timestamp"])
    steps = ordered.groupby("company_id")["company_age_months"].diff().dropna()
    assert (steps == 1).all()
    assert (monthly.groupby("company_id")["event_timestamp"].min() > events.min()).any()
    days = monthly["negative_balance_days"]
    assert days.between(0, 31).all() and (days <= month_ends.dt.days_in_month).all()
    assert ((days > 0) == (monthly["balance_min"] < 0)).all()
    assert (monthly["balance_min"] <= monthly["balance_mean"]).all()
    assert 0.1 < (days > 0).mean() < 0.35
    assert monthly["inflow_total"].corr(monthly["outflow_total"]) > 0.8
    assert monthly["inflow_total"].corr(monthly["balance_volatility"]) > 0.6
    assert (
        monthly["revenue_trend"].quantile(0.1) < -0.1 < 0.1 < monthly["revenue_trend"].quantile(0.9)
    )
    assert set(monthly["sector"]) == {
        "retail",
        "construction",
        "hospitality",
        "manufacturing",
        "services",
        "transport",
        "it",
    }


def test_credit_seasonality_by_sector(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    monthly = credit["healthy"][1]["credit_company_monthly"]
    month = _month_ends(monthly).dt.month
    by_month = monthly.groupby([monthly["sector"], month])["inflow_total"].mean()
    assert by_month["hospitality"][7] > 1.4 * by_month["hospitality"][1]
    assert by_month["construction"][1] < 0.8 * by_month["construction"][7]


def test_credit_applications_follow_a_monthly_row_and_labels_arrive_a_year_later(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    summary, tables = credit["healthy"]
    apps = tables["credit_applications"]
    first_row = tables["credit_company_monthly"].groupby("company_id")["event_timestamp"].min()
    assert (apps["event_timestamp"] > apps["company_id"].map(first_row)).all()
    assert (apps["label_available_at"] - apps["event_timestamp"] == pd.Timedelta(days=365)).all()
    assert apps["application_id"].is_unique
    assert apps["event_timestamp"].max() < pd.Timestamp("2026-01-01", tz="UTC")
    assert 0.06 <= summary.positive_rate <= 0.10
    sizes = _credit_training_frame(tables)
    assert np.log(sizes["requested_amount"]).corr(np.log(sizes["inflow_total"])) > 0.5


def test_credit_application_before_a_row_is_available_is_labelled_from_the_previous_month() -> None:
    """A month's row exists from the day after the month ends; an application in between is
    labelled from the month before, and the row is stamped after that application."""
    window = Window(date(2023, 1, 1), date(2024, 12, 31), None)
    grid = credit_module.MonthGrid.build(window)
    companies = credit_module._companies(60, grid, 3)
    panel = credit_module._simulate(companies, 0, 60, grid, None, rng(3, 3, 0))
    month = grid.first_row + 6
    company = int(np.flatnonzero(companies.founded <= month - 2)[0])
    closed = int(grid.month_end_s[month]) + 3_600  # the month has ended, its row is not out yet
    published = int(grid.available_s[month]) + 1

    def probability(row_month: int) -> float:
        return float(
            credit_module._default_probability(
                credit_module.HEALTHY_MODEL,
                panel,
                np.array([company]),
                np.array([row_month]),
                companies.sector[[company]],
                np.array([20_000.0]),
                np.array([0.0]),
            )[0]
        )

    previous, this = probability(month - 1), probability(month)
    assert previous != this
    draw = (previous + this) / 2  # the label tells which month's row it came from
    apps = credit_module.Applications(
        company=np.array([company, company]),
        second=np.array([closed, published]),
        requested_amount=np.array([20_000.0, 20_000.0]),
        noise=np.zeros(2),
        draw=np.full(2, draw),
    )
    labelled = credit_module._application_rows(
        np.arange(2), apps, panel, companies, 0, grid, window, None
    )
    assert labelled["default_12m"].tolist() == [int(draw < previous), int(draw < this)]

    monthly = credit_module._monthly_rows(panel, companies, 0, grid, window)
    mine = monthly["company_id"] == credit_module.FIRST_COMPANY_ID + company
    stamps = np.sort(monthly["event_timestamp"][mine])
    row_us = window.origin_us + int(grid.available_s[month]) * SECOND_US
    assert row_us in stamps
    assert labelled["event_timestamp"][0] < row_us <= labelled["event_timestamp"][1]
    assert (monthly["created_timestamp"] == monthly["event_timestamp"]).all()


def test_generated_credit_features_are_available_at_every_application(
    workspace: Settings,
) -> None:
    """Joined with the repository's feature definitions, no application sees a monthly row that
    did not exist yet; stamping rows at month end instead (as before) would."""
    from modelops.integrations import feast as feast_io
    from modelops.services import features
    from modelops.services.context import feature_repo

    summary = datagen.generate("credit_risk", workspace.data_dir, rows=3_000, seed=5)
    tables = {t.name: pd.read_parquet(t.path) for t in summary.tables}
    datagen.generate("fraud", workspace.data_dir, rows=200, seed=5)
    features.apply(workspace)
    store = feast_io.open_store(feature_repo(workspace))
    service = feast_io.feature_service(store, "credit_risk_v1")
    apps = tables["credit_applications"][["company_id", "event_timestamp"]]

    results = feast_io.availability_violations(store, service, apps)
    assert [(r.view, r.checked, r.affected_rows, r.rows) for r in results] == [
        ("company_monthly_financials", True, 0, len(apps))
    ]

    monthly = tables["credit_company_monthly"]
    month_end = monthly.assign(event_timestamp=_month_ends(monthly))
    month_end.to_parquet(summary.tables[0].path)
    ns = {"event_timestamp": "datetime64[ns, UTC]", "created_timestamp": "datetime64[ns, UTC]"}
    rows = month_end[["company_id", "event_timestamp", "created_timestamp"]].astype(ns)
    expected = pd.merge_asof(
        apps.astype({"event_timestamp": ns["event_timestamp"]}).sort_values("event_timestamp"),
        rows.sort_values("event_timestamp"),
        on="event_timestamp",
        by="company_id",
    )
    leaking = int((expected["created_timestamp"] > expected["event_timestamp"]).sum())
    assert leaking > 0
    results = feast_io.availability_violations(store, service, apps)
    assert [r.affected_rows for r in results] == [leaking]


def test_credit_label_ignores_monthly_rows_after_the_application(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    """Applications filed after drift_start whose latest row predates the downturn: the downturn
    rewrites the company's later rows, and the label stays what it was."""
    summary, drifted = credit["covariate-drift"]
    healthy = _credit_training_frame(credit["healthy"][1]).set_index("application_id")
    frame = _credit_training_frame(drifted).set_index("application_id")
    drift = _drift_timestamp(summary)
    same = frame[
        (frame["event_timestamp"] >= drift)
        & (frame["row_timestamp"] < drift)
        & (frame["company_id"] == healthy["company_id"].reindex(frame.index))
    ]
    assert len(same) >= 50
    assert (same["default_12m"] == healthy.loc[same.index, "default_12m"]).all()
    monthly = drifted["credit_company_monthly"].set_index(["company_id", "event_timestamp"])
    base = credit["healthy"][1]["credit_company_monthly"].set_index(
        ["company_id", "event_timestamp"]
    )
    later = monthly.index.get_level_values("company_id").isin(same["company_id"]) & (
        monthly.index.get_level_values("event_timestamp") > drift
    )
    changed = monthly.loc[later, "inflow_total"] / base.loc[monthly.index[later], "inflow_total"]
    assert changed.max() < 0.76


def test_credit_is_learnable_but_not_trivially(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    frame = _credit_training_frame(credit["healthy"][1])
    features = [*list(SCHEMAS["credit_company_monthly"])[3:], "requested_amount"]
    features += ["requested_to_inflow", "net_cash_flow_ratio"]
    auc = _holdout_auc(frame, features, "default_12m")
    assert 0.75 <= auc <= 0.88, auc


def test_credit_before_drift_is_the_healthy_data(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    healthy = credit["healthy"][1]
    for scenario in ("covariate-drift", "concept-drift"):
        summary, tables = credit[scenario]
        drift = _drift_timestamp(summary)
        for name, key in (
            ("credit_company_monthly", ["company_id", "event_timestamp"]),
            ("credit_applications", ["application_id"]),
        ):
            ours, theirs = (
                t[t["event_timestamp"] < drift].sort_values(key).reset_index(drop=True)
                for t in (tables[name], healthy[name])
            )
            pd.testing.assert_frame_equal(ours, theirs)


def test_credit_covariate_drift_is_a_downturn_after_drift_start(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    summary, tables = credit["covariate-drift"]
    healthy = credit["healthy"][1]
    drift = _drift_timestamp(summary)

    def after(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["event_timestamp"] >= drift]

    monthly, base = (
        after(tables["credit_company_monthly"]),
        after(healthy["credit_company_monthly"]),
    )
    assert monthly["inflow_total"].mean() / base["inflow_total"].mean() == pytest.approx(0.75, 0.02)
    assert monthly["negative_balance_days"].mean() > 1.2 * base["negative_balance_days"].mean()
    hit = ["hospitality", "construction"]
    share = _credit_training_frame(tables).pipe(after)["sector"].isin(hit).mean()
    base_share = _credit_training_frame(healthy).pipe(after)["sector"].isin(hit).mean()
    assert share > base_share + 0.1


def test_credit_concept_drift_changes_the_label_not_the_inputs(
    credit: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    summary, tables = credit["concept-drift"]
    healthy = credit["healthy"][1]
    pd.testing.assert_frame_equal(
        tables["credit_company_monthly"], healthy["credit_company_monthly"]
    )
    drift = _drift_timestamp(summary)

    def coefficients(frame: pd.DataFrame) -> dict[str, float]:
        """A logistic fit on the documented inputs of the default model (services: reference)."""
        x = pd.DataFrame(
            {
                "overdrawn": (frame["negative_balance_days"] > 0).astype(float),
                "negative_days": frame["negative_balance_days"] / 10.0,
                "revenue_decline": frame["revenue_trend"].clip(upper=0.0),
                "revenue_growth": frame["revenue_trend"].clip(lower=0.0),
                "balance_min": (frame["balance_min"] / frame["inflow_total"]).clip(-3, 3),
                "requested": np.log(frame["requested_to_inflow"]),
                "young": (frame["company_age_months"] < 24).astype(float),
            }
        )
        for sector in ("retail", "construction", "hospitality", "manufacturing", "transport", "it"):
            x[sector] = (frame["sector"] == sector).astype(float)
        model = LogisticRegression(C=10.0, max_iter=2_000).fit(x, frame["default_12m"])
        return dict(zip(x.columns, model.coef_[0], strict=True))

    def after(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["event_timestamp"] >= drift]

    drifted = coefficients(after(_credit_training_frame(tables)))
    base = coefficients(after(_credit_training_frame(healthy)))
    overdraft = base["overdrawn"] + base["negative_days"]
    overdraft_drifted = drifted["overdrawn"] + drifted["negative_days"]
    assert overdraft > 0.45 and overdraft_drifted < min(0.2, overdraft - 0.4)
    assert drifted["revenue_decline"] < 1.5 * base["revenue_decline"] < 0
    assert drifted["hospitality"] < base["hospitality"] - 0.6
    assert drifted["construction"] < base["construction"] - 0.6


# --- fraud --------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("scenario", datagen.SCENARIOS)
def test_fraud_activity_is_a_rolling_aggregate_of_earlier_payments(
    scenario: str,
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
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
    activity = fraud_module.rolling_activity(account, second, cents, merchant)
    day = [(second < t) & (second >= t - 86_400) for t in second]
    assert activity.distinct_merchants_24h.tolist() == [len(set(merchant[w])) for w in day]
    assert activity.distinct_merchants_24h.tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 0]
    assert activity.count_24h.tolist() == [int(w.sum()) for w in day]
    assert activity.count_1h.tolist() == [0, 1, 2, 3, 0, 0, 1, 2, 0]
    assert activity.amount_7d.tolist()[-1] == sum(range(1, 9))


def test_fraud_payments_of_an_account_are_spaced_so_snapshots_never_overlap() -> None:
    account = np.array([0, 0, 0, 1, 1, 1, 1])
    second = np.array([5, 5, 6, 97, 99, 100, 100])
    assert fraud_module._spaced_out(account, second, 100).tolist() == [5, 7, 9, 94, 96, 98, 100]


def test_fraud_rates_labels_and_rhythms(
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
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
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
) -> None:
    frame = _fraud_training_frame(fraud["healthy"][1])
    features = list(SCHEMAS["fraud_account_activity"])[3:]
    features += ["amount", "merchant_category", "hour_of_day", "amount_to_avg_7d"]
    auc = _holdout_auc(frame, features, "is_fraud")
    assert 0.85 <= auc <= 0.95, auc


def test_fraud_before_drift_is_the_healthy_data(
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
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
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
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
    fraud: dict[str, tuple[datagen.GenerationSummary, dict[str, pd.DataFrame]]],
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
    assert strongest_signal(after) == "distinct_merchants_24h"
    assert roc_auc_score(after["is_fraud"], after["distinct_merchants_24h"]) > 0.65
    assert abs(after["amount"].mean() / before["amount"].mean() - 1) < 0.05
    assert abs(after["hour_of_day"].mean() - before["hour_of_day"].mean()) < 0.3
    assert 0.003 <= after["is_fraud"].mean() <= 0.008


def test_window_and_drift_start_arguments_are_honoured(tmp_path: Path) -> None:
    summary = datagen.generate(
        "fraud",
        tmp_path,
        start=date(2024, 3, 1),
        end=date(2024, 3, 20),
        rows=2_000,
        scenario="covariate-drift",
        drift_start=date(2024, 3, 10),
    )
    assert summary.drift_start == date(2024, 3, 10)
    payments = pd.read_parquet(summary.tables[1].path)
    assert payments["event_timestamp"].min() >= pd.Timestamp("2024-03-01", tz="UTC")
    assert payments["event_timestamp"].max() < pd.Timestamp("2024-03-21", tz="UTC")
    baseline = datagen.generate(
        "fraud", tmp_path / "h", start=date(2024, 3, 1), end=date(2024, 3, 20), rows=2_000
    )
    base = pd.read_parquet(baseline.tables[1].path)
    late = pd.Timestamp("2024-03-10", tz="UTC")
    drifted_mean = payments.loc[payments["event_timestamp"] >= late, "amount"].mean()
    assert drifted_mean > 1.2 * base.loc[base["event_timestamp"] >= late, "amount"].mean()

    healthy = datagen.generate(
        "credit_risk", tmp_path / "c", rows=500, drift_start=date(1900, 1, 1)
    )
    assert healthy.drift_start is None
    assert healthy.tables[0].start.date() == date(2021, 2, 1)  # January, available Feb 1
    assert healthy.tables[1].end.date() <= date(2025, 12, 31)
