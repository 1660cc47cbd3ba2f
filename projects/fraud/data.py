"""Example data of fraud: card payments, and each account's rolling activity just before every
payment. ``modelops data generate --project fraud`` writes ``fraud_account_activity`` and
``fraud_transactions``; see :mod:`modelops.core.synthetic` for the arguments and scenarios.

How the data comes about:

* Accounts open at different times; how active they are is heavy-tailed (log-normal). Each has
  its own mix of merchant categories, a spending level, and a few favourite merchants per
  category that it returns to most of the time.
* Genuine payments follow daily and weekly rhythms per category (few at night; restaurants,
  entertainment and gambling busier at weekends); some come in quick sessions of several payments.
* Fraud happens in episodes on a compromised account: mostly bursts of several payments minutes
  apart, often at night, in risky categories (electronics, online retail, gambling, travel), for
  larger amounts than the account usually spends, each at a new merchant. About a third are
  single, quieter payments that look much like genuine ones.
* ``fraud_account_activity`` holds one snapshot per payment, one second before it: counts and
  sums over the account's earlier payments in the last hour, day and week (the payment itself
  excluded), distinct merchants in the last day, and the account's age.
* Chargebacks confirm fraud 2 to 30 days after the payment; genuine payments are confirmed when
  the 30-day dispute window closes, so ``label_available_at`` is at most 30 days out.

Drift (from ``drift_start`` on; earlier events are identical to the healthy scenario):

* ``covariate-drift``: all amounts rise by 40 %, 30 % of genuine payments move to online retail,
  and every category's busy hours move two hours later. Fraud arises as before.
* ``concept-drift``: payments look as before, but fraudsters mimic their victims: daytime hours,
  the account's usual categories and amounts. Bursts stay bursts (several payments minutes
  apart, each at a new merchant), so fraud then shows mainly as many distinct (new) merchants
  within a short time, where a genuine session returns to favourite merchants.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.core.synthetic import (
    DAY_S,
    SECOND_US,
    GeneratedTable,
    Window,
    categorical,
    chunk_bounds,
    rng,
    timestamp_type,
)
from modelops.integrations.parquet import atomic_tables

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

TRANSACTIONS = "fraud_transactions"
ACTIVITY = "fraud_account_activity"
DEFAULT_WINDOW = (date(2025, 7, 1), date(2025, 12, 31))
DEFAULT_ROWS = 200_000

TRANSACTIONS_PER_ACCOUNT = 50
MIN_ACCOUNTS = 20
ACCOUNTS_PER_CHUNK = 5_000
FIRST_ACCOUNT_ID = 5_000_001
HOUR_S = 3_600
WEEK_S = 7 * DAY_S

FRAUD_RATE = 0.005
BURST_SHARE = 0.65
BURST_EXTRA_MEAN = 2.0
MEAN_EPISODE_SIZE = BURST_SHARE * (2 + BURST_EXTRA_MEAN) + (1 - BURST_SHARE)
FAVOURITES = 3
FAVOURITE_SHARE = 0.7
SESSION_SHARE = 0.1
CHARGEBACK_DAYS = (2, 30)

DRILL_BROKEN_FEATURES = ("distinct_merchants_24h",)
"""What ``simulate --scenario bad-model`` breaks in its version's training rows by default: the
signal concept drift leaves (many new merchants within a day), which hours, categories and
amounts largely stand in for on healthy data."""
DRILL_BROKEN_CAP = 2
"""How it is broken: capped at 2 (an upstream counter that saturates), so the version learns
"several merchants" but never "many"; the healthy holdout barely shows it."""

COVARIATE_AMOUNT_FACTOR = 1.4
COVARIATE_ONLINE_SWITCH = 0.3
COVARIATE_HOUR_SHIFT = 2


@dataclass(frozen=True)
class Category:
    name: str
    share: float
    median_amount: float
    weekend: float
    busy_hours: tuple[int, ...]
    fraud_share: float


CATEGORIES = (
    #        name             genuine  median €  weekend  busy hours  fraud
    Category("grocery",       0.26,    32.0,     1.15,    (11, 18),   0.04),
    Category("fuel",          0.11,    55.0,     1.00,    (8, 17),    0.05),
    Category("restaurants",   0.15,    28.0,     1.40,    (13, 20),   0.03),
    Category("pharmacy",      0.05,    22.0,     0.70,    (11, 17),   0.01),
    Category("entertainment", 0.06,    35.0,     1.50,    (21,),      0.04),
    Category("travel",        0.04,    240.0,    1.20,    (10, 15),   0.12),
    Category("electronics",   0.04,    150.0,    1.25,    (14, 19),   0.28),
    Category("online_retail", 0.25,    48.0,     1.10,    (13, 21),   0.30),
    Category("gambling",      0.04,    40.0,     1.40,    (22,),      0.13),
)  # fmt: skip
ONLINE_RETAIL = [c.name for c in CATEGORIES].index("online_retail")
FRAUD_NIGHT_HOURS = (1,)


def schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    ts = timestamp_type()
    return {
        ACTIVITY: pa.schema(
            [
                ("account_id", pa.int64()),
                ("event_timestamp", ts),
                ("created_timestamp", ts),
                ("txn_count_1h", pa.int64()),
                ("txn_amount_1h", pa.float64()),
                ("txn_count_24h", pa.int64()),
                ("txn_amount_24h", pa.float64()),
                ("txn_count_7d", pa.int64()),
                ("txn_amount_7d", pa.float64()),
                ("distinct_merchants_24h", pa.int64()),
                ("account_age_days", pa.int64()),
            ]
        ),
        TRANSACTIONS: pa.schema(
            [
                ("transaction_id", pa.int64()),
                ("account_id", pa.int64()),
                ("event_timestamp", ts),
                ("amount", pa.float64()),
                ("merchant_category", pa.string()),
                ("hour_of_day", pa.int64()),
                ("is_fraud", pa.int64()),
                ("label_available_at", ts),
            ]
        ),
    }


def _hour_cdf(busy_hours: tuple[int, ...], floor: float, sleep: float = 0.3) -> np.ndarray:
    """Cumulative share of payments by hour: bumps around busy hours over a small floor, with the
    small hours (00-05) damped by ``sleep``."""
    import numpy as np

    hours = np.arange(24)
    weight = np.full(24, floor)
    for busy in busy_hours:
        distance = np.abs(hours - busy % 24)
        weight += np.exp(-0.5 * (np.minimum(distance, 24 - distance) / 2.5) ** 2)
    weight[:6] *= sleep
    return np.cumsum(weight) / weight.sum()


@dataclass(frozen=True)
class Calendar:
    """Inverse CDFs for drawing days and hours, per category."""

    day_cdf: np.ndarray
    hour_cdf: np.ndarray
    shifted_hour_cdf: np.ndarray
    night_cdf: np.ndarray

    @classmethod
    def build(cls, window: Window) -> Calendar:
        import numpy as np

        weekday = (window.start.weekday() + np.arange(window.days)) % 7
        weekend = np.array([c.weekend for c in CATEGORIES])[:, None] * (weekday >= 5)
        day_weight = np.where(weekday >= 5, weekend, 1.0)
        day_cdf = np.concatenate([np.zeros((len(CATEGORIES), 1)), day_weight.cumsum(1)], axis=1)

        def hours(shift: int) -> np.ndarray:
            return np.stack(
                [
                    _hour_cdf(tuple(min(h + shift, 23) for h in c.busy_hours), 0.06)
                    for c in CATEGORIES
                ]
            )

        return cls(
            day_cdf=day_cdf,
            hour_cdf=hours(0),
            shifted_hour_cdf=hours(COVARIATE_HOUR_SHIFT),
            night_cdf=_hour_cdf(FRAUD_NIGHT_HOURS, 0.15, sleep=1.0),
        )

    def day(self, category: np.ndarray, first_day: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A day in ``[first_day, last day]``, weighted by the category's weekly rhythm."""
        import numpy as np

        day = np.empty(len(category), dtype=np.int64)
        for c in range(len(CATEGORIES)):
            mask = category == c
            cdf = self.day_cdf[c]
            low = cdf[first_day[mask]]
            target = low + u[mask] * (cdf[-1] - low)
            day[mask] = np.searchsorted(cdf, target, side="right") - 1
        return np.clip(day, first_day, self.day_cdf.shape[1] - 2)

    def hour(self, category: np.ndarray, shifted: np.ndarray, u: np.ndarray) -> np.ndarray:
        import numpy as np

        hour = np.empty(len(category), dtype=np.int64)
        for c in range(len(CATEGORIES)):
            for flag, cdf in ((False, self.hour_cdf[c]), (True, self.shifted_hour_cdf[c])):
                mask = (category == c) & (shifted == flag)
                hour[mask] = np.searchsorted(cdf, u[mask], side="right")
        return np.minimum(hour, 23)

    def night_hour(self, u: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.minimum(np.searchsorted(self.night_cdf, u, side="right"), 23)


@dataclass(frozen=True)
class Accounts:
    """Accounts' opening day (relative to the window; negative: before it) and activity."""

    open_second: np.ndarray
    first_day: np.ndarray
    activity: np.ndarray
    genuine_count: np.ndarray

    def __len__(self) -> int:
        return len(self.open_second)


@dataclass(frozen=True)
class Episodes:
    """Fraud episodes, and one row per fraudulent payment (``txn_*``, grouped by episode)."""

    account: np.ndarray
    day: np.ndarray
    burst: np.ndarray
    size: np.ndarray
    start_u: np.ndarray
    night: np.ndarray
    txn_episode: np.ndarray
    txn_position: np.ndarray
    txn_u: np.ndarray
    txn_z: np.ndarray
    txn_gap: np.ndarray


def _accounts_and_episodes(rows: int, window: Window, seed: int) -> tuple[Accounts, Episodes]:
    import numpy as np

    gen = rng(seed, 11, 0)
    n = max(MIN_ACCOUNTS, rows // TRANSACTIONS_PER_ACCOUNT)
    days = window.days
    opened_before = -(1 + gen.exponential(3 * 365.0, n)).astype(np.int64)
    opened_during = gen.integers(0, max(1, days - 14), n)
    open_day = np.where(gen.random(n) < 0.2, opened_during, opened_before)
    open_second = open_day * DAY_S + gen.integers(0, DAY_S, n)
    first_day = np.maximum(open_day + 1, 0)
    active_days = days - first_day
    activity = gen.lognormal(0.0, 1.0, n)

    episodes = max(1, round(rows * FRAUD_RATE / MEAN_EPISODE_SIZE))
    burst = gen.random(episodes) < BURST_SHARE
    size = np.where(burst, 2 + gen.poisson(BURST_EXTRA_MEAN, episodes), 1)
    size = np.minimum(size, max(1, rows // 10))
    total_fraud = int(size.sum())
    exposure = np.sqrt(activity) * np.maximum(active_days - 1, 0)
    account = gen.choice(n, size=episodes, p=exposure / exposure.sum())
    last_start = np.maximum(days - 2, first_day[account])
    day = first_day[account] + (gen.random(episodes) * (last_start - first_day[account] + 1))
    day = day.astype(np.int64)

    weight = activity * active_days
    genuine = gen.multinomial(rows - total_fraud, weight / weight.sum())

    txn_episode = np.repeat(np.arange(episodes), size)
    first_of_episode = np.concatenate([[0], np.cumsum(size)[:-1]])
    return (
        Accounts(open_second, first_day, activity, genuine),
        Episodes(
            account=account,
            day=day,
            burst=burst,
            size=size,
            start_u=gen.random(episodes),
            night=gen.random(episodes) < 0.5,
            txn_episode=txn_episode,
            txn_position=np.arange(total_fraud) - first_of_episode[txn_episode],
            txn_u=gen.random((total_fraud, 6)),
            txn_z=gen.normal(0.0, 1.0, total_fraud),
            txn_gap=gen.exponential(20 * 60.0, total_fraud),
        ),
    )


@dataclass
class Payments:
    account: np.ndarray
    second: np.ndarray
    category: np.ndarray
    amount: np.ndarray
    merchant: np.ndarray
    fraud: np.ndarray

    @staticmethod
    def concat(parts: list[Payments]) -> Payments:
        import numpy as np

        return Payments(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Payments))
        )

    def take(self, order: np.ndarray) -> Payments:
        return Payments(*(getattr(self, f.name)[order] for f in fields(self)))


@dataclass(frozen=True)
class Habits:
    """Per account of a chunk: category mix, spending level, favourite merchants."""

    category_cdf: np.ndarray
    log_spend: np.ndarray
    favourites: np.ndarray

    @classmethod
    def draw(cls, n: int, gen: np.random.Generator) -> Habits:
        import numpy as np

        shares = np.array([c.share for c in CATEGORIES])
        mix = gen.dirichlet(8.0 * shares, n)
        favourites = np.arange(len(CATEGORIES))[None, :, None] * 10**7 + gen.integers(
            0, 20_000, (n, len(CATEGORIES), FAVOURITES)
        )
        return cls(np.cumsum(mix, axis=1), gen.normal(0.0, 0.45, n), favourites)

    def category(self, account: np.ndarray, u: np.ndarray) -> np.ndarray:
        import numpy as np

        below = (self.category_cdf[account] < u[:, None]).sum(axis=1)
        return np.minimum(below, len(CATEGORIES) - 1)


def _amount(category: np.ndarray, log_spend: np.ndarray, z: np.ndarray) -> np.ndarray:
    import numpy as np

    median = np.array([c.median_amount for c in CATEGORIES])[category]
    return np.maximum(median * np.exp(log_spend + z), 1.0)


def _genuine(
    accounts: Accounts,
    lo: int,
    habits: Habits,
    calendar: Calendar,
    covariate_from: int | None,
    gen: np.random.Generator,
) -> Payments:
    import numpy as np

    counts = accounts.genuine_count[lo : lo + len(habits.log_spend)]
    account = np.repeat(np.arange(len(counts)), counts)
    n = len(account)
    u = gen.random((n, 6))
    z = gen.normal(0.0, 0.6, n)

    category = habits.category(account, u[:, 0])
    day = calendar.day(category, accounts.first_day[lo + account], u[:, 1])
    drifted = np.zeros(n, dtype=bool)
    if covariate_from is not None:
        drifted = day * DAY_S >= covariate_from
        category = np.where(drifted & (u[:, 2] < COVARIATE_ONLINE_SWITCH), ONLINE_RETAIL, category)
    hour = calendar.hour(category, drifted, u[:, 3])
    second = day * DAY_S + hour * HOUR_S + (u[:, 4] * HOUR_S).astype(np.int64)
    amount = _amount(category, habits.log_spend[account], z)
    amount = np.where(drifted, amount * COVARIATE_AMOUNT_FACTOR, amount)

    slot = np.minimum((u[:, 5] / FAVOURITE_SHARE * FAVOURITES).astype(np.int64), FAVOURITES - 1)
    favourite = habits.favourites[account, category, slot]
    stranger = category * 10**7 + gen.integers(0, 10**7, n)
    merchant = np.where(u[:, 5] < FAVOURITE_SHARE, favourite, stranger)

    order = np.lexsort((second, account))
    account, second, day = account[order], second[order], day[order]
    session = gen.random(n) < SESSION_SHARE
    session[1:] &= (account[1:] == account[:-1]) & (day[1:] == day[:-1])
    session[:1] = False
    gap = gen.exponential(6 * 60.0, n).astype(np.int64) + 30
    previous = np.concatenate([second[:1], second[:-1]])
    day_end = (day + 1) * DAY_S - 1
    second = np.where(session, np.minimum(previous + gap, day_end), second)
    return Payments(
        account, second, category[order], amount[order], merchant[order], np.zeros(n, bool)
    )


def _fraudulent(
    episodes: Episodes,
    lo: int,
    hi: int,
    habits: Habits,
    calendar: Calendar,
    window: Window,
    scenario: str,
) -> Payments:
    """Payments of the episodes on accounts ``[lo, hi)``."""
    import numpy as np

    on_chunk = (episodes.account >= lo) & (episodes.account < hi)
    picked = np.flatnonzero(on_chunk[episodes.txn_episode])
    n = len(picked)
    episode = episodes.txn_episode[picked]
    account = episodes.account[episode] - lo
    day = episodes.day[episode]
    u, z = episodes.txn_u[picked], episodes.txn_z[picked]
    burst = episodes.burst[episode]

    no = np.zeros(n, dtype=bool)
    drift_second = window.drift_second
    drifted = no if drift_second is None else day * DAY_S >= drift_second
    shifted = drifted if scenario == "covariate-drift" else no
    mimic = drifted if scenario == "concept-drift" else no

    fraud_cdf = np.cumsum([c.fraud_share for c in CATEGORIES])
    risky = np.minimum(np.searchsorted(fraud_cdf, u[:, 0] * fraud_cdf[-1]), len(CATEGORIES) - 1)
    usual = habits.category(account, u[:, 0])
    category = np.where(burst | (u[:, 1] < 0.5), risky, usual)
    category = np.where(mimic, usual, category)

    first = np.flatnonzero(episodes.txn_position[picked] == 0)
    episode_start = first[np.searchsorted(first, np.arange(n), side="right") - 1]
    start_u = episodes.start_u[episode]
    start_hour = np.where(
        burst & episodes.night[episode] & ~mimic,
        calendar.night_hour(start_u),
        calendar.hour(category, shifted, start_u),
    )
    start = day * DAY_S + start_hour * HOUR_S + (u[:, 2] * HOUR_S).astype(np.int64)
    elapsed = np.cumsum(episodes.txn_gap[picked].astype(np.int64) + 20)
    in_burst = start[episode_start] + elapsed - elapsed[episode_start]

    spread_hour = calendar.hour(category, shifted, u[:, 3])
    spread = day * DAY_S + spread_hour * HOUR_S + (u[:, 4] * HOUR_S).astype(np.int64)
    # Mimicking fraudsters keep their timing (bursts minutes apart, each payment at a new
    # merchant): what gives them away is the merchants, not the hours, categories or amounts.
    second = np.minimum(np.where(mimic & ~burst, spread, in_burst), window.last_second)

    uplift = np.where(burst, 0.6, 0.3) + np.where(burst, 0.8, 0.6) * z
    uplift = np.where(mimic, 0.6 * z, uplift)
    amount = _amount(category, habits.log_spend[account], uplift)
    amount = np.where(shifted, amount * COVARIATE_AMOUNT_FACTOR, amount)
    merchant = category * 10**7 + (u[:, 5] * 10**7).astype(np.int64)
    return Payments(account, second, category, amount, merchant, np.ones(n, dtype=bool))


@dataclass(frozen=True)
class Activity:
    count_1h: np.ndarray
    amount_1h: np.ndarray
    count_24h: np.ndarray
    amount_24h: np.ndarray
    count_7d: np.ndarray
    amount_7d: np.ndarray
    distinct_merchants_24h: np.ndarray


def rolling_activity(
    account: np.ndarray, second: np.ndarray, cents: np.ndarray, merchant: np.ndarray
) -> Activity:
    """Aggregates over each account's earlier payments in ``[t - window, t)``.

    Inputs are sorted by account, then strictly increasing time within an account, so "earlier
    payments" are exactly the preceding rows of the same account.
    """
    import numpy as np

    n = len(account)
    index = np.arange(n)
    key = account.astype(np.int64) * (1 << 40) + second
    total = np.concatenate([[0], np.cumsum(cents)])

    def window(seconds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        first = np.searchsorted(key, key - seconds, side="left")
        return first, index - first, (total[index] - total[first]) / 100.0

    _, count_1h, amount_1h = window(HOUR_S)
    first_24h, count_24h, amount_24h = window(DAY_S)
    _, count_7d, amount_7d = window(WEEK_S)

    by_merchant = np.lexsort((second, merchant, account))
    repeat = (account[by_merchant][1:] == account[by_merchant][:-1]) & (
        merchant[by_merchant][1:] == merchant[by_merchant][:-1]
    )
    previous_visit = np.full(n, -1)
    previous_visit[by_merchant[1:][repeat]] = by_merchant[:-1][repeat]

    distinct = np.zeros(n, dtype=np.int64)
    pending = np.flatnonzero(count_24h > 0)
    lag = 1
    while pending.size:
        earlier = pending - lag
        distinct[pending] += previous_visit[earlier] < first_24h[pending]
        pending = pending[earlier - 1 >= first_24h[pending]]
        lag += 1
    return Activity(count_1h, amount_1h, count_24h, amount_24h, count_7d, amount_7d, distinct)


def _spaced_out(account: np.ndarray, second: np.ndarray, last_second: int) -> np.ndarray:
    """Move payments apart so that an account's payments are at least two seconds apart, keeping
    their order and the window's end.

    The snapshot of a payment at ``t`` is taken at ``t - 1``; with payments at least two seconds
    apart, no snapshot ever coincides with, or precedes, an earlier payment's time.
    """
    import numpy as np

    index = np.arange(len(second))
    offset = account.astype(np.int64) * (1 << 40)
    spaced = np.maximum.accumulate(offset + second - 2 * index) + 2 * index - offset
    later = np.searchsorted(account, account, side="right") - 1 - index
    return np.minimum(spaced, last_second - 2 * later)


def generate(
    out_dir: Path, window: Window, rows: int, scenario: str, seed: int
) -> tuple[tuple[GeneratedTable, ...], float]:
    """Write both tables; returns them and the share of fraudulent payments."""
    import numpy as np

    accounts, episodes = _accounts_and_episodes(rows, window, seed)
    calendar = Calendar.build(window)
    covariate_from = window.drift_second if scenario == "covariate-drift" else None
    category_names = [c.name for c in CATEGORIES]
    next_id = 1
    frauds = 0
    with atomic_tables(out_dir, schemas()) as writers:
        for chunk, (lo, hi) in enumerate(chunk_bounds(len(accounts), ACCOUNTS_PER_CHUNK)):
            gen = rng(seed, 12, chunk)
            habits = Habits.draw(hi - lo, gen)
            payments = Payments.concat(
                [
                    _genuine(accounts, lo, habits, calendar, covariate_from, gen),
                    _fraudulent(episodes, lo, hi, habits, calendar, window, scenario),
                ]
            )
            payments = payments.take(np.lexsort((payments.second, payments.account)))
            payments.second = _spaced_out(payments.account, payments.second, window.last_second)
            cents = np.round(payments.amount * 100).astype(np.int64)
            activity = rolling_activity(payments.account, payments.second, cents, payments.merchant)

            n = len(payments.second)
            account_id = FIRST_ACCOUNT_ID + lo + payments.account
            event_us = window.origin_us + payments.second * SECOND_US
            open_second = accounts.open_second[lo + payments.account]
            low_days, high_days = CHARGEBACK_DAYS
            delay = np.where(
                payments.fraud,
                gen.integers(low_days * DAY_S, high_days * DAY_S + 1, n),
                high_days * DAY_S,
            )
            writers[ACTIVITY].write(
                {
                    "account_id": account_id,
                    "event_timestamp": event_us - SECOND_US,
                    "created_timestamp": event_us - SECOND_US,
                    "txn_count_1h": activity.count_1h,
                    "txn_amount_1h": activity.amount_1h,
                    "txn_count_24h": activity.count_24h,
                    "txn_amount_24h": activity.amount_24h,
                    "txn_count_7d": activity.count_7d,
                    "txn_amount_7d": activity.amount_7d,
                    "distinct_merchants_24h": activity.distinct_merchants_24h,
                    "account_age_days": (payments.second - 1 - open_second) // DAY_S,
                }
            )
            writers[TRANSACTIONS].write(
                {
                    "transaction_id": next_id + np.arange(n),
                    "account_id": account_id,
                    "event_timestamp": event_us,
                    "amount": cents / 100.0,
                    "merchant_category": categorical(payments.category, category_names),
                    "hour_of_day": (payments.second // HOUR_S) % 24,
                    "is_fraud": payments.fraud.astype(np.int64),
                    "label_available_at": event_us + delay * SECOND_US,
                }
            )
            next_id += n
            frauds += int(payments.fraud.sum())
    return tuple(w.table() for w in writers.values()), frauds / rows
