"""Training ranges: the [min, max] of each numeric feature over a version's training rows, and
the check a service makes against them.

Training records the ranges in the version's tags (``modelops.feature_ranges``); ``package``
carries them into the release manifest; the service refuses (or flags, per
``serving.out_of_range``) a feature value outside its range widened by ``serving.range_margin``
(a share of the range's width on each side). Only numeric features have a range: booleans and
categories do not, and a missing value (None, NaN) is the model's to handle, not out of range.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops.core.errors import ConfigError


class FeatureRange(BaseModel):
    """The smallest and largest value of one feature among the training rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> FeatureRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} exceeds high {self.high}")
        return self

    def widened(self, margin: float) -> tuple[float, float]:
        """The accepted interval: the range plus ``margin`` times its width on each side (a
        constant feature is widened by ``margin`` times its magnitude, at least ``margin``)."""
        width = self.high - self.low
        if width == 0:
            width = max(abs(self.low), 1.0)
        pad = margin * width
        return self.low - pad, self.high + pad


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class OutOfRange:
    feature: str
    value: float
    low: float
    high: float

    def describe(self) -> str:
        return (
            f"'{self.feature}' = {self.value:.6g} is outside [{self.low:.6g}, {self.high:.6g}] "
            "(its training range widened by serving.range_margin)"
        )


def outside(
    ranges: Mapping[str, FeatureRange], margin: float, row: Mapping[str, Any]
) -> list[OutOfRange]:
    """The features of ``row`` outside their widened training range, in ``ranges`` order.

    A non-finite number is outside every range; a missing value or a non-number is not checked.
    """
    return outside_bounds(bounds(ranges, margin, ranges), row)


def outside_bounds(
    accepted: Mapping[str, tuple[float, float]], row: Mapping[str, Any]
) -> list[OutOfRange]:
    """:func:`outside` with the accepted intervals computed once (:func:`bounds`): a service
    checks every request against the same ones."""
    found: list[OutOfRange] = []
    for name, (low, high) in accepted.items():
        value = row.get(name)
        if value is None or isinstance(value, bool):
            continue
        if type(value) is float or type(value) is int:
            number: float | None = value
        else:
            number = _numeric(value)
        if number is None or number != number:  # not a number, or NaN: not checked
            continue
        if not low <= number <= high:
            found.append(OutOfRange(name, float(number), low, high))
    return found


def bounds(
    ranges: Mapping[str, FeatureRange], margin: float, names: Iterable[str]
) -> dict[str, tuple[float, float]]:
    """The accepted interval of each of ``names`` that has a range."""
    return {name: ranges[name].widened(margin) for name in names if name in ranges}


def format_ranges(ranges: Mapping[str, FeatureRange]) -> str:
    """The tag value: compact JSON ``{"feature": [low, high]}`` in name order."""
    return json.dumps(
        {name: [r.low, r.high] for name, r in sorted(ranges.items())}, separators=(",", ":")
    )


def parse_ranges(text: str, where: str) -> dict[str, FeatureRange]:
    """A tag value back into ranges.

    Raises:
        ConfigError: not the JSON :func:`format_ranges` writes, naming ``where``.
    """
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {str(name): FeatureRange(low=pair[0], high=pair[1]) for name, pair in data.items()}
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ConfigError(f"{where}: feature ranges unreadable: {exc}") from None
