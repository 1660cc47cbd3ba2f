"""Features of the credit_risk project: monthly bank-transaction aggregates per company.

The feature service ``credit_risk_v1`` is the contract between training and serving: training
sets are built from it point-in-time, and the prediction service reads the same list online.
"""

from datetime import timedelta

import numpy as np
import pandas as pd
from entities import company
from feast import FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

company_monthly_source = FileSource(
    name="credit_company_monthly",
    path="data/credit_company_monthly.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Monthly aggregates of each company's bank transactions, computed after month end.",
)

company_monthly_financials = FeatureView(
    name="company_monthly_financials",
    entities=[company],
    ttl=timedelta(days=62),
    schema=[
        Field(name="inflow_total", dtype=Float64, description="Money in during the month."),
        Field(name="outflow_total", dtype=Float64, description="Money out during the month."),
        Field(name="balance_mean", dtype=Float64, description="Mean end-of-day balance."),
        Field(name="balance_min", dtype=Float64, description="Lowest end-of-day balance."),
        Field(name="balance_volatility", dtype=Float64, description="Std of daily balance."),
        Field(name="negative_balance_days", dtype=Int64, description="Days below zero."),
        Field(name="revenue_trend", dtype=Float64, description="3-month change of inflow."),
        Field(name="company_age_months", dtype=Int64, description="Months since founding."),
        Field(name="sector", dtype=String, description="Business sector."),
    ],
    source=company_monthly_source,
    online=True,
    tags={"project": "credit_risk"},
)

credit_application_request = RequestSource(
    name="credit_application_request",
    schema=[Field(name="requested_amount", dtype=Float64)],
    description="Fields of the credit application itself, known only at request time.",
)


@on_demand_feature_view(
    sources=[company_monthly_financials, credit_application_request],
    schema=[
        Field(name="requested_amount_log", dtype=Float64),
        Field(name="requested_to_inflow", dtype=Float64),
        Field(name="net_cash_flow_ratio", dtype=Float64),
    ],
    mode="pandas",
    description="Size of the request relative to the company's cash flow.",
)
def credit_application_features(inputs: pd.DataFrame) -> pd.DataFrame:
    inflow = inputs["inflow_total"].astype("float64").clip(lower=1.0)
    out = pd.DataFrame(index=inputs.index)
    out["requested_amount_log"] = np.log1p(inputs["requested_amount"].astype("float64"))
    out["requested_to_inflow"] = inputs["requested_amount"].astype("float64") / inflow
    out["net_cash_flow_ratio"] = (inputs["inflow_total"] - inputs["outflow_total"]) / inflow
    return out


credit_risk_v1 = FeatureService(
    name="credit_risk_v1",
    features=[company_monthly_financials, credit_application_features],
    description="Inputs of the credit_risk model, for training and serving alike.",
    tags={"project": "credit_risk"},
)
