"""``features apply`` checks the sources' columns; a project's unknown feature service is named
with its project.yaml field."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, FeatureStoreError
from modelops.integrations import feast as feast_io
from modelops.services import features
from modelops.services.context import feature_repo, project

CREDIT = "credit_company_monthly.parquet"
CREDIT_COLUMNS = [
    "company_id",
    "event_timestamp",
    "created_timestamp",
    "inflow_total",
    "outflow_total",
    "balance_mean",
    "balance_min",
    "balance_volatility",
    "negative_balance_days",
    "revenue_trend",
    "company_age_months",
    "sector",
]


def _write_source(settings: Settings, name: str, columns: list[str]) -> Path:
    """A one-row parquet source with these columns."""
    now = datetime(2024, 1, 1, tzinfo=UTC)
    values = {
        c: pa.array([now]) if "timestamp" in c else pa.array(["x" if c == "sector" else 1.0])
        for c in columns
    }
    path = settings.data_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(values), path)
    return path


def test_a_declared_field_missing_from_its_parquet_source_is_named(workspace: Settings) -> None:
    path = _write_source(workspace, CREDIT, [c for c in CREDIT_COLUMNS if c != "balance_min"])
    with pytest.raises(FeatureStoreError) as error:
        features.apply(workspace)
    assert str(error.value) == (
        f"{path}: column 'balance_min' declared by feature view "
        f"'company_monthly_financials' is missing (columns: "
        f"{', '.join(c for c in CREDIT_COLUMNS if c != 'balance_min')})"
    )
    store = feast_io.open_store(feature_repo(workspace))
    assert store.list_feature_views() == []  # nothing was registered


@pytest.mark.parametrize(
    ("dropped", "role"),
    [
        ("company_id", "entity join key"),
        ("event_timestamp", "timestamp field"),
        ("created_timestamp", "created timestamp column"),
    ],
)
def test_join_keys_and_timestamps_are_checked_too(
    workspace: Settings, dropped: str, role: str
) -> None:
    others = [c for c in CREDIT_COLUMNS if c not in (dropped, "sector")]
    _write_source(workspace, CREDIT, others)
    with pytest.raises(
        FeatureStoreError,
        match=rf"{CREDIT}: column '{dropped}' \({role}\) declared by feature view "
        r"'company_monthly_financials' is missing \(columns: .*\); also missing: 'sector' of "
        r"'company_monthly_financials'$",
    ):
        features.apply(workspace)


def test_a_source_not_there_yet_is_a_warning(
    workspace: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    _write_source(workspace, CREDIT, CREDIT_COLUMNS)
    with caplog.at_level(logging.WARNING):
        applied = features.apply(workspace)
    assert "FeatureView company_monthly_financials" in applied
    assert "FeatureView account_activity" in applied
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "fraud_account_activity.parquet: source of feature view 'account_activity' does not "
        "exist yet" in w
        for w in warnings
    ), warnings


def test_csv_sources_are_checked_from_their_header(workspace: Settings) -> None:
    repo = workspace.resolved_feature_repo
    (repo / "csv_features.py").write_text(
        "from datetime import timedelta\n"
        "from entities import company\n"
        "from feast import FeatureView, Field, FileSource\n"
        "from feast.types import Float64\n\n"
        "limits = FeatureView(\n"
        "    name='company_limits',\n"
        "    entities=[company],\n"
        "    ttl=timedelta(days=30),\n"
        "    schema=[Field(name='credit_limit', dtype=Float64)],\n"
        "    source=FileSource(path='data/limits.csv', timestamp_field='as_of'),\n"
        ")\n"
    )
    _write_source(workspace, CREDIT, CREDIT_COLUMNS)
    (workspace.data_dir / "limits.csv").write_text("company_id,as_of,limit\n1,2024-01-01,5.0\n")
    with pytest.raises(
        FeatureStoreError,
        match=r"data/limits\.csv: column 'credit_limit' declared by feature view "
        r"'company_limits' is missing \(columns: company_id, as_of, limit\)$",
    ):
        features.apply(workspace)


def _set_feature_service(settings: Settings, name: str) -> None:
    path = settings.resolved_projects_dir / "credit_risk" / "project.yaml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(
        "".join(
            f"feature_service: {name}\n" if line.startswith("feature_service:") else line
            for line in lines
        )
    )
    assert yaml.safe_load(path.read_text())["feature_service"] == name


def test_an_unknown_feature_service_names_project_yaml_and_the_field(
    workspace: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    _write_source(workspace, CREDIT, CREDIT_COLUMNS)
    _set_feature_service(workspace, "nope")
    with caplog.at_level(logging.WARNING):
        features.apply(workspace)
    spec_file = workspace.resolved_projects_dir / "credit_risk" / "project.yaml"
    expected = (
        f"{spec_file}: field 'feature_service': 'nope' is not defined in the feature repo "
        "(defined: credit_risk_v1, fraud_v1)"
    )
    assert expected in [r.getMessage() for r in caplog.records]
    store = feast_io.open_store(feature_repo(workspace))
    with pytest.raises(ConfigError) as error:
        features.project_service(workspace, project(workspace, "credit_risk"), store)
    assert str(error.value) == expected

    # defined in the repo since the last apply: the fix is to apply, not to edit project.yaml
    definitions = workspace.resolved_feature_repo / "credit_risk_features.py"
    definitions.write_text(
        definitions.read_text()
        + "\nnope = FeatureService(name='nope', features=[company_monthly_financials])\n"
    )
    with pytest.raises(FeatureStoreError, match=r"'nope' .* run 'modelops features apply'$"):
        features.project_service(workspace, project(workspace, "credit_risk"), store)
    _set_feature_service(workspace, "credit_risk_v1")
    found = features.project_service(workspace, project(workspace, "credit_risk"), store)
    assert found.name == "credit_risk_v1"
