"""Names shared by packaging, deploys and rollbacks: one function each, so they cannot drift.

A Bento is named after the project and tagged with the model version and the first 12 hex
digits of the artifact's SHA-256: the same version re-registered from different bytes can never
share a tag, and the tag alone says which registered version an image serves.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[^a-z0-9.-]+")


def bento_name(project: str) -> str:
    """``modelops-<project>``, lower case, underscores as hyphens: valid for BentoML and for any
    image registry."""
    return "modelops-" + _NAME.sub("-", project.lower()).strip("-")


def bento_version(model_version: str, artifact_sha256: str) -> str:
    """``v<version>-<sha256[:12]>``."""
    if not re.fullmatch(r"[0-9a-f]{64}", artifact_sha256 or ""):
        raise ValueError(f"artifact SHA-256 {artifact_sha256!r} is not 64 hex digits")
    return f"v{model_version}-{artifact_sha256[:12]}"


def bento_tag(project: str, model_version: str, artifact_sha256: str) -> str:
    """``<bento_name>:<bento_version>``: also the container image's tag after containerize."""
    return f"{bento_name(project)}:{bento_version(model_version, artifact_sha256)}"


def values_path(environment: str, project: str) -> str:
    """Where a GitOps repository keeps one project's Helm values for one environment."""
    return f"environments/{environment}/{project}/values.yaml"
