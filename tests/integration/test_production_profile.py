"""The production profile for real: MLflow server on PostgreSQL, Feast registry on PostgreSQL,
online store on Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from modelops.config.settings import Settings, load_settings
from modelops.integrations import feast as feast_io
from modelops.services import data, features, gate, promote, registry, train
from modelops.services.context import feature_repo
from support import copy_workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def production(
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_server: str,
    postgres_database_factory: object,
    redis_connection: str,
) -> Settings:
    root = copy_workspace(tmp_path_factory.mktemp("production") / "repo")
    feast_registry = postgres_database_factory("feast")  # type: ignore[operator]
    platform_db = postgres_database_factory("platform")  # type: ignore[operator]
    (root / "modelops.yaml").write_text(
        "profile: production\n"
        f"mlflow_tracking_uri: {mlflow_server}\n"
        f"feast_registry_url: {feast_registry}\n"
        f"redis_connection: '{redis_connection}'\n"
        f"database_url: {platform_db}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        import os

        for name in list(os.environ):
            if name.startswith("MODELOPS_"):
                patch.delenv(name)
        patch.setenv("MODELOPS_LEDGER_KEY", "integration-test-key")  # a secret in real use
        return load_settings(root)


def test_production_profile_trains_registers_and_serves_online_from_redis(
    production: Settings, redis_connection: str
) -> None:
    assert production.resolved_feature_store_yaml.name == "feature_store.production.yaml"
    summaries = data.generate(production, ["credit_risk"], rows=4000, seed=11)
    applied = features.apply(production)
    assert "FeatureService credit_risk_v1" in applied

    end = max(t.end for t in summaries[0].tables) + timedelta(seconds=1)
    materialized = features.materialize(production, end)
    assert [v.name for v in materialized] == ["company_monthly_financials"]

    result = train.train(production, "credit_risk")
    versions = registry.list_versions(production, "credit_risk")
    assert [v.version for v in versions][-1] == result.candidate.version
    assert versions[-1].tags["modelops.feature_service"] == "credit_risk_v1"
    assert versions[-1].metrics["holdout_roc_auc"] > 0.6

    # The gate downloads both versions through the MLflow server and checks their hashes.
    verdict = gate.validate(production, "credit_risk", result.candidate.version, against="dev")
    assert verdict.reference.role == "prevalence"
    checked = promote.verify(production, "credit_risk")
    assert checked.ok and checked.keyed_from == 1, checked.problems  # HMAC from the first entry
    assert verdict.inputs["candidate"] == [
        result.candidate.version,
        versions[-1].tags["modelops.artifact_sha256"],
    ]

    store = feast_io.open_store(feature_repo(production))
    assert type(store.config.online_store).__name__ == "RedisOnlineStoreConfig"
    assert type(store.registry).__name__ == "SqlRegistry"
    service = feast_io.feature_service(store, "credit_risk_v1")
    import pandas as pd

    monthly = pd.read_parquet(production.data_dir / "credit_company_monthly.parquet")
    latest = monthly.sort_values("event_timestamp").groupby("company_id").tail(1)
    fresh = latest[latest["event_timestamp"] > end - timedelta(days=62)].head(3)
    online = feast_io.online_features(
        store,
        service,
        [{"company_id": int(c), "requested_amount": 10_000.0} for c in fresh["company_id"]],
    )
    assert online["inflow_total"].tolist() == pytest.approx(fresh["inflow_total"].tolist())

    import redis

    host, port_db = redis_connection.split(":")
    port, db = port_db.split(",db=")
    assert redis.Redis(host=host, port=int(port), db=int(db)).dbsize() > 0


def test_unreachable_mlflow_server_is_one_clear_error(tmp_path: Path, clean_env: None) -> None:
    from modelops.core.errors import ServiceUnavailableError

    root = copy_workspace(tmp_path / "repo")
    (root / "modelops.yaml").write_text(
        "profile: production\nmlflow_tracking_uri: http://127.0.0.1:9\n"
    )
    with pytest.raises(ServiceUnavailableError, match="MLflow tracking server"):
        registry.list_versions(load_settings(root), "credit_risk")
