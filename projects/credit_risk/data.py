"""Example data of credit_risk (SME lending): monthly bank-transaction aggregates per company and
credit applications. ``modelops data generate --project credit_risk`` writes
``credit_company_monthly`` and ``credit_applications``; see :mod:`modelops.core.synthetic` for the
arguments and scenarios.

How the data comes about:

* Every company has a sector, a size (typical monthly inflow) and a founding month; young
  companies ramp up over their first year or so.
* A latent *health* drifts month by month (an AR(1) random walk with occasional shocks). Healthy
  companies earn more, keep wider margins and hold more cash; sectors have seasonal inflow
  (hospitality peaks in summer, construction dips in winter, retail peaks in December) while
  costs are stickier, so off-season months burn cash.
* Cash is a stock: each month adds the net cash flow and drifts back towards a reserve. The monthly
  row summarises the daily balance: mean, minimum, volatility and days below zero.
* A month's row is computed the day after the month ends and is stamped with that time (its
  ``event_timestamp`` and ``created_timestamp``): the time it became available, so a
  point-in-time join as of an application never sees a row that did not exist yet.
* Applications arrive uniformly in time from companies that already have an available monthly
  row. Whether a company defaults within 12 months is a logistic function of what the bank could
  see at the application (the latest monthly row available then and the request itself), of the
  latent health now and six months later, and of noise. Rows available only after the
  application never enter the label.

Drift (from ``drift_start`` on; earlier events are identical to the healthy scenario):

* ``covariate-drift``: a downturn. Inflow falls by 25 % and costs by 15 %, so balances shrink and
  days below zero rise; 35 % of applications come from hospitality and construction companies
  instead of the company otherwise drawn. The default model is unchanged.
* ``concept-drift``: inputs are unchanged, the default model is not: sectors swap risk ranks,
  days below zero and overdraft depth stop mattering and the revenue trend weighs twice as much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import DataError
from modelops.core.synthetic import (
    DAY_S,
    SECOND_US,
    GeneratedTable,
    Window,
    categorical,
    chunk_bounds,
    rng,
    sigmoid,
    timestamp_type,
)
from modelops.integrations.parquet import atomic_tables

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

MONTHLY = "credit_company_monthly"
APPLICATIONS = "credit_applications"
DEFAULT_WINDOW = (date(2021, 1, 1), date(2025, 12, 31))
DEFAULT_ROWS = 40_000

APPLICATIONS_PER_COMPANY = 4
MIN_COMPANIES = 50
COMPANIES_PER_CHUNK = 10_000
BURN_IN_MONTHS = 6
HEALTH_PERSISTENCE = 0.96
SHOCKS_PER_MONTH = 0.01
LABEL_HORIZON_MONTHS = 12
FIRST_COMPANY_ID = 100_001
AVAILABLE_AFTER_S = DAY_S  # a month's aggregates are computed the day after it ends


@dataclass(frozen=True)
class Sector:
    name: str
    share: float
    log_inflow: float
    volatility: float
    peak_month: int
    seasonality: float
    risk: float
    risk_after_concept_drift: float


SECTORS = (
    #      name             share  log €/month  daily σ  peak  swing  risk   risk (concept drift)
    Sector("retail",        0.20,  10.6,        0.20,    12,   0.12,  0.20,  -0.10),
    Sector("construction",  0.14,  11.0,        0.28,    7,    0.25,  0.45,  -0.20),
    Sector("hospitality",   0.12,  10.4,        0.26,    7,    0.35,  0.55,  -0.35),
    Sector("manufacturing", 0.12,  11.5,        0.18,    5,    0.05,  0.00,  0.25),
    Sector("services",      0.22,  10.5,        0.15,    3,    0.04,  -0.20, 0.35),
    Sector("transport",     0.10,  10.9,        0.22,    10,   0.08,  0.25,  0.00),
    Sector("it",            0.10,  10.8,        0.20,    11,   0.05,  -0.35, 0.55),
)  # fmt: skip


@dataclass(frozen=True)
class Downturn:
    """Covariate drift: multipliers on monthly flows, and the share of applications that come
    from hospitality and construction companies instead of the company drawn at random."""

    inflow: float = 0.75
    outflow: float = 0.85
    moved_applications: float = 0.35
    sectors: tuple[str, ...] = ("hospitality", "construction")


DOWNTURN = Downturn()


@dataclass(frozen=True)
class DefaultModel:
    """Log-odds of a default within 12 months, term by term.

    Some terms are deliberately non-linear, as in real credit data: the first day in overdraft
    matters more than each further one, a falling revenue hurts more than a rising one helps,
    companies under two years old carry extra risk (much more so when they are already overdrawn),
    an overdraft deeper than half a month of inflow is a step up in risk, and requests above three
    months of inflow weigh disproportionately.
    """

    intercept: float = -4.4
    health: float = -0.4
    health_in_six_months: float = -0.35
    any_negative_balance_day: float = 0.6
    negative_balance_days: float = 0.025
    balance_min_to_inflow: float = -0.3
    revenue_decline: float = -2.4
    revenue_growth: float = -0.4
    log_requested_to_inflow: float = 0.15
    requested_above_three_months: float = 0.6
    young_company: float = 0.6
    young_and_overdrawn: float = 0.9
    cash_buffer_exhausted: float = 0.8
    log_age_years: float = -0.1
    noise: float = 1.0
    sector_risk_after_concept_drift: bool = False


HEALTHY_MODEL = DefaultModel()
CONCEPT_DRIFT_MODEL = replace(
    HEALTHY_MODEL,
    intercept=HEALTHY_MODEL.intercept + 0.4,
    any_negative_balance_day=0.0,
    negative_balance_days=0.0,
    young_and_overdrawn=0.0,
    cash_buffer_exhausted=0.0,
    revenue_decline=2 * HEALTHY_MODEL.revenue_decline,
    revenue_growth=2 * HEALTHY_MODEL.revenue_growth,
    sector_risk_after_concept_drift=True,
)


def schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    ts = timestamp_type()
    return {
        MONTHLY: pa.schema(
            [
                ("company_id", pa.int64()),
                ("event_timestamp", ts),
                ("created_timestamp", ts),
                ("inflow_total", pa.float64()),
                ("outflow_total", pa.float64()),
                ("balance_mean", pa.float64()),
                ("balance_min", pa.float64()),
                ("balance_volatility", pa.float64()),
                ("negative_balance_days", pa.int64()),
                ("revenue_trend", pa.float64()),
                ("company_age_months", pa.int64()),
                ("sector", pa.string()),
            ]
        ),
        APPLICATIONS: pa.schema(
            [
                ("application_id", pa.int64()),
                ("company_id", pa.int64()),
                ("event_timestamp", ts),
                ("requested_amount", pa.float64()),
                ("default_12m", pa.int64()),
                ("label_available_at", ts),
            ]
        ),
    }


@dataclass(frozen=True)
class MonthGrid:
    """Calendar months simulated, as ``year * 12 + month - 1``, with a burn-in before the window
    (for trends and cash) and a horizon after it (for the latent future of late applications).

    Rows are written for the months that end in the window; each is stamped when it becomes
    available (:attr:`available_s`), the last one possibly just after the window.
    """

    months: np.ndarray
    month_end_s: np.ndarray
    days_in_month: np.ndarray
    first_row: int
    last_row: int

    @classmethod
    def build(cls, window: Window) -> MonthGrid:
        import numpy as np

        first = window.start.year * 12 + window.start.month - 1
        last = window.end.year * 12 + window.end.month - 1
        months = np.arange(first - BURN_IN_MONTHS - 1, last + LABEL_HORIZON_MONTHS + 2)
        month_start = (months - (1970 * 12)).astype("datetime64[M]").astype("datetime64[D]")
        next_start = (months + 1 - (1970 * 12)).astype("datetime64[M]").astype("datetime64[D]")
        days_in_month = (next_start - month_start).astype(np.int64)
        origin = np.datetime64(window.start, "D")
        month_end_s = (next_start - origin).astype(np.int64) * DAY_S - 1
        in_window = (month_end_s >= 0) & (month_end_s <= window.last_second)
        rows = np.flatnonzero(in_window)
        if rows.size == 0 or month_end_s[rows[0]] + AVAILABLE_AFTER_S >= window.last_second:
            raise DataError(
                f"--end {window.end}: credit_risk needs a month ending at least two days before "
                f"--end, so that a monthly row is available before the last day (window "
                f"{window.start}..{window.end} is too short)"
            )
        return cls(months, month_end_s, days_in_month, int(rows[0]), int(rows[-1]))

    @property
    def available_s(self) -> np.ndarray:
        """When each month's row becomes available (and is stamped), in window seconds."""
        return self.month_end_s + AVAILABLE_AFTER_S

    @property
    def calendar_month(self) -> np.ndarray:
        return self.months % 12 + 1


@dataclass(frozen=True)
class Companies:
    """Static attributes of every company; months are indices into the grid."""

    sector: np.ndarray
    log_size: np.ndarray
    founded: np.ndarray
    first_row: np.ndarray

    def __len__(self) -> int:
        return len(self.sector)


def _companies(n: int, grid: MonthGrid, seed: int) -> Companies:
    import numpy as np

    gen = rng(seed, 1, 0)
    shares = np.array([s.share for s in SECTORS])
    sector = gen.choice(len(SECTORS), size=n, p=shares / shares.sum())
    log_size = np.array([s.log_inflow for s in SECTORS])[sector] + gen.normal(0.0, 0.7, n)
    months_before = np.minimum(gen.exponential(60.0, n), 360).astype(np.int64)
    founded_before = grid.first_row - 6 - months_before
    founded_during = gen.integers(grid.first_row, grid.last_row + 1, n)
    founded = np.where(gen.random(n) < 0.3, founded_during, founded_before)
    first_row = np.maximum(founded, grid.first_row)
    return Companies(sector, log_size, founded, first_row)


@dataclass(frozen=True)
class Applications:
    """Applications in time order; ``noise`` and ``draw`` decide the label."""

    company: np.ndarray
    second: np.ndarray
    requested_amount: np.ndarray
    noise: np.ndarray
    draw: np.ndarray


def _applications(
    n: int, companies: Companies, grid: MonthGrid, window: Window, scenario: str, seed: int
) -> Applications:
    """Application times uniform over the window, each from a company whose first monthly row
    is already available."""
    import numpy as np

    gen = rng(seed, 2, 0)
    first_row_s = grid.available_s[companies.first_row]
    second = np.sort(gen.integers(first_row_s.min() + 1, window.last_second + 1, n))
    u = gen.random((n, 3))
    company = _existing_company(first_row_s, second, u[:, 0])

    drift_second = window.drift_second
    if scenario == "covariate-drift" and drift_second is not None:
        codes = [i for i, s in enumerate(SECTORS) if s.name in DOWNTURN.sectors]
        hit = np.flatnonzero(np.isin(companies.sector, codes))
        moved = np.flatnonzero((second >= drift_second) & (u[:, 1] < DOWNTURN.moved_applications))
        instead = _existing_company(first_row_s[hit], second[moved], u[moved, 2])
        company[moved[instead >= 0]] = hit[instead[instead >= 0]]

    month = np.searchsorted(grid.month_end_s, second, side="right") - 1
    age = np.maximum(month - companies.founded[company], 0)
    typical_inflow = np.exp(companies.log_size[company]) * _ramp(age)
    requested = typical_inflow * np.exp(gen.normal(math.log(2.5), 0.6, n))
    requested_amount = np.maximum(np.round(requested / 500.0) * 500.0, 2_000.0)
    return Applications(company, second, requested_amount, gen.normal(0.0, 1.0, n), gen.random(n))


def _existing_company(first_row_s: np.ndarray, second: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each time, a company drawn uniformly among those with a monthly row available before
    it (an index into ``first_row_s``), or -1 when there is none."""
    import numpy as np

    order = np.argsort(first_row_s, kind="stable")
    eligible = np.searchsorted(first_row_s[order], second, side="left")
    pick = np.minimum((u * eligible).astype(np.int64), np.maximum(eligible - 1, 0))
    return np.where(eligible > 0, order[pick], -1)


def _ramp(age_months: np.ndarray) -> np.ndarray:
    """Share of its eventual size a company has reached after ``age_months``."""
    import numpy as np

    return 1.0 - 0.6 * np.exp(-np.maximum(age_months, 0) / 9.0)


@dataclass(frozen=True)
class MonthlyPanel:
    """Simulated months of a chunk of companies: arrays of shape (companies, grid months)."""

    age: np.ndarray
    health: np.ndarray
    inflow: np.ndarray
    outflow: np.ndarray
    balance_mean: np.ndarray
    balance_min: np.ndarray
    balance_volatility: np.ndarray
    negative_balance_days: np.ndarray
    revenue_trend: np.ndarray


def _simulate(
    companies: Companies,
    lo: int,
    hi: int,
    grid: MonthGrid,
    downturn_from: int | None,
    gen: np.random.Generator,
) -> MonthlyPanel:
    """Every grid month of companies ``[lo, hi)``; the downturn scales flows from its month on."""
    import numpy as np

    sector, log_size, founded = (
        companies.sector[lo:hi],
        companies.log_size[lo:hi],
        companies.founded[lo:hi],
    )
    n, m = len(sector), len(grid.months)
    age = np.arange(m)[None, :] - founded[:, None]
    alive = age >= 0

    health = np.empty((n, m))
    health[:, 0] = gen.normal(0.0, 1.0, n)
    innovation = gen.normal(0.0, math.sqrt(1 - HEALTH_PERSISTENCE**2), (n, m))
    shock = np.where(gen.random((n, m)) < SHOCKS_PER_MONTH, -gen.normal(1.2, 0.4, (n, m)), 0.0)
    for t in range(1, m):
        health[:, t] = HEALTH_PERSISTENCE * health[:, t - 1] + innovation[:, t] + shock[:, t]

    peak = np.array([s.peak_month for s in SECTORS])[sector]
    swing = np.array([s.seasonality for s in SECTORS])[sector]
    season = 1.0 + swing[:, None] * np.cos(
        2 * np.pi * (grid.calendar_month[None, :] - peak[:, None]) / 12.0
    )
    typical = np.exp(log_size)[:, None] * _ramp(age) * alive
    margin = 0.06 + 0.05 * health + gen.normal(0.0, 0.03, (n, m))
    inflow = typical * season * np.exp(0.12 * health + gen.normal(0.0, 0.08, (n, m)))
    # Costs follow only half of the seasonal swing, so off-season months burn cash.
    outflow = (
        typical * (0.5 + 0.5 * season) * (1.0 - margin) * np.exp(gen.normal(0.0, 0.04, (n, m)))
    )
    if downturn_from is not None:
        inflow[:, downturn_from:] *= DOWNTURN.inflow
        outflow[:, downturn_from:] *= DOWNTURN.outflow
    net = inflow - outflow

    # Owners top up or withdraw, pulling cash 30 % of the way back to the reserve each month.
    reserve = 1.3 * typical * np.exp(0.5 * health)
    cash = np.empty((n, m))
    opening = np.empty((n, m))
    previous = np.zeros(n)
    for t in range(m):
        previous = np.where(age[:, t] == 0, reserve[:, t], previous)
        opening[:, t] = previous
        previous = 0.7 * previous + 0.3 * reserve[:, t] + net[:, t]
        cash[:, t] = previous

    intraday = typical * season * np.array([s.volatility for s in SECTORS])[sector][:, None]
    intraday *= np.exp(gen.normal(0.0, 0.25, (n, m)))
    balance_mean = 0.5 * (opening + cash)
    balance_volatility = np.sqrt(intraday**2 + net**2 / 12.0)
    dip = 1.2 + 0.8 * gen.random((n, m))
    balance_min = balance_mean - 0.5 * np.abs(net) - dip * intraday
    # Daily balances spread around the mean; a negative minimum means at least one day below zero.
    share_negative = sigmoid(-1.7 * balance_mean / np.maximum(balance_volatility, 1.0))
    days = gen.binomial(np.broadcast_to(grid.days_in_month, (n, m)), share_negative)
    negative_days = np.where(balance_min < 0, np.maximum(days, 1), 0)

    return MonthlyPanel(
        age=age,
        health=health,
        inflow=inflow,
        outflow=outflow,
        balance_mean=balance_mean,
        balance_min=balance_min,
        balance_volatility=balance_volatility,
        negative_balance_days=negative_days,
        revenue_trend=_revenue_trend(inflow, alive),
    )


def _revenue_trend(inflow: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Mean inflow of the last three months over that of the three before, minus one.

    Months before founding are left out; with no earlier quarter the trend is 0.
    """
    import numpy as np

    def rolling_sum(x: np.ndarray, lag: int) -> np.ndarray:
        padded = np.concatenate([np.zeros((x.shape[0], 3 + lag)), np.cumsum(x, axis=1)], axis=1)
        return padded[:, 3 : 3 + x.shape[1]] - padded[:, : x.shape[1]]

    months = alive.astype(np.float64)
    recent = rolling_sum(inflow, 0) / np.maximum(rolling_sum(months, 0), 1.0)
    earlier_months = rolling_sum(months, 3)
    earlier = rolling_sum(inflow, 3) / np.maximum(earlier_months, 1.0)
    trend = np.where(earlier_months > 0, recent / np.maximum(earlier, 1e-9) - 1.0, 0.0)
    return np.clip(trend, -0.9, 1.5)


def _default_probability(
    model: DefaultModel,
    panel: MonthlyPanel,
    company: np.ndarray,
    month: np.ndarray,
    sector: np.ndarray,
    requested_amount: np.ndarray,
    noise: np.ndarray,
) -> np.ndarray:
    """P(default within 12 months), from monthly row ``month`` (the latest one available at each
    application) and the latent health then and six months later."""
    import numpy as np

    def at(values: np.ndarray, offset: int = 0) -> np.ndarray:
        return values[company, month + offset]

    inflow = np.maximum(at(panel.inflow), 1.0)
    risks = [
        s.risk_after_concept_drift if model.sector_risk_after_concept_drift else s.risk
        for s in SECTORS
    ]
    negative_days = at(panel.negative_balance_days)
    trend = at(panel.revenue_trend)
    age = at(panel.age)
    log_requested = np.log(requested_amount / inflow)
    logit = (
        model.intercept
        + np.array(risks)[sector]
        + model.health * at(panel.health)
        + model.health_in_six_months * at(panel.health, 6)
        + model.any_negative_balance_day * (negative_days > 0)
        + model.negative_balance_days * negative_days
        + model.balance_min_to_inflow * np.clip(at(panel.balance_min) / inflow, -3.0, 3.0)
        + model.revenue_decline * np.minimum(trend, 0.0)
        + model.revenue_growth * np.maximum(trend, 0.0)
        + model.log_requested_to_inflow * log_requested
        + model.requested_above_three_months * np.maximum(log_requested - math.log(3.0), 0.0)
        + model.young_company * (age < 24)
        + model.young_and_overdrawn * ((age < 24) & (negative_days > 0))
        + model.cash_buffer_exhausted * (at(panel.balance_min) < -0.5 * inflow)
        + model.log_age_years * np.log1p(age / 12.0)
        + model.noise * noise
    )
    return sigmoid(logit)


def _monthly_rows(
    panel: MonthlyPanel, companies: Companies, lo: int, grid: MonthGrid, window: Window
) -> dict[str, Any]:
    """Columns of ``credit_company_monthly`` for the chunk starting at company ``lo``."""
    import numpy as np

    month_index = np.arange(len(grid.months))
    in_window = (month_index >= grid.first_row) & (month_index <= grid.last_row)
    local, month = np.nonzero((panel.age >= 0) & in_window)
    available_us = window.origin_us + grid.available_s[month] * SECOND_US
    return {
        "company_id": FIRST_COMPANY_ID + lo + local,
        "event_timestamp": available_us,
        "created_timestamp": available_us,
        "inflow_total": np.round(panel.inflow[local, month], 2),
        "outflow_total": np.round(panel.outflow[local, month], 2),
        "balance_mean": np.round(panel.balance_mean[local, month], 2),
        "balance_min": np.round(panel.balance_min[local, month], 2),
        "balance_volatility": np.round(panel.balance_volatility[local, month], 2),
        "negative_balance_days": panel.negative_balance_days[local, month],
        "revenue_trend": np.round(panel.revenue_trend[local, month], 4),
        "company_age_months": panel.age[local, month],
        "sector": categorical(companies.sector[lo + local], [s.name for s in SECTORS]),
    }


def _application_rows(
    index: np.ndarray,
    apps: Applications,
    panel: MonthlyPanel,
    companies: Companies,
    lo: int,
    grid: MonthGrid,
    window: Window,
    concept_drift_from: int | None,
) -> dict[str, Any]:
    """Columns of ``credit_applications`` for applications ``index``, all from the chunk at
    ``lo``, labelled from the latest monthly row available at each application."""
    import numpy as np

    company, second = apps.company[index], apps.second[index]
    inputs = (
        panel,
        company - lo,
        np.searchsorted(grid.available_s, second, side="right") - 1,
        companies.sector[company],
        apps.requested_amount[index],
        apps.noise[index],
    )
    probability = _default_probability(HEALTHY_MODEL, *inputs)
    if concept_drift_from is not None:
        drifted = second >= concept_drift_from
        probability = np.where(
            drifted, _default_probability(CONCEPT_DRIFT_MODEL, *inputs), probability
        )
    event_us = window.origin_us + second * SECOND_US
    return {
        "application_id": index + 1,
        "company_id": FIRST_COMPANY_ID + company,
        "event_timestamp": event_us,
        "requested_amount": apps.requested_amount[index],
        "default_12m": (apps.draw[index] < probability).astype(np.int64),
        "label_available_at": event_us + 365 * DAY_S * SECOND_US,
    }


def generate(
    out_dir: Path, window: Window, rows: int, scenario: str, seed: int
) -> tuple[tuple[GeneratedTable, ...], float]:
    """Write both tables; returns them and the default rate of the applications."""
    import numpy as np

    grid = MonthGrid.build(window)
    companies = _companies(max(MIN_COMPANIES, rows // APPLICATIONS_PER_COMPANY), grid, seed)
    apps = _applications(rows, companies, grid, window, scenario, seed)
    drift_second = window.drift_second
    downturn_from = None
    if scenario == "covariate-drift" and drift_second is not None:
        downturn_from = int(np.searchsorted(grid.month_end_s, drift_second))
    concept_drift_from = drift_second if scenario == "concept-drift" else None

    by_company = np.argsort(apps.company, kind="stable")
    app_bounds = np.searchsorted(apps.company[by_company], np.arange(len(companies) + 1))
    defaults = 0
    with atomic_tables(out_dir, schemas()) as writers:
        for chunk, (lo, hi) in enumerate(chunk_bounds(len(companies), COMPANIES_PER_CHUNK)):
            panel = _simulate(companies, lo, hi, grid, downturn_from, rng(seed, 3, chunk))
            writers[MONTHLY].write(_monthly_rows(panel, companies, lo, grid, window))
            index = by_company[app_bounds[lo] : app_bounds[hi]]
            labelled = _application_rows(
                index, apps, panel, companies, lo, grid, window, concept_drift_from
            )
            writers[APPLICATIONS].write(labelled)
            defaults += int(labelled["default_12m"].sum())
    return tuple(w.table() for w in writers.values()), defaults / rows
