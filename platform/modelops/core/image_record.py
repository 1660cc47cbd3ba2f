"""The image a release was pushed as, pinned by digest: ``repository:tag@sha256:...``.

Images are built and pushed in CI (``bentoml containerize``, ``docker push``); the registry
answers with the manifest digest, the name cosign signs and Argo CD can pin. ``modelops ledger
record-image`` records it in the ledger (an ``image`` entry whose details are an
:class:`ImageRecord`) against the signed release of that tag; ``deploy`` then writes
``image.digest`` and ``history --verify`` compares it.

Pure parsing and records, no I/O.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelops.core.errors import ConfigError

IMAGE_ACTION = "image"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

# OCI distribution spec: a registry host (optional port), then lower-case path components.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(DIGEST_PATTERN)


class ImageRecord(BaseModel):
    """An ``image`` ledger entry's details: the pushed image of a signed release."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ImageRecord")

    format: Literal[1] = 1
    project: str
    model_version: str
    bento_tag: str = Field(description="The Bento (and signed release record) the image holds.")
    release_key_id: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="The key that signed that release record."
    )
    repository: str
    tag: str
    digest: str = Field(pattern=DIGEST_PATTERN, description="The image manifest's digest.")

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


def parse_image(reference: str, where: str) -> tuple[str, str, str]:
    """``(repository, tag, digest)`` of ``repository:tag@sha256:<64 hex>``.

    Raises:
        ConfigError: one line naming ``where`` and what is wrong; a reference without a tag or
            without a digest is refused (both are recorded: the tag says what was built, the
            digest what was pushed).
    """
    text = (reference or "").strip()
    name, at, digest = text.partition("@")
    if not at or not _DIGEST.fullmatch(digest):
        raise ConfigError(
            f"{where}: {text!r} has no digest; expected repository:tag@sha256:<64 hex digits> "
            "(what the registry answered to the push)"
        )
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon <= slash:
        raise ConfigError(f"{where}: {text!r} has no tag; expected repository:tag@sha256:...")
    repository, tag = name[:colon], name[colon + 1 :]
    if not _REPOSITORY.fullmatch(repository):
        raise ConfigError(f"{where}: {repository!r} is not an image repository name")
    if not _TAG.fullmatch(tag):
        raise ConfigError(f"{where}: {tag!r} is not an image tag")
    return repository, tag, digest


def json_schema() -> dict[str, object]:
    """The JSON Schema of :class:`ImageRecord`."""
    return ImageRecord.model_json_schema()
