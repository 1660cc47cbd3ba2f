"""Signed releases on the platform side: sign what ``package`` builds, record it in the ledger,
and verify a Bento before it is reused or served.

The signing key is derived from the ledger key (:func:`modelops.core.release_record.signing_key`)
so there is no second secret to keep; a service is given only its public half, printed by
``modelops ledger release-key``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.config.settings import Settings
from modelops.core import release_record
from modelops.core.errors import ConfigError
from modelops.core.release_record import ReleaseRecord
from modelops.integrations import bentoml as bentoml_io
from modelops.integrations.database import Ledger, LedgerEntry, RecordedEntry
from modelops.services.context import ledger_key, verified_ledger
from modelops.serving.integrity import (
    ModelFolders,
    check_matches,
    release_files,
    verify_release,
    write_record,
)
from modelops.serving.manifest import RELEASE_DIR, Manifest, ModelEntry

PACKAGE_ACTION = "package"
BENTO_SOURCE = "src"
"""Where a built Bento keeps its build context (``modelops/`` and ``release/``)."""


def signing_key(settings: Settings) -> Any:
    """The platform's release signing key (``Ed25519PrivateKey``).

    Raises:
        ConfigError: the ledger has no key to derive it from.
    """
    secret = ledger_key(settings)
    if secret is None:
        raise ConfigError(
            "releases are signed with a key derived from the ledger key, and this ledger has "
            "none (its entries are plain SHA-256): switch it with 'modelops ledger enable-hmac'"
        )
    return release_record.signing_key(secret)


def public_key(settings: Settings) -> str:
    """The public half of the release key: what a service checks signatures with."""
    return release_record.public_key_hex(signing_key(settings))


def model_folders(store: bentoml_io.Store, release: Path) -> ModelFolders:
    """Model folders as packaging sees them: in the release (staged), else in the model store."""

    def folder(entry: ModelEntry) -> Path:
        if entry.directory:
            return release / entry.directory
        found = bentoml_io.model_folder(store, entry.bentoml_model or "")
        return found if found is not None else release / "(model store)" / str(entry.bentoml_model)

    return folder


def sign_release(
    settings: Settings,
    release: Path,
    manifest: Manifest,
    models: ModelFolders,
    code: Path | None,
) -> ReleaseRecord:
    """Hash every file of the release (and its models and code), sign, and write the record
    into the release directory."""
    files = release_files(release, manifest, models, code)
    record = release_record.sign(
        signing_key(settings),
        project=manifest.project,
        registered_model=manifest.registered_model,
        model_version=manifest.model.version,
        shadow_version=manifest.shadow.version if manifest.shadow else None,
        environment=manifest.environment,
        bento_tag=manifest.bento_tag,
        manifest=manifest.model_dump(mode="json"),
        files=files,
        signed_at=datetime.now(UTC),
    )
    write_record(release, record)
    return record


def bento_release(bento: bentoml_io.Bento) -> Path:
    return bento.path / BENTO_SOURCE / RELEASE_DIR


def verify_bento(
    settings: Settings, store: bentoml_io.Store, bento: bentoml_io.Bento, version: str
) -> ReleaseRecord:
    """Check a built Bento against its signed record: the record is the platform's, it is of
    this tag and version, and every file (release, models, code) is as signed.

    Raises:
        ReleaseRefusedError: one line naming what differs.
    """
    release = bento_release(bento)
    where = f"Bento {bento.tag}"
    record = verify_release(
        release,
        public_key(settings),
        model_folders(store, release),
        bento.path / BENTO_SOURCE / "modelops",
        where,
    )
    check_matches(record, {"bento_tag": bento.tag, "model_version": str(version)}, where)
    return record


def record_release(settings: Settings, record: ReleaseRecord, actor: str | None) -> RecordedEntry:
    """The ``package`` entry of a signed release: the record whole, as its details."""
    ledger = verified_ledger(settings, "recording the package")
    return ledger.append(
        LedgerEntry(
            action=PACKAGE_ACTION,
            project=record.project,
            environment=record.environment or "",
            actor=actor or "unknown",
            reason=f"packaged Bento {record.bento_tag} (release key {record.key_id})",
            to_version=record.model_version,
            details=record.model_dump(mode="json"),
        )
    )


def recorded_release(
    ledger: Ledger, project: str, version: str, bento_tag: str | None = None
) -> ReleaseRecord | None:
    """The release the ledger recorded last for ``version`` of ``project`` (of ``bento_tag``,
    when given); None when it was never packaged since releases are recorded."""
    found = None
    for entry in ledger.entries(project):
        if entry.action != PACKAGE_ACTION or entry.to_version != str(version):
            continue
        if bento_tag is not None and entry.details.get("bento_tag") != bento_tag:
            continue
        found = entry
    return None if found is None else ReleaseRecord.model_validate(found.details)


def ensure_recorded(
    settings: Settings, record: ReleaseRecord, actor: str | None
) -> RecordedEntry | None:
    """Record ``record`` unless it is already the ledger's newest record of its Bento: a Bento
    reused by ``package`` whose entry never reached the ledger (an interrupted package) gets it
    now, since deploys read the release from the ledger. None when nothing was recorded."""
    ledger = verified_ledger(settings, "recording the package")
    found = recorded_release(ledger, record.project, record.model_version, record.bento_tag)
    return None if found == record else record_release(settings, record, actor)
