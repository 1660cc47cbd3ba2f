"""What the ledger recorded of a release: its signed record, verified, and its pushed image.

A deploy (and ``history --verify``) takes what an environment should run from here, not from the
holder alone: the ``package`` entry of the Bento the promoting verdict judged must hold a release
record signed by the platform's release key, and that record must name the same project, model
version, Bento tag and artifact SHA-256 as the ledger's move. Anything missing or different
refuses (fail closed), naming the field. The image's digest comes from the newest ``image``
entry recorded for that signed release and the platform's image repository
(``modelops ledger record-image``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modelops.config.settings import Settings
from modelops.core import release_record
from modelops.core.errors import ConfigError
from modelops.core.image_record import IMAGE_ACTION, ImageRecord, parse_image
from modelops.core.release import bento_name, bento_tag
from modelops.core.release_record import ReleaseRecord, ReleaseRefusedError
from modelops.integrations.database import Ledger, LedgerEntry, RecordedEntry
from modelops.services.context import ledger_key, verified_ledger
from modelops.services.context import project as project_for

PACKAGE_ACTION = "package"


def release_public_key(settings: Settings) -> str:
    """The public half of the platform's release key (derived from the ledger key).

    Raises:
        ReleaseRefusedError: the ledger has no key, so no release can have been signed by it.
    """
    secret = ledger_key(settings)
    if secret is None:
        raise ReleaseRefusedError(
            "releases are signed with a key derived from the ledger key, and this ledger has "
            "none: no release record can be verified ('modelops ledger enable-hmac')"
        )
    return release_record.public_key_hex(release_record.signing_key(secret))


def image_repository(settings: Settings, project: str) -> str:
    """``<image_registry>/<bento name>``: where the platform's images of ``project`` live."""
    return f"{settings.image_registry.rstrip('/')}/{bento_name(project)}"


def _packages(ledger: Ledger, project: str, version: str) -> list[RecordedEntry]:
    return [
        e
        for e in ledger.entries(project)
        if e.action == PACKAGE_ACTION and e.to_version == str(version)
    ]


def packaged(settings: Settings, project: str, version: str) -> bool:
    """Whether the ledger holds a ``package`` entry of ``version`` (whether it verifies is for
    the deploy that reads it to say)."""
    from modelops.services.context import ledger as ledger_for

    return bool(_packages(ledger_for(settings), project, version))


def _record(entry: RecordedEntry) -> ReleaseRecord:
    try:
        return ReleaseRecord.model_validate(entry.details)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise ReleaseRefusedError(
            f"release refused: ledger entry {entry.seq} (package): field '{field}': {first['msg']}"
        ) from None


def _model_field(manifest: Mapping[str, Any], name: str) -> Any:
    model = manifest.get("model")
    return model.get(name) if isinstance(model, Mapping) else None


def signed_release(
    settings: Settings, ledger: Ledger, project: str, version: str, artifact_sha256: str
) -> ReleaseRecord:
    """The signed release record of ``version`` built from ``artifact_sha256`` (the bytes the
    promoting verdict judged), verified under the platform's release key and checked field by
    field against the ledger.

    Raises:
        ReleaseRefusedError: never packaged since releases are signed, a record that does not
            verify, or one that names another project, version, Bento tag or artifact.
    """
    tag = bento_tag(project, version, artifact_sha256)
    entries = [e for e in _packages(ledger, project, version) if e.details.get("bento_tag") == tag]
    if not entries:
        raise ReleaseRefusedError(
            f"release refused: {project} v{version}: the ledger records no signed release of "
            f"Bento {tag} (the artifact its verdict judged); 'modelops package {project} "
            f"{version}' signs and records it"
        )
    entry = entries[-1]
    record = _record(entry)
    release_record.check_signature(
        record, release_public_key(settings), f"ledger entry {entry.seq} (package of {tag})"
    )
    signed = {
        "project": (record.project, project),
        "model_version": (record.model_version, str(version)),
        "bento_tag": (record.bento_tag, tag),
        "manifest.project": (record.manifest.get("project"), project),
        "manifest.bento_tag": (record.manifest.get("bento_tag"), tag),
        "manifest.model.version": (_model_field(record.manifest, "version"), str(version)),
        "manifest.model.artifact_sha256": (
            _model_field(record.manifest, "artifact_sha256"),
            artifact_sha256,
        ),
    }
    drift = [
        f"{name}: {have!r} signed, {want!r} in the ledger's move"
        for name, (have, want) in signed.items()
        if have != want
    ]
    if drift:
        raise ReleaseRefusedError(
            f"release refused: ledger entry {entry.seq} (package of {tag}): {'; '.join(drift)}"
        )
    return record


def recorded_image(
    ledger: Ledger, record: ReleaseRecord, repository: str
) -> tuple[RecordedEntry, ImageRecord] | None:
    """The newest ``image`` entry of ``record``'s release pushed to ``repository``; None when
    none was recorded.

    Raises:
        ReleaseRefusedError: such an entry's details are not an image record.
    """
    found = None
    for entry in ledger.entries(record.project):
        if entry.action != IMAGE_ACTION or entry.details.get("bento_tag") != record.bento_tag:
            continue
        try:
            image = ImageRecord.model_validate(entry.details)
        except ValidationError as error:
            raise ReleaseRefusedError(
                f"release refused: ledger entry {entry.seq} (image): {error.errors()[0]['msg']}"
            ) from None
        if image.repository == repository and image.release_key_id == record.key_id:
            found = (entry, image)
    return found


def record_image(
    settings: Settings, project_name: str, version: str, reference: str, actor: str | None
) -> tuple[ImageRecord, RecordedEntry, bool]:
    """Record that ``reference`` (``repository:tag@sha256:...``, as pushed) is the image of
    ``version``'s signed release. Returns the record, its entry and whether it is new (the same
    digest recorded last for that release and repository is not recorded twice).

    Raises:
        ConfigError: not a ``repository:tag@sha256:`` reference, or another repository than the
            platform's (``image_registry``).
        ReleaseRefusedError: no signed release of ``version`` has that tag, or its record does
            not verify.
    """
    spec = project_for(settings, project_name).spec
    repository, tag, digest = parse_image(reference, "--image")
    expected_repository = image_repository(settings, spec.name)
    if repository != expected_repository:
        raise ConfigError(
            f"--image: repository {repository!r} is not the platform's image repository "
            f"{expected_repository!r} (image_registry {settings.image_registry!r}; set "
            "MODELOPS_IMAGE_REGISTRY as deploy sees it)"
        )
    ledger = verified_ledger(settings, "record-image")
    entries = [
        e
        for e in _packages(ledger, spec.name, version)
        if str(e.details.get("bento_tag", "")).partition(":")[2] == tag
    ]
    if not entries:
        tags = sorted(
            {str(e.details.get("bento_tag")) for e in _packages(ledger, spec.name, version)}
        )
        raise ReleaseRefusedError(
            f"--image: tag {tag!r} is not the tag of a signed release of {spec.name} v{version} "
            f"(signed: {', '.join(tags) or 'none'}); push the image of a packaged Bento"
        )
    record = _record(entries[-1])
    release_record.check_signature(
        record, release_public_key(settings), f"ledger entry {entries[-1].seq} (package)"
    )
    image = ImageRecord(
        project=spec.name,
        model_version=str(version),
        bento_tag=record.bento_tag,
        release_key_id=record.key_id,
        repository=repository,
        tag=tag,
        digest=digest,
    )
    last = recorded_image(ledger, record, repository)
    if last is not None and last[1] == image:
        return image, last[0], False
    entry = ledger.append(
        LedgerEntry(
            action=IMAGE_ACTION,
            project=spec.name,
            environment="",
            actor=actor or "unknown",
            reason=f"pushed {image.reference}",
            to_version=str(version),
            details=image.model_dump(mode="json"),
        )
    )
    return image, entry, True
