"""Data checks fail closed: labels, point-in-time join completeness and feature availability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelops.core.datachecks import (
    AvailabilityResult,
    JoinReport,
    LabelError,
    check_availability,
    check_join,
    join_report,
    normalise_labels,
)
from modelops.core.errors import DataError

SOURCE = "data/credit_applications.parquet"


def _labels(values: list[object], **kw: object) -> list[int]:
    args: dict[str, object] = {"positive": None, "source": SOURCE, "column": "default_12m", **kw}
    result = normalise_labels(pd.Series(values), **args)  # type: ignore[arg-type]
    assert str(result.dtype) == "int64"
    return result.tolist()


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "positive"),
    [
        ([1, 0, 0, 1], None),
        ([1.0, 0.0, 0.0, 1.0], None),
        ([True, False, False, True], None),
        (pd.array([True, False, False, True], dtype="boolean"), None),
        (pd.array([1, 0, 0, 1], dtype="Int64"), None),
        (["Yes", "No", "No", "Yes"], "Yes"),
        (["yes", "no", "no", "yes"], "yes"),
        (["bad", "good", "good", "bad"], "bad"),
        ([2, 1, 1, 2], 2),
        ([True, False, False, True], True),
    ],
)
def test_binary_labels_become_zero_and_one(values: list[object], positive: object) -> None:
    assert _labels(values, positive=positive) == [1, 0, 0, 1]


def test_only_the_positive_class_is_one() -> None:
    assert _labels(["No", "No", "No"], positive="Yes") == [0, 0, 0]
    assert _labels(["Yes", "Yes"], positive="Yes") == [1, 1]


@pytest.mark.parametrize(
    ("values", "positive", "found"),
    [
        (["Yes", "No", "Yes"], None, "2 distinct value(s) 'No', 'Yes'"),
        (["1", "0"], None, "'0', '1'"),  # strings, not numbers
        ([0, 1, 2], None, "3 distinct value(s) 0, 1, 2"),
        ([0.0, 0.5, 1.0], None, "0.0, 0.5, 1.0"),
        (["low", "mid", "high"], "high", "3 distinct value(s) 'high', 'low', 'mid'"),
        (["Yes", "No"], "yes", "'No', 'Yes'"),  # the class is compared exactly
        ([0, 1], "1", "0, 1"),
    ],
)
def test_labels_that_are_not_binary_name_file_column_and_values(
    values: list[object], positive: object, found: str
) -> None:
    with pytest.raises(LabelError) as error:
        _labels(values, positive=positive)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: column 'default_12m'")
    assert found in message
    assert "label.positive" in message
    assert error.value.exit_code == 2
    assert isinstance(error.value, DataError)


def test_at_most_five_values_are_named() -> None:
    with pytest.raises(LabelError, match=r"9 distinct value\(s\) 0, 1, 2, 3, 4 and 4 more;"):
        _labels(list(range(9)))


@pytest.mark.parametrize(
    ("values", "positive"),
    [([1.0, np.nan, 0.0, np.nan], None), (["Yes", None, "No", None], "Yes")],
)
def test_missing_labels_are_refused_with_their_count(
    values: list[object], positive: object
) -> None:
    with pytest.raises(LabelError, match=rf"^{SOURCE}: column 'default_12m' has 2 missing label"):
        _labels(values, positive=positive)


# --- joins ------------------------------------------------------------------------------------


def _joined() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "company_id": [1, 2, 3, 4],
            "event_timestamp": pd.to_datetime(
                ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], utc=True
            ),
            "inflow_total": [1.0, np.nan, np.nan, 4.0],
            "sector": ["a", "b", None, None],
            "default_12m": [0, 1, 0, 1],
        }
    )


def test_join_report_counts_missing_values_per_feature_and_rows_without_any() -> None:
    report = join_report(_joined(), ["inflow_total", "sector"])
    assert report.rows == 4
    assert report.missing_share == {"inflow_total": 0.5, "sector": 0.5}
    assert report.rows_without_features == 1
    assert report.example_without_features == "company_id=3 at 2024-01-03T00:00:00+00:00"


def test_join_report_counts_an_absent_feature_column_as_missing() -> None:
    report = join_report(_joined(), ["inflow_total", "revenue_trend"])
    assert report.missing_share["revenue_trend"] == 1.0
    assert report.rows_without_features == 2


def test_complete_join_passes() -> None:
    report = join_report(_joined().dropna(), ["inflow_total", "sector"])
    assert report == JoinReport(1, {"inflow_total": 0.0, "sector": 0.0}, 0, "")
    check_join(report, tolerance=0.0, trained=None, where="holdout join of credit_risk_v1")


def test_rows_without_any_feature_fail_even_within_tolerance() -> None:
    report = join_report(_joined(), ["inflow_total", "sector"])
    with pytest.raises(
        DataError,
        match=r"^holdout join of credit_risk_v1: 1 of 4 rows got no feature at all .*"
        r"\(e\.g\. company_id=3 at 2024-01-03T00:00:00\+00:00\); likely causes: .*timestamps.*"
        r"TTL.*entity keys",
    ):
        check_join(report, tolerance=0.9, trained=None, where="holdout join of credit_risk_v1")


def _report(**shares: float) -> JoinReport:
    return JoinReport(1_000, shares, 0)


def test_feature_missing_beyond_tolerance_fails_naming_feature_share_and_causes() -> None:
    with pytest.raises(DataError) as error:
        check_join(
            _report(inflow_total=0.02, sector=0.30),
            tolerance=0.05,
            trained=None,
            where="holdout join of credit_risk_v1",
        )
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "holdout join of credit_risk_v1: feature 'sector' is missing on 30.0%"
    )
    assert "tolerance 5.0%, unknown at training" in message
    for cause in ("precision", "TTL", "entity keys"):
        assert cause in message


def test_missing_as_often_as_at_training_passes_but_more_often_fails() -> None:
    trained = {"sector": 0.30, "inflow_total": 0.0}
    check_join(_report(sector=0.30), tolerance=0.05, trained=trained, where="w")
    check_join(_report(sector=0.04), tolerance=0.05, trained=trained, where="w")  # within tolerance
    with pytest.raises(DataError, match=r"'sector' is missing on 35\.0%.*30\.0% at training"):
        check_join(_report(sector=0.35), tolerance=0.05, trained=trained, where="w")
    with pytest.raises(DataError, match=r"'inflow_total' is missing on 6\.0%.*0\.0% at training"):
        check_join(_report(inflow_total=0.06), tolerance=0.05, trained=trained, where="w")


def test_a_feature_unknown_at_training_gets_only_the_tolerance() -> None:
    with pytest.raises(DataError, match=r"'new_feature' .*unknown at training"):
        check_join(_report(new_feature=0.2), tolerance=0.1, trained={"sector": 0.5}, where="w")


def test_the_worst_feature_is_named_and_the_others_counted() -> None:
    with pytest.raises(DataError, match=r"'b' is missing on 90\.0%.*; 1 more feature\(s\) too"):
        check_join(_report(a=0.5, b=0.9, c=0.0), tolerance=0.1, trained=None, where="w")


# --- availability ---------------------------------------------------------------------------


def test_availability_within_tolerance_passes() -> None:
    results = [
        AvailabilityResult("company_monthly_financials", True, 0, 1_000, ""),
        AvailabilityResult("account_activity", True, 5, 1_000, "e.g. account_id=1"),
        AvailabilityResult("plain", True, 0, 1_000, "no created_timestamp column"),
    ]
    check_availability(results, tolerance=0.01, where="'credit_risk_v1' for credit_risk")


def test_availability_beyond_tolerance_names_view_rows_and_share() -> None:
    results = [
        AvailabilityResult("a", True, 20, 1_000, ""),
        AvailabilityResult("company_monthly_financials", True, 300, 1_000, "e.g. company_id=1"),
    ]
    with pytest.raises(DataError) as error:
        check_availability(results, tolerance=0.01, where="'credit_risk_v1' for credit_risk")
    message = str(error.value)
    assert message.startswith(
        "'credit_risk_v1' for credit_risk: feature view 'company_monthly_financials': 300 of "
        "1000 rows (30.0%, tolerance 1.0%)"
    )
    assert "e.g. company_id=1" in message and "\n" not in message
    assert "; also feature view 'a';" in message  # every failing view is named, worst first


def test_availability_names_the_columns_the_leaking_view_feeds() -> None:
    results = [
        AvailabilityResult("honest", True, 0, 1_000, "", ("balance", "tenure")),
        AvailabilityResult("late", True, 40, 1_000, "e.g. company_id=1", ("days_past_due",)),
    ]
    with pytest.raises(DataError) as error:
        check_availability(results, tolerance=0.0, where="w")
    message = str(error.value)
    assert message.startswith("w: feature view 'late' (column days_past_due): 40 of 1000 rows")
    assert "balance" not in message


def test_zero_tolerance_fails_on_a_single_affected_row() -> None:
    with pytest.raises(DataError, match="1 of 1000 rows"):
        check_availability([AvailabilityResult("v", True, 1, 1_000, "")], tolerance=0.0, where="w")


def test_a_view_that_could_not_be_checked_fails_closed() -> None:
    results = [
        AvailabilityResult("ok", True, 0, 10, ""),
        AvailabilityResult("remote", False, 0, 10, "source is not a local parquet file"),
    ]
    with pytest.raises(
        DataError,
        match=r"^w: availability of feature view 'remote' could not be checked "
        r"\(source is not a local parquet file\)",
    ):
        check_availability(results, tolerance=1.0, where="w")
