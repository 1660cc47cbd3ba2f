"""``modelops features``: apply definitions, materialize to the online store, inspect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelops.config.settings import Settings
from modelops.integrations import feast as feast_io
from modelops.services.context import feature_repo, prepare_state


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    features: list[str]
    request_fields: list[str]


def apply(settings: Settings) -> list[str]:
    prepare_state(settings)
    return feast_io.apply(feature_repo(settings))


def materialize(settings: Settings, end: datetime) -> list[feast_io.MaterializedView]:
    prepare_state(settings)
    return feast_io.materialize(feature_repo(settings), end)


def list_services(settings: Settings) -> list[ServiceInfo]:
    store = feast_io.open_store(feature_repo(settings))
    return [
        ServiceInfo(s.name, feast_io.service_features(s), feast_io.service_request_fields(store, s))
        for s in sorted(store.list_feature_services(), key=lambda s: s.name)
    ]
