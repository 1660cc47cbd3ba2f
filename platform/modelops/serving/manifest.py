"""The release manifest: what one packaged (project, version) serves, and how.

A *release directory* holds ``manifest.json``, ``samples.parquet`` (feature rows the scorer is
checked on at start-up) and ``feature_repo/`` (the Feast configuration files). A Bento carries
one as ``release/``; ``modelops serve --reload-on-promotion`` stages newer ones beside it and
names the current one in a *pointer file* (``{"release": "<dir>"}``) the service polls.

The manifest is written by ``modelops package`` and read by the service; both use this schema,
which rejects unknown keys.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelops.config.project import Decisions, Serving
from modelops.core.errors import ConfigError
from modelops.core.ranges import FeatureRange

MANIFEST_FILE = "manifest.json"
SAMPLES_FILE = "samples.parquet"
FEATURE_REPO_DIR = "feature_repo"
RELEASE_DIR = "release"
FORMAT: Literal[1] = 1

FieldType = Literal["int", "float", "str", "bool"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputField(_Strict):
    """An entity key or a request-time field the caller sends."""

    name: str
    type: FieldType
    description: str = ""


class ModelEntry(_Strict):
    """One registered version the release scores with."""

    version: str
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float = Field(ge=0, le=1)
    feature_names: tuple[str, ...]
    bentoml_model: str | None = Field(
        None, description="Tag of the model in the BentoML model store (inside a Bento)."
    )
    directory: str | None = Field(
        None, description="MLflow model folder, relative to the release (staged releases)."
    )
    scorer_kind: str
    scorer_max_abs_diff: float
    feature_ranges: dict[str, FeatureRange] | None = Field(
        None,
        description="[min, max] of each numeric feature and request field over the training "
        "rows; null for a version trained before ranges were recorded (served unchecked).",
    )


class FeastConfig(_Strict):
    directory: str = FEATURE_REPO_DIR
    config_file: str = "feature_store.yaml"
    batch_views: dict[str, tuple[str, ...]] = Field(
        description="Feature views read from the online store, with their features: an entity "
        "none of whose rows a view holds has no online features."
    )


class SkewSummary(_Strict):
    entities: int
    mismatched_entities: int
    features: tuple[str, ...]
    as_of: datetime


class Manifest(_Strict):
    format: Literal[1] = 1
    project: str
    registered_model: str
    environment: str | None = None
    bento_tag: str
    feature_service: str
    entity: InputField
    request_fields: tuple[InputField, ...] = ()
    example: dict[str, int | float | str | bool] | None = Field(
        None, description="A request for an entity the online store held at packaging time."
    )
    model: ModelEntry
    shadow: ModelEntry | None = None
    decisions: Decisions
    serving: Serving
    feast: FeastConfig
    skew: SkewSummary | None = None
    packaged_at: datetime
    packaged_by: str | None = None
    git_commit: str | None = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.entity.name, *(f.name for f in self.request_fields))

    def same_interface(self, other: Manifest) -> bool:
        """True when ``other`` takes the same request (a reload cannot change the API)."""
        return (
            self.project == other.project
            and self.entity == other.entity
            and self.request_fields == other.request_fields
            and self.serving.max_batch == other.serving.max_batch
        )


def read_manifest(release: Path) -> Manifest:
    """The manifest of a release directory.

    Raises:
        ConfigError: missing, not JSON or not a manifest; names the file and field.
    """
    path = release / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: release manifest unreadable ({exc.strerror or exc})") from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: field '{field}': {first['msg']}") from exc


def write_manifest(release: Path, manifest: Manifest) -> Path:
    release.mkdir(parents=True, exist_ok=True)
    path = release / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_pointer(pointer: Path) -> Path | None:
    """The release directory a pointer file names; None when there is no pointer (yet)."""
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{pointer}: release pointer unreadable: {exc}") from exc
    release = data.get("release") if isinstance(data, dict) else None
    if not isinstance(release, str) or not release:
        raise ConfigError(f"{pointer}: field 'release': expected a directory path")
    path = Path(release)
    return path if path.is_absolute() else (pointer.parent / path)


def write_pointer(pointer: Path, release: Path) -> None:
    """Point at ``release`` atomically: a reader sees the old or the new pointer, never half."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=pointer.parent, prefix=".pointer-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"release": str(release.resolve())}, handle)
    os.replace(tmp, pointer)


def bundled_release() -> Path:
    """The ``release/`` folder a Bento carries next to the ``modelops`` package."""
    return Path(__file__).resolve().parents[2] / RELEASE_DIR


def locate_release(configured: Path | None, watch: Path | None) -> Path:
    """The release to start with: the watched pointer's, else the configured one, else the
    Bento's own ``release/``, else ``./release``.

    Raises:
        ConfigError: the chosen release holds no manifest, or none is found.
    """
    if watch is not None:
        pointed = read_pointer(watch)
        if pointed is not None:
            return pointed
    if configured is not None:
        if not (configured / MANIFEST_FILE).is_file():
            raise ConfigError(
                f"environment MODELOPS_SERVING_RELEASE: {configured} holds no {MANIFEST_FILE}"
            )
        return configured
    candidates = [bundled_release(), Path.cwd() / RELEASE_DIR]
    for candidate in candidates:
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no release manifest found (tried {tried}); set MODELOPS_SERVING_RELEASE to a release "
        "directory written by 'modelops package'"
    )
