"""``modelops features``: apply definitions, materialize to the online store, inspect."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from modelops.config.project import Project, available_projects, load_project
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, FeatureStoreError, ModelopsError
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo, prepare_state

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    features: list[str]
    request_fields: list[str]
    description: str = ""
    feature_views: tuple[str, ...] = ()


def apply(settings: Settings) -> list[str]:
    """Check the sources' columns, register the definitions, and warn about every project whose
    ``feature_service`` the repo does not define."""
    prepare_state(settings)
    applied = feast_io.apply(feature_repo(settings))
    services = sorted(
        name.removeprefix("FeatureService ")
        for name in applied
        if name.startswith("FeatureService ")
    )
    for name in available_projects(settings.resolved_projects_dir):
        try:
            project = load_project(settings.resolved_projects_dir, name)
        except ModelopsError:
            continue  # its own commands name the problem
        if project.spec.feature_service not in services:
            log.warning("%s", _undefined_service(project, project.spec.feature_service, services))
    return applied


def _undefined_service(project: Project, name: str, defined: list[str]) -> str:
    return (
        f"{project.spec_file}: field 'feature_service': '{name}' is not defined in the feature "
        f"repo (defined: {', '.join(defined) or 'none'})"
    )


def project_service(settings: Settings, project: Project, store: FeatureStore) -> FeatureService:
    """The feature service ``project.yaml`` names, from the registry.

    Raises:
        ConfigError: the feature repo does not define it: names ``project.yaml``, the field and
            the services the repo defines.
        FeatureStoreError: the repo defines it but it was never applied, or the registry is
            unreadable.
    """
    name = project.spec.feature_service
    try:
        return feast_io.feature_service(store, name)
    except FeatureStoreError as exc:
        error = exc
    try:
        registered = {s.name for s in store.list_feature_services()}
        defined = feast_io.defined_feature_services(feature_repo(settings))
    except Exception:  # the registry or the definitions are the problem: the lookup said which
        raise error from error.__cause__
    if name in registered:
        raise error
    if name not in defined:
        raise ConfigError(_undefined_service(project, name, defined)) from error
    raise FeatureStoreError(
        f"feature service '{name}' (field 'feature_service' of {project.spec_file}) is defined "
        "in the feature repo but not registered; run 'modelops features apply'"
    ) from error


def materialize(settings: Settings, end: datetime) -> list[feast_io.MaterializedView]:
    prepare_state(settings)
    return feast_io.materialize(feature_repo(settings), end)


def list_services(settings: Settings) -> list[ServiceInfo]:
    store = feast_io.open_store(feature_repo(settings))
    return [
        ServiceInfo(
            s.name,
            feast_io.service_features(s),
            feast_io.service_request_fields(store, s),
            description=s.description or "",
            feature_views=tuple(p.name for p in s.feature_view_projections),
        )
        for s in sorted(store.list_feature_services(), key=lambda s: s.name)
    ]
