"""Features of the credit_risk project: monthly bank-transaction aggregates per company.

The feature service ``credit_risk_v1`` is the contract between training and serving: training
sets are built from it point-in-time, and the prediction service reads the same list online.
"""

from datetime import timedelta

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
    mode="python",
    description="Size of the request relative to the company's cash flow.",
)
def credit_application_features(inputs: dict) -> dict:
    # Python mode: one call per request online, no pandas; a missing input gives None (null).
    # Self-contained: Feast re-runs its source text, with only builtins, `math` imported here.
    import math

    def log1p(x: float) -> float:
        return math.log1p(x) if x > -1.0 else (-math.inf if x == -1.0 else math.nan)

    amount_log, to_inflow, net_ratio = [], [], []
    for amount, inflow_total, outflow_total in zip(
        inputs["requested_amount"], inputs["inflow_total"], inputs["outflow_total"], strict=True
    ):
        inflow = None if inflow_total is None else max(float(inflow_total), 1.0)
        amount_log.append(None if amount is None else log1p(float(amount)))
        to_inflow.append(None if amount is None or inflow is None else float(amount) / inflow)
        net_ratio.append(
            None
            if inflow is None or outflow_total is None
            else (float(inflow_total) - float(outflow_total)) / inflow
        )
    return {
        "requested_amount_log": amount_log,
        "requested_to_inflow": to_inflow,
        "net_cash_flow_ratio": net_ratio,
    }


credit_risk_v1 = FeatureService(
    name="credit_risk_v1",
    features=[company_monthly_financials, credit_application_features],
    description="Inputs of the credit_risk model, for training and serving alike.",
    tags={"project": "credit_risk"},
)
