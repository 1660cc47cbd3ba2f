"""modelops.testing's data-contract checks of tables on disk: each passes on a sound pair of
tables and fails, naming the problem, on one broken the way it guards against. (The checks of a
generator's output run in every project's tests, projects/*/tests.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modelops.testing import contract

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _features() -> pd.DataFrame:
    times = [T0 + pd.Timedelta(days=d) for d in range(4)]
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "event_timestamp": times,
            "created_timestamp": times,
            "tenure": [1.0, None, 3.0, 4.0],
        }
    )


def _labels() -> pd.DataFrame:
    times = [T0 + pd.Timedelta(days=d) for d in range(4)]
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "event_timestamp": times,
            "churned": ["Yes", "No", "No", "Yes"],
            "label_available_at": [t + pd.Timedelta(days=30) for t in times],
        }
    )


def test_sound_tables_pass_every_check(tmp_path: Path) -> None:
    features, labels = _features(), _labels()
    path = tmp_path / "features.parquet"
    features.to_parquet(path)
    contract.assert_schema(
        path,
        {
            "customer_id": "int64",
            "event_timestamp": "timestamp[ns, tz=UTC]",
            "created_timestamp": "timestamp[ns, tz=UTC]",
            "tenure": "double",
        },
    )
    contract.assert_never_missing(features, ["customer_id", "event_timestamp"])
    contract.assert_not_emptier_than(features, {"tenure": 0.25})
    contract.assert_binary_label(labels, "churned", "Yes", "labels")
    contract.assert_labels_known_after_prediction(labels)
    contract.assert_feature_rows_exist_at_event_time(features)
    contract.assert_each_prediction_has_its_feature_row(features, labels, "customer_id")


def test_a_changed_schema_fails(tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    _features().to_parquet(path)
    with pytest.raises(AssertionError):
        contract.assert_schema(path, {"customer_id": "int64"})


def test_missing_keys_are_counted_per_column() -> None:
    with pytest.raises(AssertionError, match=r"'tenure': 1"):
        contract.assert_never_missing(_features(), ["customer_id", "tenure"])


def test_a_feature_emptier_than_at_init_is_named() -> None:
    with pytest.raises(AssertionError, match="tenure"):
        contract.assert_not_emptier_than(_features(), {"tenure": 0.0})


def test_a_label_of_one_class_fails() -> None:
    labels = _labels().assign(churned="No")
    with pytest.raises(AssertionError):
        contract.assert_binary_label(labels, "churned", "Yes", "labels")


def test_a_label_known_before_its_prediction_fails() -> None:
    labels = _labels()
    labels.loc[2, "label_available_at"] = labels.loc[2, "event_timestamp"] - pd.Timedelta(hours=1)
    with pytest.raises(AssertionError):
        contract.assert_labels_known_after_prediction(labels)


def test_a_feature_row_created_after_its_event_time_fails() -> None:
    features = _features()
    features.loc[1, "created_timestamp"] += pd.Timedelta(seconds=1)
    with pytest.raises(AssertionError):
        contract.assert_feature_rows_exist_at_event_time(features)


def test_duplicate_or_absent_feature_rows_fail() -> None:
    features, labels = _features(), _labels()
    with pytest.raises(AssertionError, match="share an entity and time"):
        contract.assert_each_prediction_has_its_feature_row(
            pd.concat([features, features.iloc[:1]]), labels, "customer_id"
        )
    with pytest.raises(AssertionError):
        contract.assert_each_prediction_has_its_feature_row(features[1:], labels, "customer_id")
