"""The serving version's lineage as the registry recorded it: features, threshold, training
windows and time, artifact checksum (what its reference is rebuilt from)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.core.splits import WINDOWS
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import tracking
from modelops.services.monitor.common import MonitorError, _utc


@dataclass(frozen=True)
class Lineage:
    """What the registry recorded about the serving version."""

    version: str
    features: list[str]
    threshold: float
    windows: dict[str, tuple[date, date]]
    as_of: datetime
    artifact_sha256: str
    run_id: str | None
    tags: dict[str, str]


def _parse_windows(text: str) -> dict[str, tuple[date, date]]:
    windows: dict[str, tuple[date, date]] = {}
    for item in text.split(";"):
        name, _, bounds = item.partition("=")
        start, _, end = bounds.partition("..")
        if name and start and end:
            windows[name.strip()] = (date.fromisoformat(start), date.fromisoformat(end))
    return windows


def lineage_of(client: Any, model_name: str, version: str) -> Lineage:
    mv = mlflow_io.get_version(client, model_name, version)
    version_tags = dict(mv.tags)
    features = [f for f in version_tags.get(tags.FEATURES, "").split(",") if f]
    windows = _parse_windows(version_tags.get(tags.WINDOWS, ""))
    missing = [
        key
        for key, ok in (
            (tags.FEATURES, bool(features)),
            (tags.THRESHOLD, tags.THRESHOLD in version_tags),
            (tags.WINDOWS, set(WINDOWS) <= set(windows)),
            (tags.AS_OF, tags.AS_OF in version_tags),
        )
        if not ok
    ]
    if missing:
        raise MonitorError(
            f"{model_name} v{version} lacks the lineage tag(s) {', '.join(missing)}: its "
            "reference data cannot be rebuilt; register it again with 'modelops train'"
        )
    return Lineage(
        version=str(version),
        features=features,
        threshold=float(version_tags[tags.THRESHOLD]),
        windows=windows,
        as_of=_utc(datetime.fromisoformat(version_tags[tags.AS_OF])),
        artifact_sha256=version_tags.get(tags.ARTIFACT_SHA256, ""),
        run_id=mv.run_id,
        tags=version_tags,
    )


def read_lineage(settings: Settings, project: Project, version: str) -> Lineage:
    """``version``'s recorded lineage: features, threshold, windows and training time."""
    with mlflow_io.session(tracking(settings)) as client:
        return lineage_of(client, project.spec.registered_model, version)
