"""credit_risk's example data (data.py): the column contract, determinism, realism, drift and
learnability. Runs with ``make test``; the toolkit's own tests are in tests/unit/test_datagen.py,
the contract checks every project shares in modelops.testing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelops.config.settings import Settings
from modelops.core import synthetic
from modelops.core.errors import DataError
from modelops.core.synthetic import SECOND_US, GenerationSummary, Window, rng
from modelops.testing import Generated, contract, holdout_auc, project_data_of
from modelops.testing import drift_timestamp as _drift_timestamp

CREDIT = project_data_of(__file__)
PROJECT, data = CREDIT.project, CREDIT.data

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
}
CREDIT_ROWS = 20_000


def _generate(out_dir: Path, rows: int | None = None, **kw: object) -> GenerationSummary:
    return CREDIT.generate(out_dir, rows, **kw)


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    return CREDIT.scenarios(tmp_path_factory.mktemp("credit"), CREDIT_ROWS)


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


def _month_ends(monthly: pd.DataFrame) -> pd.Series:
    """The last second of the month each monthly row summarises (it is stamped a day later)."""
    return monthly["event_timestamp"] - pd.Timedelta(days=1)


# --- contract ---------------------------------------------------------------------------------


def test_defaults_are_documented_values() -> None:
    window, rows = data.DEFAULT_WINDOW, data.DEFAULT_ROWS
    assert window == (date(2021, 1, 1), date(2025, 12, 31))
    assert rows == 40_000
    assert synthetic.default_drift_start(*data.DEFAULT_WINDOW) == date(2024, 5, 3)


def test_columns_and_types_are_the_feature_store_contract(credit: dict[str, Generated]) -> None:
    contract.assert_tables_match_schemas(credit["healthy"][0], SCHEMAS)


def test_the_label_table_and_columns_are_those_project_yaml_names() -> None:
    contract.assert_label_columns_in(PROJECT, SCHEMAS)


def test_summary_matches_the_files(credit: dict[str, Generated]) -> None:
    contract.assert_summary_matches_files(PROJECT, credit["healthy"], CREDIT_ROWS)
    default = synthetic.default_drift_start(*data.DEFAULT_WINDOW)
    assert credit["concept-drift"][0].drift_start == default


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    contract.assert_seed_decides_the_bytes(CREDIT, tmp_path, "covariate-drift")


def test_a_window_too_short_for_a_monthly_row_is_refused_naming_end(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--end 2025-03-31"):
        _generate(tmp_path, 1_000, start=date(2025, 3, 2), end=date(2025, 3, 31))
    assert not list(tmp_path.glob("*"))


def test_healthy_ignores_drift_start_and_the_first_row_is_available_a_day_after_january(
    tmp_path: Path,
) -> None:
    healthy = _generate(tmp_path, 500, drift_start=date(1900, 1, 1))
    assert healthy.drift_start is None
    assert healthy.tables[0].start.date() == date(2021, 2, 1)  # January, available Feb 1
    assert healthy.tables[1].end.date() <= date(2025, 12, 31)


# --- credit_risk --------------------------------------------------------------------------------


def test_credit_monthly_rows_are_month_ends_per_company(
    credit: dict[str, Generated],
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
    credit: dict[str, Generated],
) -> None:
    monthly = credit["healthy"][1]["credit_company_monthly"]
    month = _month_ends(monthly).dt.month
    by_month = monthly.groupby([monthly["sector"], month])["inflow_total"].mean()
    assert by_month["hospitality"][7] > 1.4 * by_month["hospitality"][1]
    assert by_month["construction"][1] < 0.8 * by_month["construction"][7]


def test_credit_applications_follow_a_monthly_row_and_labels_arrive_a_year_later(
    credit: dict[str, Generated],
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
    grid = data.MonthGrid.build(window)
    companies = data._companies(60, grid, 3)
    panel = data._simulate(companies, 0, 60, grid, None, rng(3, 3, 0))
    month = grid.first_row + 6
    company = int(np.flatnonzero(companies.founded <= month - 2)[0])
    closed = int(grid.month_end_s[month]) + 3_600  # the month has ended, its row is not out yet
    published = int(grid.available_s[month]) + 1

    def probability(row_month: int) -> float:
        return float(
            data._default_probability(
                data.HEALTHY_MODEL,
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
    apps = data.Applications(
        company=np.array([company, company]),
        second=np.array([closed, published]),
        requested_amount=np.array([20_000.0, 20_000.0]),
        noise=np.zeros(2),
        draw=np.full(2, draw),
    )
    labelled = data._application_rows(np.arange(2), apps, panel, companies, 0, grid, window, None)
    assert labelled["default_12m"].tolist() == [int(draw < previous), int(draw < this)]

    monthly = data._monthly_rows(panel, companies, 0, grid, window)
    mine = monthly["company_id"] == data.FIRST_COMPANY_ID + company
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
    from modelops.services import data as data_service
    from modelops.services import features
    from modelops.services.context import feature_repo

    (summary,) = data_service.generate(workspace, ["credit_risk"], rows=3_000, seed=5)
    tables = {t.name: pd.read_parquet(t.path) for t in summary.tables}
    others = [p for p in data_service.projects_with_data(workspace) if p != "credit_risk"]
    if others:  # every feature view's source must exist for feast apply
        data_service.generate(workspace, others, rows=200, seed=5)
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
    credit: dict[str, Generated],
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
    credit: dict[str, Generated],
) -> None:
    frame = _credit_training_frame(credit["healthy"][1])
    features = [*list(SCHEMAS["credit_company_monthly"])[3:], "requested_amount"]
    features += ["requested_to_inflow", "net_cash_flow_ratio"]
    auc = holdout_auc(frame, features, "default_12m")
    assert 0.75 <= auc <= 0.88, auc


def test_credit_before_drift_is_the_healthy_data(
    credit: dict[str, Generated],
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
    credit: dict[str, Generated],
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
    credit: dict[str, Generated],
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
