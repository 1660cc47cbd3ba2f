"""Features of the fraud project: account rolling aggregates plus the payment being screened.

The feature service ``fraud_v1`` is the contract between training and serving.
"""

from datetime import timedelta

from entities import account
from feast import FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

account_activity_source = FileSource(
    name="fraud_account_activity",
    path="data/fraud_account_activity.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Rolling aggregates of each account's earlier payments.",
)

account_activity = FeatureView(
    name="account_activity",
    entities=[account],
    ttl=timedelta(days=7),
    schema=[
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="txn_amount_1h", dtype=Float64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="txn_amount_24h", dtype=Float64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="txn_amount_7d", dtype=Float64),
        Field(name="distinct_merchants_24h", dtype=Int64),
        Field(name="account_age_days", dtype=Int64),
    ],
    source=account_activity_source,
    online=True,
    tags={"project": "fraud"},
)

payment_request = RequestSource(
    name="payment_request",
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="merchant_category", dtype=String),
        Field(name="hour_of_day", dtype=Int64),
    ],
    description="The payment being screened, as the payment processor sends it.",
)


@on_demand_feature_view(
    sources=[account_activity, payment_request],
    schema=[
        Field(name="txn_amount", dtype=Float64),
        Field(name="txn_merchant_category", dtype=String),
        Field(name="txn_hour", dtype=Int64),
        Field(name="amount_to_avg_24h", dtype=Float64),
        Field(name="amount_to_avg_7d", dtype=Float64),
    ],
    mode="python",
    description="The payment compared with the account's recent behaviour.",
)
def payment_features(inputs: dict) -> dict:
    # Python mode: one call per request online, no pandas. An average that is unknown or not
    # positive gives -1.0. Self-contained: Feast re-runs its source text, with builtins only.
    def to_average(amount, amount_total, count):
        if amount is None:
            return None
        if amount_total is None or count is None:
            return -1.0
        average = float(amount_total) / max(float(count), 1.0)
        return float(amount) / average if average > 0 else -1.0

    out: dict = {
        "txn_amount": [],
        "txn_merchant_category": [],
        "txn_hour": [],
        "amount_to_avg_24h": [],
        "amount_to_avg_7d": [],
    }
    for amount, category, hour, total_24h, count_24h, total_7d, count_7d in zip(
        inputs["amount"],
        inputs["merchant_category"],
        inputs["hour_of_day"],
        inputs["txn_amount_24h"],
        inputs["txn_count_24h"],
        inputs["txn_amount_7d"],
        inputs["txn_count_7d"],
        strict=True,
    ):
        out["txn_amount"].append(None if amount is None else float(amount))
        out["txn_merchant_category"].append(None if category is None else str(category))
        out["txn_hour"].append(None if hour is None else int(hour))
        out["amount_to_avg_24h"].append(to_average(amount, total_24h, count_24h))
        out["amount_to_avg_7d"].append(to_average(amount, total_7d, count_7d))
    return out


fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[account_activity, payment_features],
    description="Inputs of the fraud model, for training and serving alike.",
    tags={"project": "fraud"},
)
