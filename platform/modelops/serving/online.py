"""Online features: the project's feature service read from the Feast online store.

One ``get_online_features`` call per request (or per batch) with the feature service the model
was trained on, so the service computes nothing its own way: on-demand views run as Feast runs
them. An entity is *missing* when a feature view of the service holds no row for it (Feast's
``NOT_FOUND`` or ``OUTSIDE_MAX_AGE`` status); a row whose values are null is present.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelops.core.errors import FeatureStoreError, ServiceUnavailableError
from modelops.serving.config import ServingConfig
from modelops.serving.manifest import Manifest

# feast.protos.feast.serving.ServingService_pb2.FieldStatus
_NOT_FOUND = 3
_OUTSIDE_MAX_AGE = 4


@dataclass(frozen=True)
class OnlineRead:
    """Feature values per feature name (one value per row) and, per row, the views missing."""

    columns: dict[str, list[Any]]
    missing: list[tuple[str, ...]]


class OnlineSource(Protocol):
    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead: ...

    def probe(self) -> None: ...


def _is_connection_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        word in text
        for word in ("connection", "timeout", "timed out", "unavailable", "refused", "unable to")
    )


class FeastOnline:
    """Reads a feature service's online values through a Feast ``FeatureStore``."""

    def __init__(self, store: Any, service: Any, entity: str, batch_views: Mapping[str, Any]):
        self._store = store
        self._service = service
        self._entity = entity
        self._views = {view: tuple(features) for view, features in batch_views.items()}
        first_view = next(iter(self._views), None)
        self._probe_ref = (
            f"{first_view}:{self._views[first_view][0]}"
            if first_view and self._views[first_view]
            else None
        )
        self._probe_key: Any = 0

    @classmethod
    def open(cls, release: Path, manifest: Manifest, config: ServingConfig) -> FeastOnline:
        """The store named by the configuration (``MODELOPS_SERVING_FEATURE_REPO`` / ``..._YAML``)
        or the release's copy; ``${VAR}`` in the config file is filled from the environment."""
        from modelops.integrations.feast import FeatureRepo, open_store

        repo = config.feature_repo or (release / manifest.feast.directory)
        name = config.feature_store_yaml or manifest.feast.config_file
        config_file = Path(name) if Path(name).is_absolute() else repo / name
        store = open_store(FeatureRepo(path=repo, config_file=config_file, variables=os.environ))
        try:
            service = store.get_feature_service(manifest.feature_service)
        except Exception as exc:
            raise FeatureStoreError(
                f"feature service '{manifest.feature_service}' is not in the Feast registry of "
                f"{config_file}: {exc}"
            ) from exc
        online = cls(store, service, manifest.entity.name, manifest.feast.batch_views)
        online._probe_key = "" if manifest.entity.type == "str" else 0
        return online

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead:
        try:
            response = self._store.get_online_features(
                features=self._service, entity_rows=[dict(r) for r in rows]
            )
            columns = response.to_dict()
            proto = response.proto
        except Exception as exc:
            if _is_connection_error(exc):
                raise ServiceUnavailableError(f"online store unavailable: {exc}") from exc
            raise FeatureStoreError(f"online feature read failed: {exc}") from exc
        statuses = {
            name: result.statuses
            for name, result in zip(proto.metadata.feature_names.val, proto.results, strict=True)
        }
        missing: list[tuple[str, ...]] = []
        for i in range(len(rows)):
            absent = []
            for view, features in self._views.items():
                for feature in features:
                    status = statuses.get(feature)
                    if status is None or status[i] in (_NOT_FOUND, _OUTSIDE_MAX_AGE):
                        absent.append(view)
                        break
            missing.append(tuple(absent))
        return OnlineRead(columns=columns, missing=missing)

    def probe(self) -> None:
        """One cheap read of one stored feature: raises when the registry or the online store
        cannot answer."""
        if self._probe_ref is None:
            return
        try:
            self._store.get_online_features(
                features=[self._probe_ref], entity_rows=[{self._entity: self._probe_key}]
            )
        except Exception as exc:
            raise ServiceUnavailableError(f"online store unavailable: {exc}") from exc
