"""Online features: the project's feature service read from the Feast online store.

The service's batch views are read with the online store's own read path and the on-demand
views run as their python-mode definitions, once per request, without pandas
(:class:`~modelops.integrations.feast.online.DirectReader`); a store or a view the direct reader
does not know is read through ``get_online_features``. Either way the values are the ones
Feast's SDK gives (a parity test holds them equal). An entity is *missing* when a batch view of
the service holds no row for it; a row whose values are null is present.
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


@dataclass(frozen=True)
class OnlineRead:
    """Feature values per feature name (one value per row) and, per row, the views missing."""

    columns: dict[str, list[Any]]
    missing: list[tuple[str, ...]]


class OnlineSource(Protocol):
    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead: ...

    def probe(self) -> None: ...


class Reader(Protocol):
    """What :mod:`modelops.integrations.feast.online` readers offer."""

    kind: str

    def read(self, rows: Sequence[Mapping[str, Any]]) -> Any: ...

    def probe(self, key: str, value: Any) -> None: ...


def _is_connection_error(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        word in text
        for word in ("connection", "timeout", "timed out", "unavailable", "refused", "unable to")
    )


class FeastOnline:
    """A feature service's online values through a reader of
    :mod:`modelops.integrations.feast.online` (direct, or Feast's SDK)."""

    def __init__(
        self,
        reader: Reader,
        entity: str,
        batch_views: Mapping[str, Any],
        probe_key: Any = 0,
    ) -> None:
        self.reader = reader
        self._entity = entity
        self._views = tuple(batch_views)
        self._probe_key = probe_key

    @classmethod
    def open(cls, release: Path, manifest: Manifest, config: ServingConfig) -> FeastOnline:
        """The store named by the configuration (``MODELOPS_SERVING_FEATURE_REPO`` / ``..._YAML``)
        or the release's copy; ``${VAR}`` in the config file is filled from the environment."""
        from modelops.integrations.feast import FeatureRepo, online_reader, open_store

        repo = config.feature_repo or (release / manifest.feast.directory)
        name = config.feature_store_yaml or manifest.feast.config_file
        config_file = Path(name) if Path(name).is_absolute() else repo / name
        store = open_store(FeatureRepo(path=repo, config_file=config_file, variables=os.environ))
        try:
            service = store.get_feature_service(manifest.feature_service)
            reader = online_reader(store, service, manifest.feast.batch_views)
        except Exception as exc:
            raise FeatureStoreError(
                f"feature service '{manifest.feature_service}' is not readable from the Feast "
                f"registry of {config_file}: {exc}"
            ) from exc
        probe_key = "" if manifest.entity.type == "str" else 0
        return cls(reader, manifest.entity.name, manifest.feast.batch_views, probe_key)

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead:
        try:
            read = self.reader.read(rows)
        except Exception as exc:
            if _is_connection_error(exc):
                raise ServiceUnavailableError(f"online store unavailable: {exc}") from exc
            raise FeatureStoreError(f"online feature read failed: {exc}") from exc
        nobody = [False] * len(rows)  # a view the reader did not read: missing (fail closed)
        found = [read.found.get(view, nobody) for view in self._views]
        missing = [
            tuple(view for view, hits in zip(self._views, found, strict=True) if not hits[i])
            for i in range(len(rows))
        ]
        return OnlineRead(columns=read.columns, missing=missing)

    def probe(self) -> None:
        """One cheap read of one stored feature: raises when the registry or the online store
        cannot answer."""
        try:
            self.reader.probe(self._entity, self._probe_key)
        except Exception as exc:
            raise ServiceUnavailableError(f"online store unavailable: {exc}") from exc
