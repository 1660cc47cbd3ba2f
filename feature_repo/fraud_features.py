"""Features of the fraud project: account rolling aggregates plus the payment being screened.

The feature service ``fraud_v1`` is the contract between training and serving.
"""

from datetime import timedelta

import numpy as np
import pandas as pd
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
    mode="pandas",
    description="The payment compared with the account's recent behaviour.",
)
def payment_features(inputs: pd.DataFrame) -> pd.DataFrame:
    amount = inputs["amount"].astype("float64")
    avg_24h = inputs["txn_amount_24h"] / inputs["txn_count_24h"].clip(lower=1)
    avg_7d = inputs["txn_amount_7d"] / inputs["txn_count_7d"].clip(lower=1)
    out = pd.DataFrame(index=inputs.index)
    out["txn_amount"] = amount
    out["txn_merchant_category"] = inputs["merchant_category"].astype("string")
    out["txn_hour"] = inputs["hour_of_day"].astype("int64")
    out["amount_to_avg_24h"] = np.where(avg_24h > 0, amount / avg_24h.where(avg_24h > 0), -1.0)
    out["amount_to_avg_7d"] = np.where(avg_7d > 0, amount / avg_7d.where(avg_7d > 0), -1.0)
    return out


fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[account_activity, payment_features],
    description="Inputs of the fraud model, for training and serving alike.",
    tags={"project": "fraud"},
)
