"""Settings translated into the handles each integration needs."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from modelops.config.project import Project, load_project
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, ModelopsError
from modelops.core.ledger import database_id
from modelops.core.redact import register_secret
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


def ledger(settings: Settings, *, new_key: bool = False) -> Ledger:
    """The platform ledger, keyed and time-limited as configured.

    The key: ``ledger_key`` when configured; else, in the embedded profile, the key file
    (:func:`ledger_key_file`), created on first use, i.e. while the ledger is still empty. A
    ledger that already holds plain entries and has no key file stays plain until it is switched
    explicitly (``modelops ledger enable-hmac``, which passes ``new_key`` to create the file).
    """
    key = ledger_key(settings)
    if key is None and new_key:
        key = _create_key(ledger_key_file(settings))
    return Ledger(
        settings.platform_database_url, key=key, lock_timeout_s=settings.lock_timeout_seconds
    )


def ledger_key(settings: Settings) -> bytes | None:
    """The platform's ledger key (see :func:`ledger`); None for an embedded ledger that holds
    plain entries and was never switched to HMAC. Also the root of the release signing key
    (:func:`modelops.core.release_record.signing_key`).

    Raises:
        ConfigError: the production profile without ``MODELOPS_LEDGER_KEY``; a key file that is
            readable by others or holds no key.
    """
    if settings.ledger_key:
        return settings.ledger_key.get_secret_value().encode()
    if settings.servers:
        raise ConfigError(
            f"the {settings.profile} profile keys the ledger's hash chain: set "
            "MODELOPS_LEDGER_KEY from a secret (never stored in the database)"
        )
    return _embedded_key(settings, create=True)


def ledger_key_file(settings: Settings) -> Path:
    """Where the embedded profile keeps its ledger key: ``<state_dir>/ledger.key`` for the
    default database, ``<state_dir>/ledger-<digest of its URL>.key`` for another one."""
    url = settings.platform_database_url
    if url == f"sqlite:///{settings.resolved_state_dir / 'platform.db'}":
        return settings.resolved_state_dir / "ledger.key"
    return settings.resolved_state_dir / f"ledger-{database_id(url)}.key"


def _embedded_key(settings: Settings, *, create: bool) -> bytes | None:
    """The embedded ledger key from its file; with ``create``, a new one for an empty ledger.

    Raises:
        ConfigError: the key file is readable by others than its owner, or not a key.
    """
    path = ledger_key_file(settings)
    key = _read_key(path)
    if key is not None or not create:
        return key
    if Ledger(settings.platform_database_url).head()[0] != 0:
        return None  # plain entries from before any key: keyed only by an explicit switch
    return _create_key(path)


def _read_key(path: Path) -> bytes | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise ConfigError(
            f"ledger key file {path} is readable or writable by others (mode "
            f"{stat.S_IMODE(mode):04o}): chmod 600 it"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if len(text) < _KEY_BYTES * 2 or not all(c in "0123456789abcdef" for c in text):
        raise ConfigError(f"ledger key file {path} does not hold a key (hex digits); restore it")
    register_secret(text)
    return text.encode()


def _create_key(path: Path) -> bytes:
    """A new random key in ``path`` (mode 0600); another process's key if it was first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(_KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = _read_key(path)
        assert key is not None
        return key
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
    register_secret(text)
    return text.encode()


_KEY_BYTES = 32


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
