"""Settings translated into the handles each integration needs."""

from __future__ import annotations

from modelops.config.settings import Settings
from modelops.integrations.database import Ledger
from modelops.integrations.feast import FeatureRepo
from modelops.integrations.mlflow import Tracking


def feature_repo(settings: Settings) -> FeatureRepo:
    return FeatureRepo(
        path=settings.resolved_feature_repo,
        config_file=settings.resolved_feature_store_yaml,
        variables=settings.feast_variables(),
    )


def tracking(settings: Settings) -> Tracking:
    return Tracking(
        tracking_uri=settings.tracking_uri,
        registry_uri=settings.registry_uri,
        artifact_location=settings.artifact_root,
    )


def prepare_state(settings: Settings) -> None:
    """Create the embedded state directory; called by commands, never at import."""
    if settings.profile == "embedded":
        settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)


def ledger(settings: Settings) -> Ledger:
    """The platform ledger, keyed and time-limited as configured."""
    key = settings.ledger_key.get_secret_value().encode() if settings.ledger_key else None
    return Ledger(
        settings.platform_database_url, key=key, lock_timeout_s=settings.lock_timeout_seconds
    )
