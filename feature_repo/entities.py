"""Entities shared by every feature view: the keys predictions are made for."""

from feast import Entity, ValueType

company = Entity(
    name="company",
    join_keys=["company_id"],
    value_type=ValueType.INT64,
    description="A small or medium company that banks with us and applies for credit.",
)

account = Entity(
    name="account",
    join_keys=["account_id"],
    value_type=ValueType.INT64,
    description="A card account whose payments are screened for fraud.",
)
