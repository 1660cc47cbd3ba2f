"""Settings translated into the handles each integration needs."""

from __future__ import annotations

from pathlib import Path

from modelops.config.project import Project, load_project
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, ModelopsError
from modelops.integrations.database import Ledger, LedgerIntegrityError
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
    if key is None and settings.profile == "production":
        raise ConfigError(
            "the production profile keys the ledger's hash chain: set MODELOPS_LEDGER_KEY from "
            "a secret (never stored in the database)"
        )
    return Ledger(
        settings.platform_database_url, key=key, lock_timeout_s=settings.lock_timeout_seconds
    )


def checkpoint_file(settings: Settings) -> Path:
    """Where the last verification of the ledger is kept (see :meth:`Ledger.verified`)."""
    return settings.resolved_state_dir / "ledger.checkpoint"


def verified_ledger(settings: Settings, action: str) -> Ledger:
    """The platform ledger, after it verified (incrementally, from the last checkpoint).

    Every command that acts on what the ledger says (promote, rollback, package, serve,
    deploy, models sync) goes through here first.

    Raises:
        LedgerIntegrityError: the chain, its head or the holder table does not verify: one line
            naming the first problem.
        LedgerKeyError: the chain is keyed and the key is missing or another one.
    """
    handle = ledger(settings)
    result = handle.verified(checkpoint_file(settings))
    if not result.ok:
        more = len(result.problems) - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise LedgerIntegrityError(
            f"{action} refused: the ledger does not verify: {result.problems[0]}{also}; "
            "see 'modelops history --verify'"
        )
    return handle


def project(settings: Settings, name: str) -> Project:
    """``projects/<name>/project.yaml``, checked against the platform's environments.

    Raises:
        ConfigError: ``promotion.approval_required`` names an environment that is not
            configured (a typo must never switch approval off).
    """
    loaded = load_project(settings.resolved_projects_dir, name)
    unknown = [e for e in loaded.spec.promotion.approval_required if e not in settings.environments]
    if unknown:
        raise ConfigError(
            f"{loaded.spec_file}: field 'promotion.approval_required': {unknown} are not "
            f"configured environments ({', '.join(settings.environments)})"
        )
    return loaded


def approval_required(settings: Settings, loaded: Project) -> tuple[str, ...]:
    """Environments that need an approval: the platform's list plus the project's additions."""
    required = settings.approval_required
    extra = [e for e in loaded.spec.promotion.approval_required if e not in required]
    return (*required, *extra)


def check_environment(settings: Settings, environment: str, option: str = "--env") -> None:
    """An environment named on the command line must be configured."""
    if environment not in settings.environments:
        raise ModelopsError(
            f"{option} {environment}: unknown environment (configured: "
            f"{', '.join(settings.environments)})"
        )
