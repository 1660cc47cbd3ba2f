"""The signed release record: every byte a prediction service acts on, as packaging saw it.

``modelops package`` lists every file of the release it builds with its SHA-256 (the release
directory: manifest, sample rows, Feast configuration; the model folders; the ``modelops`` code
a Bento carries), adds the manifest as a JSON object, and signs the whole with the platform's
release key. The service verifies the record against what it is about to load and refuses any
difference, naming it. Because the record lists *files*, a field added to the manifest later is
covered without a change here.

The release key is an Ed25519 key pair derived from the ledger's HMAC key
(:func:`signing_key`): only a holder of the ledger key can sign a release, while a service needs
only the public half (:func:`public_key_hex`), which is no secret.

Pure functions, no I/O: hashing the files is :mod:`modelops.serving.integrity`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelops.core.errors import ConfigError, ModelopsError

FORMAT: Literal[1] = 1
SHOWN_DIFFERENCES = 6
"""Differences a refusal names before it says how many more there are."""

_DERIVATION = b"modelops-release-signing/v1"

RELEASE_PREFIX = "release/"
CODE_PREFIX = "code/"
MODEL_PREFIX = "models/"
"""Prefixes of :attr:`ReleaseRecord.files`: the release directory, the ``modelops`` package a
Bento carries, and each model folder (``models/served/...``, ``models/shadow/...``)."""


class ReleaseRefusedError(ModelopsError):
    """The release differs from its signed record, or the record cannot be trusted."""

    exit_code = 1


class ReleaseRecord(BaseModel):
    """``release-record.json``: what ``modelops package`` signed (and recorded in the ledger as
    a ``package`` entry's details)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ReleaseRecord")

    format: Literal[1] = FORMAT
    project: str
    registered_model: str
    model_version: str
    shadow_version: str | None = None
    environment: str | None = Field(None, description="The environment packaged for, if any.")
    bento_tag: str
    manifest: dict[str, Any] = Field(
        description="The release manifest (manifest.json) as a JSON object: decision policy, "
        "thresholds, features, feature views, serving policy, versions."
    )
    files: dict[str, str] = Field(
        description="Every file the service reads, by path (prefix release/, code/ or "
        "models/<role>/), with its SHA-256."
    )
    signed_at: datetime
    key_id: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="The first 16 hex digits of the public key's hash."
    )
    signature: str = Field(
        pattern=r"^[0-9a-f]{128}$",
        description="Ed25519 signature (hex) of the canonical JSON of every other field.",
    )


# ----------------------------------------------------------------------------- keys


def signing_key(secret: bytes) -> Any:
    """The release signing key (``Ed25519PrivateKey``) derived from the ledger key ``secret``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hmac.new(secret, _DERIVATION, hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(private: Any) -> str:
    """The public half of a signing key: 64 hex digits (what a service is configured with)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return str(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex())


def key_id(public_hex: str) -> str:
    """A short name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def parse_public_key(public_hex: str, where: str) -> Any:
    """An ``Ed25519PublicKey`` from 64 hex digits.

    Raises:
        ConfigError: not 64 hex digits; names ``where`` the value came from.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = (public_hex or "").strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"{where}: not a release public key (64 hex digits)")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


# ----------------------------------------------------------------------------- signing


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 as is, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _payload(fields: Mapping[str, Any]) -> bytes:
    return canonical({k: v for k, v in fields.items() if k != "signature"}).encode("utf-8")


def sign(private: Any, **fields: Any) -> ReleaseRecord:
    """A signed record of ``fields`` (every field of :class:`ReleaseRecord` but ``key_id`` and
    ``signature``)."""
    public = public_key_hex(private)
    unsigned = ReleaseRecord.model_construct(**fields, key_id=key_id(public), signature="")
    data = unsigned.model_dump(mode="json")
    signature = private.sign(_payload(data)).hex()
    return ReleaseRecord.model_validate({**data, "signature": signature})


def check_signature(record: ReleaseRecord, public_hex: str, where: str) -> None:
    """Raise unless ``record`` is signed by the key whose public half is ``public_hex``.

    Raises:
        ReleaseRefusedError: another key signed it, or the record was edited after signing.
    """
    from cryptography.exceptions import InvalidSignature

    public = parse_public_key(public_hex, "release public key")
    trusted = key_id(public_hex.strip().lower())
    if record.key_id != trusted:
        raise ReleaseRefusedError(
            f"release refused: {where}: signed by release key {record.key_id}, not by the "
            f"trusted key {trusted}"
        )
    try:
        public.verify(bytes.fromhex(record.signature), _payload(record.model_dump(mode="json")))
    except InvalidSignature:
        raise ReleaseRefusedError(
            f"release refused: {where}: the release record's signature does not verify under "
            f"the trusted key {trusted} (the record was edited after signing)"
        ) from None


# ----------------------------------------------------------------------------- differences


def _shown(value: Any) -> str:
    text = canonical(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def manifest_differences(
    recorded: Mapping[str, Any], found: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """Each manifest field whose value differs, dotted (``model.threshold``), with both values."""
    out: list[str] = []
    for name in sorted(set(recorded) | set(found)):
        path = f"{prefix}{name}"
        if name not in found:
            out.append(f"manifest {path} removed")
        elif name not in recorded:
            out.append(f"manifest {path} added ({_shown(found[name])})")
        elif isinstance(recorded[name], dict) and isinstance(found[name], dict):
            out += manifest_differences(recorded[name], found[name], f"{path}.")
        elif recorded[name] != found[name]:
            out.append(
                f"manifest {path}: {_shown(recorded[name])} signed, {_shown(found[name])} found"
            )
    return out


def file_differences(recorded: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """Changed, missing and unrecorded files, each named by its path."""
    changed = sorted(p for p in recorded.keys() & found.keys() if recorded[p] != found[p])
    missing = sorted(recorded.keys() - found.keys())
    extra = sorted(found.keys() - recorded.keys())
    return (
        [f"{p} changed (sha256 {found[p][:12]}, signed {recorded[p][:12]})" for p in changed]
        + [f"{p} missing" for p in missing]
        + [f"{p} not in the signed record" for p in extra]
    )


def describe(differences: list[str]) -> str:
    """The differences on one line: the first few, then how many more."""
    shown = "; ".join(differences[:SHOWN_DIFFERENCES])
    more = len(differences) - SHOWN_DIFFERENCES
    return shown + (f"; and {more} more" if more > 0 else "")


def check_release(
    record: ReleaseRecord,
    public_hex: str,
    files: Mapping[str, str],
    manifest: Mapping[str, Any],
    where: str,
) -> None:
    """Raise unless ``record`` is signed by the trusted key and lists exactly ``files`` (path ->
    SHA-256, as found) and ``manifest`` (as parsed).

    Raises:
        ReleaseRefusedError: one line naming every difference (the first few and a count).
    """
    check_signature(record, public_hex, where)
    differences = manifest_differences(record.manifest, manifest) + file_differences(
        record.files, files
    )
    if differences:
        raise ReleaseRefusedError(f"release refused: {where}: {describe(differences)}")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`ReleaseRecord`."""
    return ReleaseRecord.model_json_schema()
