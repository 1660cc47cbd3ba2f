"""Train/serve skew comparison: tolerances, missing values, worst examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelops.core.skew import compare, difference

KEYS = [{"account_id": i} for i in range(4)]


def test_numbers_agree_within_the_relative_tolerance() -> None:
    assert difference(1.0, 1.0 + 1e-12) is None
    assert difference(1e6, 1e6 * (1 + 5e-10)) is None
    assert difference(0.0, 1e-15) is None  # the absolute floor
    assert difference(3, 3.0) is None  # an int64 column read back as float
    assert difference(np.int64(7), 7.0) is None and difference(np.float32(0.5), 0.5) is None
    assert difference(1.0, 1.0 + 1e-6) == pytest.approx(1e-6, rel=1e-3)
    assert difference(-2.0, 2.0) == pytest.approx(2.0)


def test_strings_and_missing_values() -> None:
    assert difference("retail", "retail") is None
    assert difference("retail", "Retail") == math.inf
    assert difference("1", 1) == math.inf  # a type change is skew
    assert difference(True, 1) == math.inf  # booleans are not numbers here
    for missing in (None, float("nan"), np.nan, pd.NA, pd.NaT):
        assert difference(missing, None) is None
        assert difference(missing, 1.0) == math.inf
        assert difference("x", missing) == math.inf
    assert difference(math.inf, math.inf) is None
    assert difference(math.inf, 1.0) == math.inf


def test_report_counts_entities_and_keeps_the_worst_examples() -> None:
    offline = {
        "amount": [1.0, 2.0, 3.0, 4.0],
        "segment": ["a", "b", "c", None],
        "tenure": [1, 2, 3, 4],
    }
    online = {
        "amount": [1.0, 2.2, 3.0000000001, 8.0],  # two differ, one within tolerance
        "segment": ["a", "b", "C", None],
        "tenure": [1, 2, 3, 4],
    }
    report = compare(KEYS, offline, online, ["amount", "segment", "tenure"], worst=1)
    by_name = {f.feature: f for f in report.features}
    assert by_name["amount"].mismatches == 2
    worst = by_name["amount"].worst
    assert len(worst) == 1 and worst[0].entity == "account_id=3"  # 4 vs 8: the largest gap
    assert worst[0].offline == 4.0 and worst[0].online == 8.0
    assert worst[0].difference == pytest.approx(0.5)
    assert by_name["segment"].mismatches == 1 and by_name["tenure"].mismatches == 0
    assert report.mismatched_entities == 3  # entities 1, 2 and 3
    assert report.share == pytest.approx(0.75)
    assert report.skewed_features == ["amount", "segment"]


def test_a_feature_absent_from_one_store_is_missing_there() -> None:
    report = compare(KEYS[:2], {"x": [1.0, None]}, {}, ["x"])
    assert report.features[0].mismatches == 1 and report.mismatched_entities == 1


def test_identical_stores_report_zero() -> None:
    frame = pd.DataFrame(
        {"amount": [1.5, np.nan, 3.0], "segment": pd.array(["a", None, "c"], dtype="string")}
    )
    columns = {c: frame[c].tolist() for c in frame.columns}
    report = compare(KEYS[:3], columns, columns, list(frame.columns))
    assert report.mismatched_entities == 0 and report.share == 0.0
    assert report.skewed_features == []


def test_columns_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="online column 'x' has 1 values for 2 entities"):
        compare(KEYS[:2], {"x": [1, 2]}, {"x": [1]}, ["x"])
